"""compile_plan: actions in MMEngine's order, checks against the model, lints."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import initschema as ins
from initschema_testing import zoo
from initschema_testing.asserts import state_of
from initschema_testing.configs import rules

KIT = zoo.kits()["initschema"]


def _net(init_cfg: Any = None) -> nn.Module:
    return zoo.toy_net(KIT, init_cfg)


class TestActions:
    def test_order_and_sources(self) -> None:
        """Rules in list order, apply order inside a rule, overrides right after their rule."""
        plan = ins.compile_plan(
            _net(
                [
                    dict(
                        type="Kaiming", layer="Conv2d", override=dict(name="conv2", type="Xavier")
                    ),
                    dict(type="Normal", layer="Linear", std=0.01),
                ]
            )
        )
        steps = [(a.kind, a.module, a.source) for a in plan.actions]
        assert steps == [
            ("write", "conv1", "init_cfg[0]"),
            ("write", "conv2", "init_cfg[0]"),
            ("write", "conv2", "init_cfg[0].override"),
            ("write", "fc", "init_cfg[1]"),
            ("mark", "", "ToyNet.init_weights"),
        ]
        assert plan.actions[0].params == ("conv1.weight", "conv1.bias")

    def test_children_before_own_pretrained(self, tmp_path: Path) -> None:
        """Own rules, then children (deeper rules), then own Pretrained rules."""
        ckpt = tmp_path / "net.pth"
        torch.save(KIT.Sequential(_net()).state_dict(), ckpt)
        model = KIT.Sequential(
            _net(dict(type="Constant", val=1, layer="Linear")),
            init_cfg=[
                dict(type="Pretrained", checkpoint=str(ckpt)),
                dict(type="Normal", layer="Linear"),
            ],
        )
        kinds = [(a.kind, a.source) for a in ins.compile_plan(model).actions]
        assert kinds == [
            ("write", "init_cfg[1]"),
            ("guard", "is_init"),
            ("write", "0.init_cfg"),
            ("mark", "ToyNet.init_weights"),
            ("load", "init_cfg[0]"),
            ("mark", "Sequential.init_weights"),
        ]

    def test_user_init_weights_is_opaque(self) -> None:
        """A user-defined init_weights is one opaque action listing what it may write."""
        plan = ins.compile_plan(zoo.with_user_init(KIT))
        calls = [(a.module, a.params) for a in plan.actions if a.kind == "call"]
        assert calls == [
            ("user", ("user.custom_weight", "user.custom_bias")),
            (
                "child",
                ("child.conv.weight", "child.conv.bias", "child.norm.weight", "child.norm.bias"),
            ),
        ]

    def test_initialize_mode_has_no_pretrained_reordering(self, tmp_path: Path) -> None:
        """With an init_cfg, the plan is initialize(): plain list order."""
        ckpt = tmp_path / "net.pth"
        torch.save(_net().state_dict(), ckpt)
        plan = ins.compile_plan(
            _net(),
            [
                dict(type="Pretrained", checkpoint=str(ckpt)),
                dict(type="Constant", val=0, layer="Linear"),
            ],
        )
        assert [a.kind for a in plan.actions] == ["load", "write"]

    def test_plain_root_needs_init_cfg(self) -> None:
        """Planning init_weights of a plain module says what to do instead."""
        with pytest.raises(ins.InitUsageError, match=r"pass init_cfg=\.\.\."):
            ins.compile_plan(nn.Linear(2, 2))

    def test_json(self) -> None:
        """A plan serializes to JSON."""
        plan = ins.compile_plan(_net(dict(type="Normal", layer="Linear")))
        data = json.loads(json.dumps(plan.to_dict()))
        assert data["actions"][0]["init"]["type"] == "Normal"
        assert data["parameters"][0] == {"path": "conv1.weight", "shape": [8, 3, 3, 3]}

    def test_json_gives_every_argument(self) -> None:
        """A write's JSON has the rule as configured (``init``: what it sets) and every
        argument it works with (``arguments``: defaults and values equal to them too), as
        the docs say; the table shows only what differs from the defaults."""
        model = nn.Sequential(nn.Conv2d(1, 2, 1))
        rule = dict(type="Kaiming", layer="Conv2d", mode="fan_out", nonlinearity="relu")
        action = ins.compile_plan(model, rule).to_dict()["actions"][0]
        assert action["init"] == {"type": "Kaiming", "layer": ["Conv2d"]}
        assert action["arguments"] == {
            "bias": 0.0,
            "bias_prob": None,
            "a": 0.0,
            "mode": "fan_out",
            "nonlinearity": "relu",
            "distribution": "normal",
        }

    def test_str_lists_every_parameter(self) -> None:
        """The printed plan has a row per parameter with its initializer and rule."""
        text = str(ins.compile_plan(_net(dict(type="Normal", layer="Linear", std=0.5))))
        assert "InitPlan for ToyNet" in text
        fc = next(line for line in text.splitlines() if "fc.weight" in line)
        assert "Normal(" in fc and "std=0.5" in fc and "init_cfg" in fc
        assert "PyTorch default" in next(ln for ln in text.splitlines() if "conv1.weight" in ln)


BAD_AGAINST_MODEL = [
    (
        dict(type="Normal", layer="Linear", override=dict(name="head", type="Xavier")),
        "init_cfg[1].override.name: the root module (ToyNet) has no attribute 'head'",
    ),
    (
        dict(type="Normal", layer="Linear", override=dict(name="conv", type="Xavier")),
        "did you mean 'conv",
    ),
    (
        dict(type="Normal", layer="Linear", override=dict(name="training", type="Xavier")),
        "'training' of the root module is a bool, not a submodule",
    ),
    (
        dict(type="Xavier", layer="BatchNorm2d"),
        "init_cfg[1]: at module 'bn': Xavier needs fan-in/fan-out, which a tensor of shape (8,)",
    ),
    (
        dict(type="Normal", layer="Linear", override=dict(name="bn", type="Kaiming")),
        "init_cfg[1].override: at module 'bn': Kaiming needs fan-in/fan-out",
    ),
    (
        dict(type="Pretrained", checkpoint="missing/model.pth"),
        "init_cfg[1].checkpoint: checkpoint 'missing/model.pth' does not exist",
    ),
    (  # found by Hypothesis: torch's clamp_ raised in the middle of execute
        dict(type="TruncNormal", layer="Linear", a=-3.402823466385289e38),
        "a=-3.40282e+38 does not fit Linear.weight (float32, which holds magnitudes up to "
        "3.40282e+38); give a value within ±3.40282e+38.",
    ),
    (
        dict(type="TruncNormal", layer="Linear", bounds="std", b=1e39),
        "b=1e+39 does not fit Linear.weight (float32",
    ),
    (  # seeded and faithful disagreed: all NaN against all 2.0 (a new user's trial)
        dict(type="TruncNormal", layer="Linear", mean=1e39),
        "mean=1e+39 does not fit Linear.weight (float32",
    ),
    (
        dict(type="Normal", layer="Linear", std=1e39),
        "std=1e+39 does not fit Linear.weight (float32",
    ),
]


class TestChecks:
    @pytest.mark.parametrize(("cfg", "text"), BAD_AGAINST_MODEL)
    def test_error_leaves_model_unchanged(self, cfg: Any, text: str) -> None:
        """Errors found against the model are InitCfgError and nothing is written, even where
        MMEngine would already have written earlier modules."""
        model = _net([dict(type="Constant", val=7, layer="Conv2d"), cfg])
        before = state_of(model)
        with pytest.raises(ins.InitCfgError) as info:
            model.init_weights()
        assert text in str(info.value)
        after = state_of(model)
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert not model.is_init

    def test_errors_in_deep_init_cfg_name_the_module_path(self) -> None:
        """A bad rule deep in the tree names its module path."""
        model = zoo.resnet(KIT, block_cfg=dict(type="Constant", val=0, override=dict(name="bn9")))
        model.layers[1][0].init_cfg = dict(type="Normal", std=-1)
        with pytest.raises(ins.InitCfgError) as info:
            ins.compile_plan(model)
        assert "layers.1.0.init_cfg.std: std should be greater than or equal to 0" in str(
            info.value
        )
        assert "layers.0.0.init_cfg.override.name" in str(info.value)

    def test_splits_checked_against_every_weight_shape(self) -> None:
        """`splits` that fit the first Linear's weight but not a second one's, of the same
        dimension: refused when compiled, before anything is written (found by Hypothesis)."""
        model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2))
        before = state_of(model)
        with pytest.raises(ins.InitCfgError) as info:
            ins.compile_plan(model, dict(type="Normal", layer="Linear", splits=[1, 1, 4]))
        assert "at module '1': splits [1, 1, 4] sum to 6, but dimension 0 of shape (2, 6)" in str(
            info.value
        )
        assert all(torch.equal(before[k], v) for k, v in state_of(model).items())

    def test_constructor_validates(self) -> None:
        """A BaseModule rejects a bad init_cfg when it is built."""
        with pytest.raises(ins.InitCfgError, match=r"ToyNet\.init_cfg\.mode: 'x' is not"):
            _net(dict(type="Kaiming", mode="x"))

    def test_error_under_user_init_weights_is_deferred(self) -> None:
        """init_cfg under a user init_weights is a lint at compile time and an error, with its
        path, when super().init_weights() runs with it, before that part writes anything."""
        model = zoo.with_user_init(
            KIT,
            init_cfg=dict(type="Constant", val=1, layer="Linear"),
            child_cfg=dict(type="Constant", val=1, layer="Conv2d", override=dict(name="nope")),
        )
        lints = _kinds(ins.compile_plan(model))
        assert lints["deferred-init-cfg"].startswith(
            "[deferred-init-cfg] child.init_cfg.override.name: module 'child' (Child) has no "
            "attribute 'nope'"
        )
        assert "error only if its code calls super().init_weights()" in lints["deferred-init-cfg"]
        before = state_of(model)
        with pytest.raises(
            ins.InitCfgError,
            match=r"^child\.init_cfg\.override\.name: module 'child' \(Child\) has no attribute",
        ):
            model.init_weights()
        after = state_of(model)
        assert [k for k in before if not torch.equal(before[k], after[k])] == [
            "user.custom_weight",  # user code and the parent's rules ran before the error
            "user.custom_bias",
            "fc.weight",
            "fc.bias",
        ]


def _kinds(plan: ins.InitPlan) -> dict[str, str]:
    return {lint.kind: str(lint) for lint in plan.lints}


class TestLints:
    def test_unmatched_layer(self) -> None:
        """A rule none of whose layer names matches is a warning, with a suggestion."""
        plan = ins.compile_plan(_net(dict(type="Normal", layer=["Conv2D", "Lnear"])))
        (lint,) = [lint for lint in plan.lints if lint.kind == "unmatched-layer"]
        assert lint.level == "warning"
        assert str(lint).startswith(
            "[unmatched-layer] init_cfg.layer: 'Conv2D', 'Lnear' match no module under the "
            "model, so the rule writes nothing; did you mean 'Conv2d'?"
        )

    def test_unmatched_name_beside_matching_ones_is_info(self) -> None:
        """ResNet's layer=['_BatchNorm', 'GroupNorm'] on a model without GroupNorm: info."""
        plan = ins.compile_plan(
            _net(dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]))
        )
        (lint,) = [lint for lint in plan.lints if "layer" in lint.kind]
        assert (lint.kind, lint.level) == ("unmatched-layer-name", "info")
        assert "'GroupNorm' of layer match no module under the model (the others do)" in str(lint)

    def test_no_layer(self) -> None:
        """A rule without layer and override writes nothing; it says so."""
        assert "no-layer" in _kinds(ins.compile_plan(_net(dict(type="Normal"))))

    def test_unreachable_init_cfg(self) -> None:
        """A BaseModule inside a plain nn.Sequential never runs its init_cfg."""
        model = zoo.resnet(KIT, block_cfg=dict(type="Constant", val=0, layer="Conv2d"))
        message = _kinds(ins.compile_plan(model))["unreachable-init-cfg"]
        assert (
            "the init_cfg of 'plain.0' (Bottleneck) never runs: 'plain' is a plain "
            "Sequential" in message
        )

    def test_shadowed_rule(self) -> None:
        """A rule whose every write is overwritten later is reported."""
        lints = _kinds(
            ins.compile_plan(
                _net(
                    [
                        dict(type="Normal", layer="Linear"),
                        dict(type="Constant", val=1, layer="Linear"),
                    ]
                )
            )
        )
        assert "init_cfg[0]: every tensor it writes (2)" in lints["shadowed-rule"]

    def test_no_shadowing_under_a_user_initializer(self) -> None:
        """A user initializer may read what it overwrites: the rule before it is not
        called shadowed."""

        @ins.register_initializer("TestDouble")
        class DoubleInit(ins.WeightInit):
            def init_weight(self, weight: torch.Tensor, generator: Any = None) -> None:
                weight.mul_(2)

        cfg = [dict(type="Normal", layer="Linear"), dict(type="TestDouble", layer="Linear")]
        assert "shadowed-rule" not in _kinds(ins.compile_plan(_net(cfg)))
        cfg = [dict(type="Normal", layer="Linear"), dict(type="Constant", val=1, layer="Linear")]
        assert "shadowed-rule" in _kinds(ins.compile_plan(_net(cfg)))

    def test_default_init(self) -> None:
        """Parameters nothing writes are listed."""
        lints = _kinds(ins.compile_plan(_net(dict(type="Normal", layer="Linear"))))
        assert "6 parameters keep PyTorch's default" in lints["default-init"]

    def test_lints_are_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """Warnings go to the 'initschema' logger."""
        with caplog.at_level(logging.WARNING, logger="initschema"):
            ins.compile_plan(_net(dict(type="Normal", layer="Conv3d")))
        assert any("unmatched-layer" in r.getMessage() for r in caplog.records)

    def test_clean_plan_has_no_warnings(self) -> None:
        """A config that covers the model raises no warning-level lint."""
        plan = ins.compile_plan(
            _net(
                [
                    dict(type="Kaiming", layer="Conv2d"),
                    dict(type="Constant", val=1, layer=["BatchNorm2d"]),
                    dict(type="Normal", layer="Linear"),
                ]
            )
        )
        assert [lint for lint in plan.lints if lint.level == "warning"] == []


class TestNothingWrittenOnError:
    @pytest.mark.filterwarnings("ignore::UserWarning")
    @settings(max_examples=150, deadline=None)
    @given(
        rules(),
        st.sampled_from(["std", "mode", "a", "b", "gain", "bias", "layer", "type", "override"]),
        st.one_of(
            st.text(max_size=4),
            st.floats(),
            st.integers(-3, 3),
            st.none(),
            st.sampled_from(["Conv2d", "LayerNorm", "Xavier", "fan_in"]),
        ),
    )
    def test_mutated_configs_write_all_or_nothing(self, rule: Any, key: str, value: Any) -> None:
        """A mutated config either applies or raises InitCfgError with the model untouched."""
        model = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(2, 2, 1), fc=nn.Linear(2, 2), norm=nn.LayerNorm(2))
        )
        before = state_of(model)
        try:
            ins.initialize(
                model, [dict(type="Constant", val=5, layer="Linear"), {**rule, key: value}]
            )
        except ins.InitCfgError:
            after = state_of(model)
            assert all(torch.equal(before[k], after[k]) for k in before)


class TestStrict:
    def test_warning_lints_become_errors(self) -> None:
        """With strict=True a layer that matches nothing is an InitCfgError at its path."""
        model = _net(dict(type="Normal", layer=["Conv3d"]))
        with pytest.raises(ins.InitCfgError) as info:
            ins.compile_plan(model, strict=True)
        assert str(info.value).startswith("init_cfg.layer: 'Conv3d' matches no module")
        assert "(strict: unmatched-layer)" in str(info.value)

    def test_info_lints_stay_lints(self) -> None:
        """Parameters left at their default are not an error under strict."""
        plan = ins.compile_plan(_net(dict(type="Normal", layer="Linear")), strict=True)
        assert [lint.kind for lint in plan.lints] == ["default-init"]


class _CountedIndex(tuple[str, ...]):
    """A tuple that counts the searches made in it."""

    searches = 0

    def index(self, *args: Any) -> int:
        type(self).searches += 1
        return super().index(*args)


class TestWriters:
    def test_last_writer_and_place(self) -> None:
        """Each written tensor maps to the last write naming it, and its place there."""
        model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
        rules = [dict(type="Normal", layer="Linear"), dict(type="Constant", val=2, layer="Linear")]
        plan = ins.compile_plan(model, rules, log=False)
        writers = plan.writers()
        assert sorted(writers) == ["0.bias", "0.weight", "1.bias", "1.weight"]
        assert {w.action.init.type_name for w in writers.values()} == {"Constant"}
        assert [(w.index, w.position) for w in writers.values()] == [(2, 0), (2, 1), (3, 0), (3, 1)]
        assert writers["1.bias"].brief() == "0 (bias)"
        assert plan.writers() is writers

    def test_action_brief_and_render(self) -> None:
        """Action.brief() is the rule as a table shows it (arguments away from their
        defaults; an opaque step's description), and render(lints=()) is the table without
        the lints that str(plan) lists."""
        model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
        rules = [
            dict(type="Kaiming", layer="Linear", mode="fan_in"),
            dict(type="Call", layer="Linear", method="reset_parameters"),
            dict(type="Normal", layer="Conv2d"),
        ]
        plan = ins.compile_plan(model, rules, log=False)
        assert [a.brief() for a in plan.actions] == [
            "Kaiming(mode='fan_in')",
            "Kaiming(mode='fan_in')",
            "Call(method='reset_parameters')",
            "Call(method='reset_parameters')",
        ]
        assert "[unmatched-layer]" in str(plan)
        assert "Lints:" not in plan.render(lints=())
        assert plan.render(lints=()).splitlines()[0] == str(plan).splitlines()[0]
        assert ins.Writer is type(plan.writers()["0.weight"])

    def test_diff_searches_no_action(self, tmp_path: Path) -> None:
        """diff finds each parameter's writer by table, not by searching every action's
        parameters per parameter (quadratic for a checkpoint loading the whole model)."""
        import dataclasses

        from initschema._cli.show import diff_rows

        model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(20)])
        ckpt = tmp_path / "net.pth"
        torch.save(model.state_dict(), ckpt)
        rules = [dict(type="Normal", layer="Linear"), dict(type="Pretrained", checkpoint=str(ckpt))]
        plans = [ins.compile_plan(model, rule, log=False) for rule in rules]
        counted = [
            dataclasses.replace(
                plan,
                actions=tuple(
                    dataclasses.replace(a, params=_CountedIndex(a.params)) for a in plan.actions
                ),
            )
            for plan in plans
        ]
        _CountedIndex.searches = 0
        rows = diff_rows(counted)
        assert _CountedIndex.searches == 0
        assert [row["path"] for row in rows] == [path for path, _ in plans[0].parameters]
        assert rows[3]["b"]["initializer"] == f"load '1.bias' from {ckpt}"
        assert rows[3]["change"] == f"0 (bias) → load '1.bias' from {ckpt}"
