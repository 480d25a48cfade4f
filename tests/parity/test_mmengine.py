"""Differential tests: the same model, init_cfg and seed give bitwise the same weights as
MMEngine's ``BaseModule.init_weights`` / ``initialize`` (mmengine-lite 0.10.7)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
from initschema_testing import zoo
from initschema_testing.asserts import assert_bitwise_equal, state_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

INITIALIZERS: list[dict[str, Any]] = [
    dict(type="Constant", val=0.5, bias=0.1),
    dict(type="Xavier"),
    dict(type="Xavier", gain=2, distribution="uniform", bias=0.3),
    dict(type="Normal"),
    dict(type="Normal", mean=1, std=0.02, bias_prob=0.01),
    dict(type="TruncNormal"),
    dict(type="TruncNormal", mean=0.1, std=0.02, a=-0.05, b=0.3),
    dict(type="Uniform"),
    dict(type="Uniform", a=-0.5, b=0.25, bias=2),
    dict(type="Kaiming"),
    dict(type="Kaiming", a=0.1, mode="fan_in", nonlinearity="leaky_relu", distribution="uniform"),
    dict(type="Kaiming", nonlinearity="tanh", bias_prob=0.2),
    dict(type="Caffe2Xavier"),
    dict(type="Caffe2Xavier", bias=1),
]


def _both(
    mm: Any,
    build: Callable[[zoo.Kit], nn.Module],
    run: Callable[[nn.Module], None],
    mm_run: Callable[[nn.Module], None],
    seed: int = 0,
) -> None:
    kits = zoo.kits()
    states = []
    for name, runner in (("mmengine", mm_run), ("initschema", run)):
        torch.manual_seed(1234)
        model = build(kits[name])
        torch.manual_seed(seed)
        runner(model)
        states.append(state_of(model))
        states.append({"rng": torch.get_rng_state()})
    assert_bitwise_equal(states[0], states[2])
    assert torch.equal(states[1]["rng"], states[3]["rng"]), "RNG consumed differently"


def _init_weights(model: nn.Module) -> None:
    model.init_weights()


def _same_init_weights(mm: Any, build: Callable[[zoo.Kit], nn.Module], seed: int = 0) -> None:
    _both(mm, build, _init_weights, _init_weights, seed)


class FooNet(nn.Module):
    """MMEngine's own ``initialize`` docstring model, plus a norm and a nested block."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(3, 16, 3)
        self.reg = nn.Conv2d(16, 10, 3)
        self.cls = nn.Conv2d(16, 5, 3)
        self.block = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def _same_initialize(mm: Any, init_cfg: Any, seed: int = 0) -> None:
    _both(
        mm,
        lambda kit: FooNet(),
        lambda m: ins.initialize(m, zoo.cfg(init_cfg)),
        lambda m: mm.initialize(m, zoo.cfg(init_cfg)),
        seed,
    )


class TestInitializers:
    @pytest.mark.parametrize("rule", INITIALIZERS, ids=lambda r: str(r))
    @pytest.mark.parametrize("layer", ["Conv2d", ["Conv2d", "Linear"], "_ConvNd"])
    def test_each_initializer_and_layer_form(
        self, mm: Any, rule: dict[str, Any], layer: Any
    ) -> None:
        """Every initializer with every layer form writes what MMEngine writes."""
        _same_initialize(mm, {**rule, "layer": layer})

    @pytest.mark.parametrize("seed", [0, 1, 7])
    def test_seeds(self, mm: Any, seed: int) -> None:
        """Different seeds, still identical."""
        _same_initialize(mm, dict(type="Kaiming", layer=["Conv2d", "Linear"]), seed)

    def test_layer_matches_direct_base_name(self, mm: Any) -> None:
        """'Module' is the direct base of Linear and LayerNorm, so it selects them."""
        _same_initialize(mm, dict(type="Constant", val=3, layer="Module"))


class TestOverrides:
    @pytest.mark.parametrize(
        "override",
        [
            dict(name="reg", type="Constant", val=3, bias=4),
            [dict(name="reg", type="Xavier"), dict(name="cls", type="Normal", std=0.1)],
            dict(name="reg"),
            [dict(name="cls"), dict(name="reg", type="Uniform")],
            dict(name="block", type="Normal", std=0.5),
            dict(name="block", type="Constant", val=2, layer="Conv2d"),
        ],
        ids=["dict", "list", "name-only", "mixed", "whole-subtree", "layer-ignored"],
    )
    def test_override_forms(self, mm: Any, override: Any) -> None:
        """Every override form: dict, list, name-only inheritance, whole subtree."""
        _same_initialize(mm, dict(type="Kaiming", layer="Conv2d", bias=0.5, override=override))

    def test_name_only_inherits_bias_prob(self, mm: Any) -> None:
        """A name-only override takes the parent's arguments, bias_prob included."""
        _same_initialize(
            mm,
            dict(type="Normal", layer="Linear", std=0.3, bias_prob=0.1, override=dict(name="cls")),
        )

    def test_mixed_list(self, mm: Any) -> None:
        """Rules of a list apply in order, each rule's overrides right after it."""
        _same_initialize(
            mm,
            [
                dict(type="Kaiming", layer="Conv2d", override=dict(name="reg", type="Xavier")),
                dict(type="Normal", layer=["Linear", "Conv2d"], std=0.01),
                dict(type="Constant", val=1, layer="LayerNorm", override=[dict(name="cls")]),
                dict(type="TruncNormal", std=0.2, layer="Linear"),
            ],
        )


class TestBaseModuleTrees:
    def test_toy_net(self, mm: Any) -> None:
        """The tutorial shape: rules on the root, an override, BatchNorm by base class."""
        _same_init_weights(
            mm,
            lambda k: zoo.toy_net(
                k,
                [
                    dict(
                        type="Kaiming", layer="Conv2d", override=dict(name="conv2", type="Xavier")
                    ),
                    dict(type="Normal", layer="Linear", std=0.01),
                    dict(type="Constant", layer="_BatchNorm", val=1),
                ],
            ),
        )

    def test_resnet_shaped(self, mm: Any) -> None:
        """Nested BaseModules in Sequential/ModuleList/ModuleDict; deeper init_cfg wins; a
        BaseModule under a plain nn.Sequential is never reached."""
        _same_init_weights(
            mm,
            lambda k: zoo.resnet(
                k,
                init_cfg=[
                    dict(type="Kaiming", layer="Conv2d"),
                    dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"]),
                ],
                block_cfg=dict(type="Constant", val=0, override=dict(name="bn3")),
                head_cfg=dict(type="Normal", std=0.01, layer=["Linear", "Conv2d"], bias_prob=0.01),
            ),
        )

    def test_vit_shaped(self, mm: Any) -> None:
        """Block-level rules beside model-level ones; attention's own Linear is matched."""
        _same_init_weights(
            mm,
            lambda k: zoo.vit(
                k,
                init_cfg=[
                    dict(type="TruncNormal", std=0.02, layer="Linear"),
                    dict(type="Constant", val=1, bias=0, layer="LayerNorm"),
                    dict(type="Uniform", layer="Conv2d", a=-0.1, b=0.1),
                ],
                block_cfg=dict(type="Xavier", layer="Linear", distribution="uniform"),
            ),
        )

    def test_user_init_weights(self, mm: Any) -> None:
        """A plain child with init_weights, and a BaseModule child that calls super()."""
        _same_init_weights(
            mm,
            lambda k: zoo.with_user_init(
                k,
                init_cfg=[
                    dict(type="Caffe2Xavier", layer="Conv2d"),
                    dict(type="Normal", layer="Linear"),
                ],
                child_cfg=dict(type="Constant", val=3, layer=["Conv2d", "BatchNorm2d"]),
            ),
        )

    def test_without_any_init_cfg(self, mm: Any) -> None:
        """No init_cfg anywhere: only user init_weights run."""
        _same_init_weights(mm, lambda k: zoo.with_user_init(k))

    def test_containers_with_own_init_cfg(self, mm: Any) -> None:
        """Sequential/ModuleList/ModuleDict with init_cfgs of their own."""

        def build(k: zoo.Kit) -> nn.Module:
            return k.Sequential(
                k.ModuleList(
                    [nn.Linear(3, 4), nn.Conv1d(2, 2, 3)],
                    init_cfg=dict(type="Normal", layer="Linear", std=0.2),
                ),
                k.ModuleDict(
                    {"a": nn.Linear(4, 4), "b": k.Sequential(nn.Linear(4, 1))},
                    init_cfg=[dict(type="Uniform", layer="Linear")],
                ),
                init_cfg=dict(type="Kaiming", layer=["Linear", "Conv1d"]),
            )

        _same_init_weights(mm, build)


class TestPretrained:
    def _checkpoint(self, tmp_path: Path, wrap: str) -> str:
        torch.manual_seed(99)
        source = zoo.toy_net(zoo.kits()["initschema"])
        state = source.state_dict()
        if wrap == "ddp":
            state = {f"module.{k}": v for k, v in state.items()}
        elif wrap == "state_dict":
            state = {"state_dict": state, "meta": {"epoch": 3}}
        elif wrap == "prefixed":
            state = {f"backbone.{k}": v for k, v in state.items()}
            state["head.fc.weight"] = torch.ones(2, 2)
        path = tmp_path / f"{wrap}.pth"
        torch.save(state, path)
        return str(path)

    @pytest.mark.parametrize("wrap", ["plain", "ddp", "state_dict"])
    def test_pretrained_is_applied_last(self, mm: Any, tmp_path: Path, wrap: str) -> None:
        """Pretrained runs after the other rules and children, whatever the list order."""
        ckpt = self._checkpoint(tmp_path, wrap)
        _same_init_weights(
            mm,
            lambda k: zoo.toy_net(
                k,
                [
                    dict(type="Pretrained", checkpoint=ckpt),
                    dict(type="Kaiming", layer="Conv2d"),
                ],
            ),
        )

    def test_prefix(self, mm: Any, tmp_path: Path) -> None:
        """prefix selects the sub-dict and removes the prefix."""
        ckpt = self._checkpoint(tmp_path, "prefixed")
        _same_init_weights(
            mm,
            lambda k: zoo.toy_net(
                k,
                [
                    dict(type="Normal", layer="Linear"),
                    dict(type="Pretrained", checkpoint=ckpt, prefix="backbone"),
                ],
            ),
        )

    def test_shape_mismatch_is_skipped(self, mm: Any, tmp_path: Path) -> None:
        """A key whose shape differs (a new head) is skipped; the rest loads."""
        torch.manual_seed(5)
        state = zoo.toy_net(zoo.kits()["initschema"]).state_dict()
        state["fc.weight"] = torch.ones(3, 8)
        path = tmp_path / "head.pth"
        torch.save(state, path)
        _same_init_weights(
            mm,
            lambda k: zoo.toy_net(
                k,
                [
                    dict(type="Pretrained", checkpoint=str(path)),
                    dict(type="Constant", val=2, layer="Linear"),
                ],
            ),
        )

    def test_deeper_pretrained_and_override(self, mm: Any, tmp_path: Path) -> None:
        """Pretrained in a child beats the parent's rules; Pretrained via override."""
        ckpt = self._checkpoint(tmp_path, "plain")
        _same_init_weights(
            mm,
            lambda k: k.Sequential(
                zoo.toy_net(k, dict(type="Pretrained", checkpoint=ckpt)),
                nn.Linear(2, 2),
                init_cfg=dict(type="Normal", layer=["Conv2d", "Linear"]),
            ),
        )
        _same_initialize_model(mm, ckpt)


def _same_initialize_model(mm: Any, ckpt: str) -> None:
    init_cfg = dict(
        type="Normal", layer="Conv2d", override=dict(name="net", type="Pretrained", checkpoint=ckpt)
    )

    class Holder(nn.Module):
        def __init__(self, kit: zoo.Kit) -> None:
            super().__init__()
            self.net = zoo.toy_net(kit)

    _both(
        mm,
        Holder,
        lambda m: ins.initialize(m, zoo.cfg(init_cfg)),
        lambda m: mm.initialize(m, zoo.cfg(init_cfg)),
    )
