"""Executing plans: faithful vs seeded mode, provenance from the plan and version counters."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
import initschema.kernels.normals
import initschema.modules
from initschema_testing import zoo
from initschema_testing.asserts import assert_bitwise_equal, state_of

KIT = zoo.kits()["initschema"]
CFG = [
    dict(type="Kaiming", layer="Conv2d"),
    dict(type="Normal", layer="Linear", std=0.02),
    dict(type="Constant", val=1, layer="_BatchNorm"),
]


class TestFaithful:
    def test_same_seed_same_bits(self) -> None:
        """Two runs after the same manual_seed write the same values."""
        states = []
        for _ in range(2):
            model = zoo.toy_net(KIT, CFG)
            torch.manual_seed(3)
            model.init_weights()
            states.append(state_of(model))
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

    def test_overwritten_writes_still_happen(self) -> None:
        """Faithful mode makes every write, so the RNG advances for shadowed rules too."""
        cfg_a = [dict(type="Normal", layer="Linear"), dict(type="Constant", val=0, layer="Linear")]
        cfg_b = [dict(type="Constant", val=0, layer="Linear")]
        rng = []
        for cfg in (cfg_a, cfg_b):
            torch.manual_seed(0)
            ins.initialize(nn.Linear(3, 3), cfg)
            rng.append(torch.rand(1))
        assert not torch.equal(rng[0], rng[1])


class TestSeeded:
    def test_independent_of_global_rng(self) -> None:
        """execute(seed=s) gives the same values whatever the global RNG state."""
        states = []
        for global_seed in (0, 1):
            torch.manual_seed(global_seed)
            model = zoo.toy_net(KIT, CFG)
            ins.compile_plan(model).execute(seed=11)
            states.append(state_of(model))
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

    def test_independent_of_other_modules(self) -> None:
        """Adding a module elsewhere, or reordering, does not change a parameter's values."""

        class A(ins.BaseModule):
            def __init__(self, extra: bool) -> None:
                super().__init__(CFG)
                if extra:
                    self.first = nn.Conv2d(5, 5, 3)
                self.conv = nn.Conv2d(3, 4, 3)
                self.fc = nn.Linear(4, 4)

        small, big = A(False), A(True)
        ins.compile_plan(small).execute(seed=5)
        ins.compile_plan(big).execute(seed=5)
        assert torch.equal(small.conv.weight, big.conv.weight)
        assert torch.equal(small.fc.weight, big.fc.weight)

    def test_different_seed_different_values(self) -> None:
        """The seed matters."""
        a, b = zoo.toy_net(KIT, CFG), zoo.toy_net(KIT, CFG)
        ins.compile_plan(a).execute(seed=1)
        ins.compile_plan(b).execute(seed=2)
        assert not torch.equal(a.conv1.weight, b.conv1.weight)

    def test_final_values_follow_the_final_rule(self) -> None:
        """Only the last writer of each tensor writes, with the same distribution."""
        model = nn.Linear(200, 200)
        plan = ins.compile_plan(
            model,
            [
                dict(type="Constant", val=9, layer="Linear"),
                dict(type="Normal", std=0.01, bias=1, layer="Linear"),
            ],
        )
        report = plan.execute(seed=0)
        assert model.weight.std().item() == pytest.approx(0.01, rel=0.05)
        assert torch.all(model.bias == 1)
        assert report["weight"].provenance is not None
        assert report["weight"].provenance.source == "init_cfg[1]"


class TestProvenance:
    def test_from_plan(self) -> None:
        """Each parameter names the rule that wrote it last."""
        model = zoo.toy_net(
            KIT, [dict(type="Kaiming", layer="Conv2d", override=dict(name="conv2", type="Xavier"))]
        )
        report = ins.compile_plan(model).execute()
        assert report["conv1.weight"].provenance.source == "init_cfg[0]"  # type: ignore[union-attr]
        assert report["conv2.weight"].provenance.source == "init_cfg[0].override"  # type: ignore[union-attr]
        assert report.unchanged == ("bn.weight", "bn.bias", "fc.weight", "fc.bias")

    def test_opaque_from_version_counters(self) -> None:
        """A user init_weights is credited only with what it really wrote, after its
        super().init_weights() writes, which keep their exact rule."""
        model = zoo.with_user_init(
            KIT, child_cfg=dict(type="Constant", val=3, layer=["Conv2d", "BatchNorm2d"])
        )
        report = ins.compile_plan(model).execute()
        rows = {row.path: row.provenance for row in report}
        assert rows["user.custom_weight"].kind == "call"  # type: ignore[union-attr]
        assert rows["child.conv.weight"].source == "child.init_cfg"  # type: ignore[union-attr]
        assert rows["child.norm.bias"].source == "child.init_cfg"  # type: ignore[union-attr]
        assert rows["child.norm.weight"].kind == "call"  # type: ignore[union-attr]
        assert rows["child.norm.weight"].source == "Child.init_weights"  # type: ignore[union-attr]
        assert rows["fc.weight"] is None


def _same_as_mmengine(
    build: Callable[[zoo.Kit], nn.Module],
    run: Callable[[nn.Module], None] | None = None,
    mm_run: Callable[[nn.Module], None] | None = None,
) -> dict[str, nn.Module]:
    """Build and initialize the model with each engine from the same RNG state; assert the
    same bits and the same global RNG state afterwards; return the two models by engine."""
    kits = zoo.kits()
    runners = {"mmengine": mm_run, "initschema": run}
    models, states, rngs = {}, {}, {}
    for name in ("mmengine", "initschema"):
        torch.manual_seed(1234)
        model = build(kits[name])
        torch.manual_seed(0)
        (runners[name] or _init_weights)(model)
        models[name], states[name], rngs[name] = model, state_of(model), torch.get_rng_state()
    assert_bitwise_equal(states["mmengine"], states["initschema"])
    assert torch.equal(rngs["mmengine"], rngs["initschema"]), "RNG consumed differently"
    return models


def _init_weights(model: nn.Module) -> None:
    model.init_weights()


def _counting(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[Any]:
    """Replace ``owner.name`` by a wrapper that records each call's first argument."""
    calls: list[Any] = []
    original = getattr(owner, name)

    def counted(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(first)
        return original(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


BUILT_INS: list[dict[str, Any]] = [
    dict(type="Constant", val=0.5, bias=0.1),
    dict(type="Xavier", bias=0.3),
    dict(type="Xavier", gain=2, distribution="uniform"),
    dict(type="Normal", mean=1, std=0.02, bias_prob=0.01),
    dict(type="TruncNormal", mean=0.1, std=0.02, a=-0.05, b=0.3),
    dict(type="Uniform", a=-0.5, b=0.25, bias=2),
    dict(type="Kaiming", mode="fan_in", bias_prob=0.2),
    dict(type="Kaiming", a=0.1, nonlinearity="leaky_relu", distribution="uniform"),
    dict(type="Caffe2Xavier", bias=1),
]


def _conv_and_linears(kit: zoo.Kit) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(9, 5), nn.Sequential(nn.Linear(5, 2)))


VIT_CFG = dict(type="TruncNormal", std=0.02, layer="Linear")
VIT_BLOCK_CFG = dict(type="Xavier", layer="Linear", distribution="uniform")


class TestOverwrittenWrites:
    def test_vit_root_rule_under_block_rule(self, mm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """A root TruncNormal that block rules overwrite gives MMEngine's bits and RNG state,
        and runs trunc_normal_ only where it is final (the head)."""
        calls = _counting(monkeypatch, initschema.kernels.normals, "trunc_normal_")
        models = _same_as_mmengine(lambda k: zoo.vit(k, VIT_CFG, VIT_BLOCK_CFG))
        assert [id(t) for t in calls] == [id(models["initschema"].head.weight)]

    def test_final_trunc_normal_runs_in_full(
        self, mm: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without block rules every Linear's TruncNormal write is final: trunc_normal_ runs
        for each of them."""
        calls = _counting(monkeypatch, initschema.kernels.normals, "trunc_normal_")
        models = _same_as_mmengine(lambda k: zoo.vit(k, VIT_CFG))
        model = models["initschema"]
        linears = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(calls) == len(linears) == 7
        assert {id(t) for t in calls} == {id(t) for t in linears}

    def test_tied_weight_written_through_two_modules(self, mm: Any) -> None:
        """A weight tied between two Linears is written through each (MMEngine's apply
        visits both): the first write is overwritten by the second, same bits and RNG."""

        def build(kit: zoo.Kit) -> nn.Module:
            model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
            model[1].weight = model[0].weight
            return model

        cfg = dict(type="TruncNormal", std=0.1, layer="Linear")
        models = _same_as_mmengine(
            build,
            lambda m: ins.initialize(m, zoo.cfg(cfg)),
            lambda m: mm.initialize(m, zoo.cfg(cfg)),
        )
        assert models["initschema"][0].weight is models["initschema"][1].weight

    def test_user_initializer_overwritten_draws_in_full(self) -> None:
        """An overwritten write by a registered initializer still draws what it draws."""

        @ins.register_initializer("TestExponential")
        class ExponentialInit(ins.WeightInit):
            def init_weight(
                self, weight: torch.Tensor, generator: torch.Generator | None = None
            ) -> None:
                weight.exponential_(generator=generator)

        model = nn.Linear(4, 3)
        torch.manual_seed(0)
        ins.initialize(
            model,
            [
                dict(type="TestExponential", layer="Linear"),
                dict(type="Normal", std=0.3, layer="Linear"),
            ],
        )
        torch.manual_seed(0)
        torch.empty(3, 4).exponential_()
        expected = torch.empty(3, 4).normal_(0, 0.3)
        assert torch.equal(model.weight.detach(), expected)

    @pytest.mark.parametrize("rule", BUILT_INS, ids=lambda r: str(r))
    def test_each_built_in_overwritten_by_normal(self, mm: Any, rule: dict[str, Any]) -> None:
        """Every built-in, overwritten by a final Normal on the same modules: MMEngine's
        bits and RNG state."""
        layer = ["Conv2d", "Linear"]
        cfg = [{**rule, "layer": layer}, dict(type="Normal", std=0.3, bias=-1, layer=layer)]
        _same_as_mmengine(
            _conv_and_linears,
            lambda m: ins.initialize(m, zoo.cfg(cfg)),
            lambda m: mm.initialize(m, zoo.cfg(cfg)),
        )

    @pytest.mark.parametrize("rule", BUILT_INS, ids=lambda r: str(r))
    def test_each_built_in_under_a_child_rule(self, mm: Any, rule: dict[str, Any]) -> None:
        """Every built-in as a root rule that a child BaseModule's Normal overwrites, through
        init_weights: MMEngine's bits and RNG state."""

        def build(kit: zoo.Kit) -> nn.Module:
            child = kit.Sequential(
                nn.Conv2d(3, 4, 3), nn.Linear(9, 5), init_cfg=dict(type="Normal", layer=layer)
            )
            return kit.Sequential(child, nn.Linear(5, 2), init_cfg={**rule, "layer": layer})

        layer = ["Conv2d", "Linear"]
        _same_as_mmengine(build)


class _Snapshot(nn.Module):
    """A plain module whose init_weights reads a Linear it shares: it copies its weight."""

    def __init__(self, fc: nn.Linear) -> None:
        super().__init__()
        self.fc = fc
        self.register_buffer("snapshot", torch.zeros_like(fc.weight))

    def init_weights(self) -> None:
        with torch.no_grad():
            self.snapshot.copy_(self.fc.weight)


class TestUserCodeBetweenWrites:
    def test_plain_init_weights_reads_a_shared_linear(self, mm: Any) -> None:
        """A plain child's init_weights that copies a weight, written by the root before it
        and by a later sibling's rule after it, sees the root's full write."""

        def build(kit: zoo.Kit) -> nn.Module:
            class Writer(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self, fc: nn.Linear) -> None:
                    super().__init__(dict(type="Xavier", layer="Linear"))
                    self.fc = fc

            class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    super().__init__(dict(type="TruncNormal", std=0.02, bias=1, layer="Linear"))
                    fc = nn.Linear(4, 4)
                    self.reader = _Snapshot(fc)
                    self.writer = Writer(fc)

            return Net()

        model = _same_as_mmengine(build)["initschema"]
        assert not torch.equal(model.reader.snapshot, model.writer.fc.weight)

    def test_base_module_init_weights_reads_before_super(self, mm: Any) -> None:
        """A BaseModule's own init_weights that copies a weight and then calls
        super().init_weights(), which writes it again, sees the root's full write."""

        def build(kit: zoo.Kit) -> nn.Module:
            class Reader(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    super().__init__(dict(type="Kaiming", layer="Linear"))
                    self.fc = nn.Linear(4, 4)
                    self.copy = nn.Parameter(torch.zeros(4, 4))

                def init_weights(self) -> None:
                    with torch.no_grad():
                        self.copy.copy_(self.fc.weight)
                    super().init_weights()

            return kit.Sequential(
                Reader(), init_cfg=dict(type="TruncNormal", mean=1, std=0.5, layer="Linear")
            )

        model = _same_as_mmengine(build)["initschema"]
        assert not torch.equal(model[0].copy, model[0].fc.weight)

    def test_user_initializer_reading_the_weight(self, mm: Any) -> None:
        """A registered initializer that scales the weight scales what the rule before it
        wrote, as in MMEngine."""
        from mmengine.model.weight_init import trunc_normal_ as mmengine_trunc_normal_

        @ins.register_initializer("TestHalve")
        class HalveInit(ins.WeightInit):
            def init_weight(
                self, weight: torch.Tensor, generator: torch.Generator | None = None
            ) -> None:
                weight.mul_(0.5)

        model = nn.Linear(4, 3)
        torch.manual_seed(0)
        ins.initialize(
            model,
            [
                dict(type="TruncNormal", std=0.02, layer="Linear"),
                dict(type="TestHalve", layer="Linear"),
            ],
        )
        torch.manual_seed(0)
        expected = mmengine_trunc_normal_(torch.empty(3, 4), std=0.02) * 0.5
        assert torch.equal(model.weight.detach(), expected)


def _raise(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("seeded execution must not reseed every generator")


USER_MODEL_CFG = [dict(type="Caffe2Xavier", layer="Conv2d"), dict(type="Normal", layer="Linear")]
USER_CHILD_CFG = dict(type="Normal", std=0.5, layer=["Conv2d", "BatchNorm2d"])


class TestSeededUserCode:
    def _seeded(self, seed: int) -> dict[str, torch.Tensor]:
        model = zoo.with_user_init(KIT, USER_MODEL_CFG, USER_CHILD_CFG)
        ins.compile_plan(model).execute(seed=seed)
        return state_of(model)

    def test_reseeds_only_the_cpu_generator(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """User init_weights run seeded without torch.manual_seed or cuda.manual_seed_all."""
        monkeypatch.setattr(torch, "manual_seed", _raise)
        monkeypatch.setattr(torch.cuda, "manual_seed_all", _raise)
        patched = self._seeded(3)
        monkeypatch.undo()
        assert torch.all(patched["user.custom_weight"] == 1)
        assert_bitwise_equal(patched, self._seeded(3))

    def test_global_rng_restored(self) -> None:
        """The global CPU RNG is where it was before the seeded execute."""
        model = zoo.with_user_init(KIT, USER_MODEL_CFG, USER_CHILD_CFG)
        before = torch.get_rng_state()
        ins.compile_plan(model).execute(seed=3)
        assert torch.equal(torch.get_rng_state(), before)

    def test_user_writes_repeat(self) -> None:
        """Two seeded runs from different global RNG states write the same bits, what user
        code draws included."""
        torch.manual_seed(0)
        first = self._seeded(3)
        torch.manual_seed(1)
        torch.rand(5)
        second = self._seeded(3)
        assert_bitwise_equal(first, second)

    def test_user_writes_follow_the_seed(self) -> None:
        """User code draws from a generator seeded from the plan's seed."""
        assert not torch.equal(
            self._seeded(3)["user.custom_bias"], self._seeded(4)["user.custom_bias"]
        )


def _blocks(kit: zoo.Kit, before_super: Callable[[nn.Module], None], n: int = 4) -> nn.Module:
    """n BaseModule blocks whose own init_weights run ``before_super`` and then
    super().init_weights(), under a root with its own rules."""

    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Constant", val=2, bias=1, layer="Linear"))
            self.fc = nn.Linear(3, 3)
            self.norm = nn.LayerNorm(3)

        def init_weights(self) -> None:
            before_super(self)
            super().init_weights()
            with torch.no_grad():
                self.norm.bias.normal_()

    class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Normal", layer=["Linear", "LayerNorm"]))
            self.blocks = kit.ModuleList([Block() for _ in range(n)])
            self.head = nn.Linear(3, 2)

    return Net()


def _unchanged(block: nn.Module) -> None:
    pass


def _replace_cfg(block: nn.Module) -> None:
    block.init_cfg = dict(type="Constant", val=5, bias=1, layer="Linear")


def _mutate_cfg(block: nn.Module) -> None:
    block.init_cfg["val"] = 5  # type: ignore[index]


class TestNestedReuse:
    def test_unchanged_blocks_are_not_compiled_again(
        self, mm: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """super().init_weights() of unchanged blocks runs the plan compiled with the model
        (the root's compile is the only one), with MMEngine's bits."""
        calls = _counting(monkeypatch, initschema.modules, "compile_init_weights")
        model = _same_as_mmengine(lambda k: _blocks(k, _unchanged))["initschema"]
        assert calls == [model]
        assert all(torch.all(block.fc.weight == 2) for block in model.blocks)

    @pytest.mark.parametrize("change", [_replace_cfg, _mutate_cfg], ids=["replaced", "mutated"])
    def test_changed_init_cfg_is_compiled_and_applied(
        self, mm: Any, monkeypatch: pytest.MonkeyPatch, change: Callable[[nn.Module], None]
    ) -> None:
        """An init_cfg that user code replaces, or changes in place, before
        super().init_weights() is compiled again and applied, with MMEngine's bits."""
        calls = _counting(monkeypatch, initschema.modules, "compile_init_weights")
        model = _same_as_mmengine(lambda k: _blocks(k, change))["initschema"]
        assert calls == [model, *model.blocks]
        assert all(torch.all(block.fc.weight == 5) for block in model.blocks)
        assert all(torch.all(block.fc.bias == 1) for block in model.blocks)

    def test_changed_child_init_cfg_is_applied(self, mm: Any) -> None:
        """A child BaseModule's init_cfg that user code changes before super().init_weights()
        is the one applied, as in MMEngine."""

        def build(kit: zoo.Kit) -> nn.Module:
            class Inner(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    super().__init__(dict(type="Normal", layer="Linear"))
                    self.fc = nn.Linear(3, 3)

            class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    super().__init__()
                    self.inner = Inner()

                def init_weights(self) -> None:
                    self.inner.init_cfg = dict(type="Constant", val=2, layer="Linear")
                    super().init_weights()

            return kit.Sequential(Block())

        model = _same_as_mmengine(build)["initschema"]
        assert torch.all(model[0].inner.fc.weight == 2)


class TestProgress:
    def test_big_plans_advance_a_bar_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Over the element threshold, on a terminal, every written element advances the bar;
        elsewhere there is none."""
        import initschema.engine.execute as execute

        seen: list[tuple[str, Any]] = []

        class Bar:
            def __init__(self, label: str, total: int | None, threshold: int) -> None:
                self.bar = object() if total and total > threshold else None
                seen.append(("total", total))

            def __enter__(self) -> Bar:
                return self

            def __call__(self, amount: int) -> None:
                seen.append(("advance", amount))

            def __exit__(self, *exc: object) -> None:
                pass

        monkeypatch.setattr(execute, "ProgressBar", Bar)
        monkeypatch.setattr(execute, "_PROGRESS_FROM", 10)
        model = nn.Sequential(nn.Linear(4, 3))
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        ins.initialize(model, dict(type="Normal", layer="Linear"))
        assert seen == [("total", 15), ("advance", 12), ("advance", 3)]
        seen.clear()
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
        ins.initialize(model, dict(type="Normal", layer="Linear"))
        assert seen == [("total", None)]
