"""Hostile and broken init_cfgs: each is refused with an InitCfgError that names its config
path, before anything is written (weights bit for bit, torch's RNG untouched), in bounded
time and with a bounded message."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import initschema as ins
from initschema.cfg.patterns import compile_path_pattern, substitute

SLOW = 5.0
"""Seconds a refusal may take at most: the attacks took minutes; RE2 takes milliseconds."""


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.ModuleDict({"qkv": nn.Linear(8, 24), "proj": nn.Linear(8, 8)})
        self.mlp = nn.ModuleDict({"fc1": nn.Linear(8, 16), "fc2": nn.Linear(16, 8)})
        self.norm = nn.LayerNorm(8)


class Encoder(nn.Module):
    """A 12-layer encoder: the ordinary paths the regular-expression attacks ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(12))
        self.head = nn.Linear(8, 4)

    def needs_argument(self, scale: float) -> None:
        self.head.weight.data.mul_(scale)

    @property
    def planted(self) -> None:
        raise AssertionError("a property of the model ran at compile time")


def _bits(model: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().contiguous().view(torch.uint8).numpy().tobytes()
            for k, v in model.state_dict().items()}  # fmt: skip


def refused(
    attempt: Callable[[], object], model: nn.Module | None, *fragments: str
) -> ins.InitCfgError:
    """Run ``attempt``: it must raise an InitCfgError whose text holds every fragment, and
    leave ``model``'s weights and torch's RNG as they were, in well under a second of work."""
    before = _bits(model) if model is not None else {}
    rng = torch.get_rng_state()
    start = time.perf_counter()
    with pytest.raises(ins.InitCfgError) as caught:
        attempt()
    assert time.perf_counter() - start < SLOW
    for fragment in fragments:
        assert fragment in str(caught.value)
    if model is not None:
        assert _bits(model) == before
    assert torch.equal(torch.get_rng_state(), rng)
    return caught.value


WRITE_FIRST = {"type": "Constant", "val": 3.0, "layer": "Linear"}
"""A rule that would write every Linear before the rule under attack."""


class TestCallRules:
    @pytest.mark.parametrize(
        "method",
        ["half", "double", "float", "bfloat16", "to", "cuda", "cpu", "to_empty",
         "share_memory", "compile", "apply", "load_state_dict", "train", "eval",
         "requires_grad_", "zero_grad", "register_buffer", "register_forward_hook",
         "add_module", "__init__", "__setattr__", "__call__"],
    )  # fmt: skip
    def test_refused_when_parsed(self, method: str) -> None:
        """A dunder or one of nn.Module's own methods is refused, naming the rule's path."""
        cfg = [WRITE_FIRST, {"type": "Call", "method": method, "layer": "Linear"}]
        model = Encoder()
        refused(lambda: ins.compile_plan(model, cfg), model, "init_cfg[1].method", repr(method))
        refused(lambda: ins.parse_init_cfg(cfg), None, "init_cfg[1].method")
        refused(lambda: ins.BaseModule(init_cfg=cfg), None, "BaseModule.init_cfg[1].method")

    def test_every_module_method_refused(self) -> None:
        """Every callable nn.Module defines, private ones included, is refused by compile."""
        names = [n for n in dir(nn.Module) if callable(getattr(nn.Module, n))]
        assert {"_apply", "half", "state_dict"} <= set(names)
        model = Encoder()
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                continue
            cfg = {"type": "Call", "method": name, "layer": "Encoder"}
            refused(lambda cfg=cfg: ins.compile_plan(model, cfg, log=False), model, "method")

    def test_method_needing_arguments(self) -> None:
        """A method that needs an argument fails at compile, not at execute after writes."""
        cfg = [WRITE_FIRST, {"type": "Call", "method": "needs_argument", "layer": "Encoder"}]
        model = Encoder()
        error = refused(lambda: ins.compile_plan(model, cfg), model, "init_cfg[1].method")
        assert "needs_argument(scale" in str(error)
        assert "which needs arguments; a Call rule calls it with none" in str(error)

    def test_property_not_run(self) -> None:
        """A property is looked up without running it, and refused as no method."""
        model = Encoder()
        cfg = {"type": "Call", "method": "planted", "layer": "Encoder"}
        refused(lambda: ins.compile_plan(model, cfg), model, "init_cfg.method", "property")

    def test_submodule_is_no_method(self) -> None:
        """A submodule's name (nn.Module is callable) is no method."""
        model = Encoder()
        cfg = {"type": "Call", "method": "head", "layer": "Encoder"}
        refused(lambda: ins.compile_plan(model, cfg), model, "has no method 'head'")

    def test_initializer_method_still_runs(self) -> None:
        """reset_parameters, the method Call rules exist for, runs as before."""
        model = Encoder()
        with torch.no_grad():
            model.head.weight.fill_(7.0)
        ins.compile_plan(model, {"type": "Call", "method": "reset_parameters", "layer": "Linear"})
        assert bool((model.head.weight == 7.0).all())
        ins.initialize(model, {"type": "Call", "method": "reset_parameters", "layer": "Linear"})
        assert not bool((model.head.weight == 7.0).any())


def _nested_list(depth: int) -> Any:
    value: Any = {"type": "Normal"}
    for _ in range(depth):
        value = [value]
    return value


def _nested_dict(depth: int) -> Any:
    value: Any = {"type": "Normal", "layer": "Linear"}
    for _ in range(depth):
        value = {"a": value}
    return value


class TestNesting:
    def test_lists_1000_deep(self) -> None:
        """Lists nested 1,000 deep: an InitCfgError at the path where the limit is passed."""
        cfg = _nested_list(1000)
        path = "init_cfg" + "[0]" * ins.cfg.MAX_DEPTH
        refused(lambda: ins.parse_init_cfg(cfg), None, f"{path}: ", "more than 32 deep")
        model = Encoder()
        refused(lambda: ins.compile_plan(model, cfg), model, f"{path}: ")
        refused(lambda: ins.BaseModule(init_cfg=cfg), None, "more than 32 deep")

    def test_dicts_500_deep(self) -> None:
        """Named rules nested 500 deep (compile_plan's config cache recursed on them)."""
        cfg = _nested_dict(500)
        model = Encoder()
        path = "init_cfg" + ".a" * ins.cfg.MAX_DEPTH
        refused(lambda: ins.compile_plan(model, cfg), model, f"{path}: ")

    def test_deep_value_in_a_field(self) -> None:
        """A field's value nested deep (splits) is refused the same way."""
        value: Any = 768
        for _ in range(5000):
            value = [value]
        cfg = {"type": "Xavier", "layer": "Linear", "splits": value}
        refused(lambda: ins.parse_init_cfg(cfg), None, "init_cfg.splits[0]")

    def test_limit_is_as_said(self) -> None:
        """32 levels of lists and dicts pass the check (then fail as no rule); 33 do not."""
        deepest = _nested_list(ins.cfg.MAX_DEPTH - 1)
        error = refused(lambda: ins.parse_init_cfg(deepest), None, "must be a dict")
        assert "deep" not in str(error)
        refused(lambda: ins.parse_init_cfg([deepest]), None, "more than 32 deep")


class TestNonStringNames:
    ARRAY = np.array(["Normal", "Xavier"])

    @pytest.mark.parametrize(
        ("cfg", "path"),
        [
            ({"_target_": ARRAY, "std": 1.0}, "init_cfg._target_"),
            ({"type": ARRAY}, "init_cfg.type"),
            ({"type": "Normal", "override": {"name": ARRAY}}, "init_cfg.override.name"),
            ({"type": "Normal", "override": {"head": {"name": ARRAY}}},
             "init_cfg.override.head.name"),
            ({"type": "Normal", "override": [{"name": "head", "type": ARRAY}]},
             "init_cfg.override[0].type"),
            ({"type": "Normal", "override": [{"name": "head", "_target_": ARRAY}]},
             "init_cfg.override[0]._target_"),
        ],
    )  # fmt: skip
    def test_array(self, cfg: dict[str, Any], path: str) -> None:
        """A numpy array where a name goes: named, not 'truth value ... is ambiguous'."""
        model = Encoder()
        refused(lambda: ins.parse_init_cfg(cfg), None, f"{path}: ")
        refused(lambda: ins.compile_plan(model, cfg), model, f"{path}: ")
        error = refused(lambda: ins.BaseModule(init_cfg=cfg), None, f"BaseModule.{path}: ")
        assert "ambiguous" not in str(error)

    def test_array_as_a_rule_list(self) -> None:
        """An array as the whole init_cfg is no list of rules."""
        refused(lambda: ins.parse_init_cfg(np.array([1, 2])), None, "init_cfg: ", "ndarray")


class TestReviseKeysReplacements:
    @pytest.mark.parametrize(
        ("pair", "fragment"),
        [
            ((r"^(a)\.", r"\2"), "refers to group 2, but its pattern has 1 group"),
            ((r"^(?P<head>a)\.", r"\g<tail>"), "names group 'tail'"),
            ((r"^a\.", r"\g<1>"), "refers to group 1, but its pattern has 0 groups"),
            ((r"^a\.", r"\n"), "has the escape '\\\\n'"),
            ((r"^a\.", "x\\"), "has the escape"),
        ],
    )
    def test_invalid(self, pair: tuple[str, str], fragment: str) -> None:
        """A replacement that cannot expand is an InitCfgError when parsed, naming the path."""
        cfg = [{"type": "Pretrained", "checkpoint": "absent.pth", "revise_keys": [("x", ""), pair]}]
        refused(lambda: ins.parse_init_cfg(cfg), None, "init_cfg[0].revise_keys", "revise_keys[1]",
                fragment)  # fmt: skip

    @pytest.mark.parametrize(
        ("pattern", "replacement", "key"),
        [
            (r"^module\.", "", "module.blocks.0.module.weight"),
            (r"^(.*)\.gamma$", r"\1.weight", "blocks.0.norm.gamma"),
            (r"(?P<b>blocks)\.(\d+)", r"\g<b>_\2\\x\g<0>", "blocks.11.mlp"),
            (r"(a)|(b)", r"[\1\2]", "abc"),
            (r"x*", "-", "abxd"),
            (r"é", "ü", "aéé"),
            (r"(a)", r"\g<1>0", "aa"),
            (r"(?i)LAYER", "blk", "layer.Layer"),
        ],
    )
    def test_same_as_re_sub(self, pattern: str, replacement: str, key: str) -> None:
        """Replacements that parse mean what they mean to re.sub."""
        assert substitute(pattern, replacement, key) == re.sub(pattern, replacement, key)

    def test_used_when_loading(self, tmp_path: Path) -> None:
        """A checkpoint's keys are rewritten by a group reference, and load."""
        source = nn.Linear(3, 2)
        torch.save({f"net.{k}": v for k, v in source.state_dict().items()}, tmp_path / "c.pth")
        target = nn.Linear(3, 2)
        rule = {"type": "Pretrained", "checkpoint": str(tmp_path / "c.pth"),
                "revise_keys": [(r"^net\.(?P<name>\w+)$", r"\g<name>")]}  # fmt: skip
        ins.initialize(target, rule)
        assert torch.equal(target.weight, source.weight)


class TestBoundedMessages:
    LIMIT = 600

    def test_huge_splits(self) -> None:
        """A million pieces that do not sum: the message shows the first few."""
        cfg = {"type": "Xavier", "layer": "Linear", "splits": list(range(1, 10**6))}
        model = Encoder()
        error = refused(lambda: ins.compile_plan(model, cfg), model, "splits [1, 2, 3")
        assert all(len(p.message) < self.LIMIT for p in error.problems)

    @pytest.mark.parametrize(
        "cfg",
        [
            {"type": "x" * 10**6},
            {"type": "Normal", "std": "1" * 10**6},
            {"type": "Normal", "std": list(range(10**6))},
            {"type": "Normal", "mode": "fan_in"},
            {"type": "Normal", "k" * 10**6: 1},
            {"type": "Normal", "override": {"name": "blocks." + "x" * 10**6 + "*"}},
            [list(range(10**6))],
            {"type": "Kaiming", "mode": {"nested": list(range(10**6))}},
        ],
    )
    def test_echoed_values(self, cfg: Any) -> None:
        """Whatever value a message echoes, the message stays a few hundred characters."""
        error = refused(lambda: ins.parse_init_cfg(cfg), None)
        assert len(str(error)) < self.LIMIT

    def test_many_problems(self) -> None:
        """A hundred thousand bad rules: the text lists 20; every one is in problems."""
        cfg = [{"type": "Normal", "std": -1}] * 100_000
        error = refused(lambda: ins.parse_init_cfg(cfg), None, "and 99980 more")
        assert len(error.problems) == 100_000
        assert len(str(error)) < 100 * 21


ATTACKS = [r"re:([a-z0-9_.]+)+z", r"re:(\w+\.?)+z", r"re:(.*)*z"]
"""Patterns that backtrack exponentially in Python's re on a path that does not end in z."""


class TestRegexWork:
    @pytest.mark.parametrize("pattern", ATTACKS)
    def test_params(self, pattern: str) -> None:
        """A params pattern finishes at once and matches nothing (a lint, not a hang)."""
        model = Encoder()
        start = time.perf_counter()
        plan = ins.compile_plan(model, {"type": "Normal", "params": [pattern]}, log=False)
        assert time.perf_counter() - start < SLOW
        assert "unmatched-pattern" in [lint.kind for lint in plan.lints]

    @pytest.mark.parametrize("pattern", ATTACKS)
    def test_override_name(self, pattern: str) -> None:
        """An override-name pattern likewise."""
        model = Encoder()
        start = time.perf_counter()
        cfg = {"type": "Normal", "override": {"name": pattern}}
        plan = ins.compile_plan(model, cfg, log=False)
        assert time.perf_counter() - start < SLOW
        assert "unmatched-pattern" in [lint.kind for lint in plan.lints]

    @pytest.mark.parametrize("pattern", ATTACKS)
    def test_revise_keys(self, pattern: str, tmp_path: Path) -> None:
        """A revise_keys pattern over a 12-layer checkpoint's keys: loads, at once."""
        source = Encoder()
        torch.save(source.state_dict(), tmp_path / "c.pth")
        model = Encoder()
        rule = {"type": "Pretrained", "checkpoint": str(tmp_path / "c.pth"),
                "revise_keys": [(pattern.removeprefix("re:"), "")]}  # fmt: skip
        start = time.perf_counter()
        plan = ins.compile_plan(model, rule, log=False)
        assert time.perf_counter() - start < SLOW
        plan.execute()
        assert torch.equal(model.head.weight, source.head.weight)

    def test_layer_id_regex(self) -> None:
        """A layer_id_regex that backtracks: a compile-time error naming it, at once."""
        cfg = {"type": "Normal", "layer": "Linear", "layer_id_regex": r"([a-z0-9_.]+)+z"}
        model = Encoder()
        refused(lambda: ins.compile_plan(model, cfg), model, "init_cfg: ", "layer_id_regex")

    @pytest.mark.parametrize(
        ("cfg", "path"),
        [
            ({"type": "Normal", "params": [r"re:(blocks)\.\1"]}, "init_cfg.params"),
            ({"type": "Normal", "params": [r"re:blocks(?=\.0)"]}, "init_cfg.params"),
            ({"type": "Normal", "override": {"name": r"re:(?<!x)head"}}, "init_cfg.override.name"),
            ({"type": "Normal", "layer_id_regex": r"(\d+)\Z"}, "init_cfg.layer_id_regex"),
            ({"type": "Pretrained", "checkpoint": "c.pth", "revise_keys": [(r"(a)\1", "")]},
             "init_cfg.revise_keys"),
        ],
    )  # fmt: skip
    def test_backtracking_syntax_refused(self, cfg: dict[str, Any], path: str) -> None:
        """Backreferences, lookaround and \\Z are refused, naming the pattern and RE2."""
        error = refused(lambda: ins.parse_init_cfg(cfg), None, f"{path}: ", "RE2")
        assert "is not a regular expression RE2 can run" in str(error)

    @pytest.mark.parametrize(
        "pattern",
        ["blocks.*.mlp.fc2.weight", "**.bias", "blocks.**.weight", "*.*.attn.*.weight",
         "re:blocks\\.(0|11)\\.mlp\\.fc\\d\\.weight", "re:.*norm.*", "re:(?i)HEAD\\..*",
         "re:blocks\\.[3-5]\\..*", "**", "head.*"],
    )  # fmt: skip
    def test_ordinary_patterns_match_as_before(self, pattern: str) -> None:
        """On every path of the model, RE2 selects what Python's re selected."""
        python = _python_pattern(pattern)
        paths = [n for n, _ in Encoder().named_parameters()]
        ours = compile_path_pattern(pattern)
        assert [p for p in paths if ours.fullmatch(p)] == [p for p in paths if python(p)]
        assert any(python(p) for p in paths)


def _python_pattern(text: str) -> Callable[[str], bool]:
    """The pattern language on Python's re, as initschema compiled it before RE2."""
    if text.startswith("re:"):
        regex = re.compile(text[3:])
        return lambda path: regex.fullmatch(path) is not None
    names = text.split(".")
    pattern = ""
    for index, name in enumerate(names):
        first, last = index == 0, index == len(names) - 1
        if name == "**":
            if first and last:
                pattern += r"[^.]+(?:\.[^.]+)*"
            elif last:
                pattern += r"(?:\.[^.]+)*"
            else:
                pattern += ("" if first else r"\.") + r"(?:[^.]+\.)*"
            continue
        if not first and names[index - 1] != "**":
            pattern += r"\."
        pattern += "[^.]*".join(re.escape(part) for part in name.split("*"))
    regex = re.compile(pattern)
    return lambda path: regex.fullmatch(path) is not None
