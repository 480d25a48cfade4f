"""Executing plans: faithful vs seeded mode, provenance from the plan and version counters."""

from __future__ import annotations

import pytest
import torch
import zoo
from conftest import state_of
from torch import nn

import initschema as ins

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
