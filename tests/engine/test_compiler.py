"""Compiling: the one-walk model tree, rules reused across equal configs, deep models."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import initschema as ins
import initschema.engine.compiler
from initschema.engine.walk import Tree
from initschema_testing import zoo
from initschema_testing.asserts import assert_bitwise_equal, state_of

Spec = Any
"""A leaf name, or (container kind, [child specs])."""

LEAVES = st.sampled_from(["linear", "linear_no_bias", "conv", "batchnorm", "none"])
CONTAINERS = st.sampled_from(["module", "sequential", "modulelist"])
SPECS = st.recursive(
    LEAVES, lambda kids: st.tuples(CONTAINERS, st.lists(kids, max_size=4)), max_leaves=14
)
ROOTS = st.tuples(CONTAINERS, st.lists(SPECS, min_size=1, max_size=4))


def _build(spec: Spec) -> nn.Module | None:
    if spec == "none":
        return None
    if spec == "linear":
        return nn.Linear(2, 3)
    if spec == "linear_no_bias":
        return nn.Linear(2, 3, bias=False)
    if spec == "conv":
        return nn.Conv1d(2, 2, 1)
    if spec == "batchnorm":
        return nn.BatchNorm1d(2)
    kind, kids = spec
    module = {"module": nn.Module, "sequential": nn.Sequential, "modulelist": nn.ModuleList}[kind]()
    for index, kid in enumerate(kids):
        module.register_module(str(index) if kind != "module" else f"m{index}", _build(kid))
    return module


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _apply_order(module: nn.Module, prefix: str = "") -> list[tuple[str, int]]:
    """(path, id) of every module nn.Module.apply visits, in its order, with the path of
    each occurrence: a reference written with recursion, as apply is."""
    found = []
    for name, child in module.named_children():
        found += _apply_order(child, _join(prefix, name))
    found.append((prefix, id(module)))
    return found


@st.composite
def _graphs(draw: st.DrawFn) -> nn.Module:
    """A random model: nested containers with Linear/Conv/BatchNorm leaves and None
    children, some submodules registered under a second parent, some tensors tied."""
    root = _build(draw(ROOTS))
    assert root is not None
    modules = list(root.modules())
    containers = [m for m in modules if type(m) in (nn.Module, nn.Sequential, nn.ModuleList)]
    for index in range(draw(st.integers(0, 3))):
        parent = draw(st.sampled_from(containers))
        child = draw(st.sampled_from(modules[1:] or [nn.Linear(1, 1)]))
        if any(m is parent for m in child.modules()):
            continue  # it would make a cycle
        parent.register_module(f"shared{index}", child)
    leaves = [m for m in modules if isinstance(m, nn.Linear | nn.Conv1d | nn.BatchNorm1d)]
    for _ in range(draw(st.integers(0, 3)) if len(leaves) > 1 else 0):
        a, b = draw(st.sampled_from(leaves)), draw(st.sampled_from(leaves))
        if type(a) is type(b):
            b.weight = a.weight
            if isinstance(a, nn.BatchNorm1d):
                b.running_mean = a.running_mean
    return root


class TestTree:
    @settings(max_examples=100, deadline=None)
    @given(_graphs())
    def test_matches_torch_walks(self, root: nn.Module) -> None:
        """order is apply's order, modules/parameters/buffers are named_modules/
        named_parameters/named_buffers, each span is the subtree of its occurrence."""
        tree = Tree(root)
        visited: list[nn.Module] = []
        root.apply(visited.append)
        assert [id(m) for _, m in tree.order] == [id(m) for m in visited]
        reference = _apply_order(root)
        assert [(p, id(m)) for p, m in tree.order] == reference
        assert [(p, id(m)) for p, m in tree.modules.items()] == [
            (p, id(m)) for p, m in root.named_modules()
        ]
        assert [(p, id(t)) for p, t in tree.parameters] == [
            (p, id(t)) for p, t in root.named_parameters()
        ]
        assert [(p, id(t)) for p, t in tree.buffers] == [
            (p, id(t)) for p, t in root.named_buffers()
        ]
        occurrences = dict(tree.order)
        assert set(tree.start) == set(tree.end) == set(occurrences)
        for path in tree.start:
            span = tree.order[tree.start[path] : tree.end[path]]
            assert [(p, id(m)) for p, m in span] == _apply_order(occurrences[path], path)

    def test_shared_module_occurs_under_each_parent(self) -> None:
        """A module under two parents occurs twice in order, once in modules."""
        shared = nn.Linear(2, 2)
        root = nn.Sequential(nn.Sequential(shared), nn.Sequential(shared))
        tree = Tree(root)
        assert [p for p, _ in tree.order] == ["0.0", "0", "1.0", "1", ""]
        assert list(tree.modules) == ["", "0", "0.0", "1"]
        assert [p for p, _ in tree.parameters] == ["0.0.weight", "0.0.bias"]


BLOCK_CFG = [
    dict(type="Normal", std=0.1, layer="Linear"),
    dict(type="Constant", val=2, bias=3, override=dict(name="fc2")),
]


def _blocks(init_cfg: Any, n: int = 6) -> nn.Module:
    class Block(ins.BaseModule):
        def __init__(self) -> None:
            super().__init__(copy.deepcopy(init_cfg))
            self.fc1 = nn.Linear(2, 2)
            self.fc2 = nn.Linear(2, 2)

    class Net(ins.BaseModule):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = ins.ModuleList([Block() for _ in range(n)])

    return Net()


class TestEqualConfigs:
    def test_each_block_writes_under_its_own_path(self) -> None:
        """Blocks with equal init_cfgs: each write names its own block's config path, and
        each override writes its own block's submodule."""
        model = _blocks(BLOCK_CFG)
        writes = [a for a in ins.compile_plan(model).actions if a.kind == "write"]
        assert [(a.module, a.source) for a in writes] == [
            (f"blocks.{i}.{fc}", f"blocks.{i}.init_cfg{rule}")
            for i in range(6)
            for fc, rule in (("fc1", "[0]"), ("fc2", "[0]"), ("fc2", "[1].override"))
        ]
        overrides = [a for a in writes if a.source.endswith("override")]
        assert [a.target for a in overrides] == [block.fc2 for block in model.blocks]

    def test_typed_rules_are_rebased_too(self) -> None:
        """Equal typed rules (initializer objects) name each block's path as well."""
        typed = [ins.NormalInit(layer="Linear"), ins.ConstantInit(val=2, override={"name": "fc2"})]
        model = _blocks(typed, n=3)
        overrides = [
            a
            for a in ins.compile_plan(model).actions
            if a.kind == "write" and "override" in a.source
        ]
        assert [a.source for a in overrides] == [
            f"blocks.{i}.init_cfg[1].override[0]" for i in range(3)
        ]
        assert [a.target for a in overrides] == [block.fc2 for block in model.blocks]

    def test_overrides_write_their_own_blocks(self) -> None:
        """After init_weights every block's fc2 holds the override's constants."""
        model = _blocks(BLOCK_CFG)
        model.init_weights()
        for block in model.blocks:
            assert torch.all(block.fc2.weight == 2)
            assert torch.all(block.fc2.bias == 3)
            assert block.fc1.weight.std().item() < 1

    def test_parsed_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An init_cfg shared by every block is parsed once per compile."""
        parsed: list[Any] = []
        original = initschema.engine.compiler.parse_init_cfg

        def counted(init_cfg: Any, *args: Any, **kwargs: Any) -> Any:
            parsed.append(init_cfg)
            return original(init_cfg, *args, **kwargs)

        monkeypatch.setattr(initschema.engine.compiler, "parse_init_cfg", counted)
        ins.compile_plan(_blocks(BLOCK_CFG))
        assert parsed.count(BLOCK_CFG) == 1

    def test_problems_name_every_block(self) -> None:
        """A bad override in an equal config is reported at each block's own path."""
        bad = dict(type="Constant", val=2, override=dict(name="fc3"))
        with pytest.raises(ins.InitCfgError) as info:
            ins.compile_plan(_blocks(bad, n=3))
        assert [p.path for p in info.value.problems] == [
            f"blocks.{i}.init_cfg.override.name" for i in range(3)
        ]
        assert "module 'blocks.2' (Block) has no attribute 'fc3'" in str(info.value)


DEPTH = 300


def _chain(kit: zoo.Kit) -> nn.Module:
    """DEPTH nested BaseModules, each with a Linear and the next level as a child."""

    class Level(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, inner: nn.Module | None) -> None:
            super().__init__(dict(type="Normal", override=dict(name="fc")))
            self.fc = nn.Linear(2, 2)
            if inner is not None:
                self.inner = inner

    level = Level(None)
    for _ in range(DEPTH - 1):
        level = Level(level)
    return level


@contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


class TestDeepModels:
    def test_deep_chain_at_default_recursion_limit(self, mm: Any) -> None:
        """A 300-deep chain of BaseModules compiles and initializes at Python's default
        recursion limit, with MMEngine's bits and RNG state."""
        kits = zoo.kits()
        states, rngs = {}, {}
        for name in ("mmengine", "initschema"):
            torch.manual_seed(1234)
            model = _chain(kits[name])
            torch.manual_seed(0)
            # MMEngine recurses through the chain; initschema must not need to.
            with _recursion_limit(20_000 if name == "mmengine" else 1000):
                if name == "initschema":
                    plan = ins.compile_plan(model)
                    assert sum(a.kind == "write" for a in plan.actions) == DEPTH
                model.init_weights()
            states[name], rngs[name] = state_of(model), torch.get_rng_state()
        assert_bitwise_equal(states["mmengine"], states["initschema"])
        assert torch.equal(rngs["mmengine"], rngs["initschema"])
