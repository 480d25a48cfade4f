"""Initializer models: defaults, checks, writing, and user-defined initializers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins

BUILT_IN = [
    ins.ConstantInit,
    ins.XavierInit,
    ins.NormalInit,
    ins.TruncNormalInit,
    ins.UniformInit,
    ins.KaimingInit,
    ins.Caffe2XavierInit,
    ins.PretrainedInit,
]


class TestDefaults:
    @pytest.mark.parametrize(
        ("cls", "expected"),
        [
            (ins.XavierInit, dict(gain=1, distribution="normal", bias=0)),
            (ins.NormalInit, dict(mean=0, std=1, bias=0)),
            (ins.TruncNormalInit, dict(mean=0, std=1, a=-2, b=2, bias=0)),
            (ins.UniformInit, dict(a=0, b=1, bias=0)),
            (
                ins.KaimingInit,
                dict(a=0, mode="fan_out", nonlinearity="relu", distribution="normal", bias=0),
            ),
            (ins.PretrainedInit, dict(prefix=None, map_location="cpu")),
        ],
    )
    def test_mmengine_defaults(self, cls: type[ins.Initializer], expected: dict[str, Any]) -> None:
        """Defaults are MMEngine's."""
        fields = {k: f.default for k, f in cls.model_fields.items()}
        assert {k: fields[k] for k in expected} == expected

    def test_constant_needs_val(self) -> None:
        """Constant has no default value."""
        with pytest.raises(ins.InitCfgError, match="Constant requires 'val'"):
            ins.ConstantInit()

    def test_frozen(self) -> None:
        """Models are immutable."""
        init = ins.NormalInit()
        with pytest.raises(ValueError, match="frozen"):
            init.std = 2  # type: ignore[misc]

    def test_every_field_is_described(self) -> None:
        """Field descriptions are the documentation and the schema text."""
        for cls in BUILT_IN:
            for field, info in cls.model_fields.items():
                assert info.description, f"{cls.__name__}.{field} has no description"


class TestWriting:
    def test_weight_then_bias(self) -> None:
        """Writes weight by the formula and bias with the constant (or bias_prob)."""
        layer = nn.Linear(4, 4)
        ins.ConstantInit(val=2, bias_prob=0.5, layer="Linear")(layer)
        assert torch.all(layer.weight == 2) and torch.all(layer.bias == 0)

    def test_layer_matches_class_and_direct_bases(self) -> None:
        """Conv2d matches 'Conv2d' and '_ConvNd', not 'Module' (an indirect base)."""
        init = ins.NormalInit(layer=["_ConvNd"])
        assert init.matches(nn.Conv2d(1, 1, 1)) and not init.matches(nn.Linear(1, 1))
        assert not ins.NormalInit(layer="Module").matches(nn.Conv2d(1, 1, 1))
        assert not ins.NormalInit().matches(nn.Linear(1, 1))

    def test_module_without_bias(self) -> None:
        """A module without bias gets only its weight written."""
        conv = nn.Conv2d(2, 2, 1, bias=False)
        ins.ConstantInit(val=1, bias=5, layer="Conv2d")(conv)
        assert torch.all(conv.weight == 1)


class TestUserInitializers:
    def test_register_and_use_everywhere(self) -> None:
        """A registered subclass parses from a dict, validates, and initializes."""

        @ins.register_initializer("TestOrthogonal")
        class OrthogonalInit(ins.WeightInit):
            fan_based = True
            gain: float = 1.0

            def init_weight(
                self, weight: torch.Tensor, generator: torch.Generator | None = None
            ) -> None:
                nn.init.orthogonal_(weight, self.gain, generator=generator)

        model = nn.Sequential(nn.Linear(8, 8))
        ins.initialize(model, dict(type="TestOrthogonal", layer="Linear", gain=1.0))
        eye = model[0].weight @ model[0].weight.T
        assert torch.allclose(eye, torch.eye(8), atol=1e-5)
        with pytest.raises(ins.InitCfgError, match="unknown key 'gian' for TestOrthogonal"):
            ins.parse_init_cfg(dict(type="TestOrthogonal", gian=2))
        with pytest.raises(ins.InitCfgError, match="TestOrthogonal needs fan-in/fan-out"):
            ins.initialize(nn.LayerNorm(3), dict(type="TestOrthogonal", layer="LayerNorm"))

    def test_registry_rejects_duplicates_and_non_models(self) -> None:
        """Names are unique unless forced; only initializer models register."""
        with pytest.raises(KeyError, match="already registered"):
            ins.WEIGHT_INITIALIZERS.register(ins.XavierInit, "Kaiming")
        with pytest.raises(TypeError, match="not an initializer model"):
            ins.register_initializer(int)  # type: ignore[type-var]

    def test_registry_names(self) -> None:
        """The built-ins are registered under MMEngine's names."""
        assert {
            "Constant",
            "Xavier",
            "Normal",
            "TruncNormal",
            "Uniform",
            "Kaiming",
            "Caffe2Xavier",
            "Pretrained",
        } <= set(ins.WEIGHT_INITIALIZERS)
        assert ins.WEIGHT_INITIALIZERS.get("Kaiming") is ins.KaimingInit
        with pytest.raises(KeyError, match="did you mean 'Kaiming'"):
            ins.WEIGHT_INITIALIZERS.get("Kaimin")
