"""One frozen pydantic model per initializer; each knows how to write one module.

The models are the documentation: every field is typed, range-checked and
described, and the same models produce the JSON Schema and the Hydra configs.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import Tensor, nn

from .errors import InitCfgError, problems_from_validation
from .functional import bias_init_with_prob, trunc_normal_
from .registry import WEIGHT_INITIALIZERS

__all__ = [
    "Caffe2XavierInit",
    "ConstantInit",
    "Initializer",
    "KaimingInit",
    "NormalInit",
    "Override",
    "PretrainedInit",
    "TruncNormalInit",
    "UniformInit",
    "WeightInit",
    "XavierInit",
]

CONFIG_PATH: ContextVar[str] = ContextVar("initschema_config_path", default="")
"""The config path of the rule being parsed, so that its errors name it."""

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""An int or a float (not a bool, not a string), finite."""

Nonlinearity = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
Mode = Literal["fan_in", "fan_out"]
Distribution = Literal["normal", "uniform"]


class Initializer(BaseModel):
    """Base of every initializer model: frozen, strict about its keys, callable on a module."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type_name: ClassVar[str] = ""

    override: tuple[Override, ...] = Field(
        default=(),
        description="Rules for named submodules (attributes of the module), applied to the "
        "whole submodule right after this rule. An override with only `name` reuses this "
        "rule's arguments.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            name = type(self).type_name or type(self).__name__
            path = CONFIG_PATH.get() or name
            raise InitCfgError(problems_from_validation(error, type(self), name, path)) from None

    @field_validator("override", mode="before")
    @classmethod
    def _override_forms(cls, value: Any) -> Any:
        from .cfg import parse_overrides

        return parse_overrides(value, "override")

    def __call__(self, module: nn.Module) -> None:
        """Apply this rule to ``module`` as MMEngine's ``initialize(module, rule)`` would."""
        from .plan import compile_plan

        compile_plan(module, self).execute()

    def arguments(self) -> dict[str, Any]:
        """The initializer's own arguments (everything but ``layer`` and ``override``)."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name not in ("layer", "override")
        }

    def describe(self) -> str:
        """``Kaiming(mode='fan_in')``: the type and the arguments that differ from defaults."""
        fields = type(self).model_fields
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.arguments().items() if v != fields[k].default
        )
        return f"{self.type_name}({args})"

    def to_cfg(self) -> dict[str, Any]:
        """This rule as an MMEngine-style dict; ``parse_init_cfg`` reads it back unchanged."""
        cfg: dict[str, Any] = {"type": self.type_name}
        for name, value in self.model_dump(exclude_defaults=True).items():
            if name == "override":
                cfg[name] = [item.to_cfg() for item in self.override]
            elif name == "layer":
                cfg[name] = list(value)
            else:
                cfg[name] = value
        return cfg

    def without_selection(self) -> Initializer:
        """This rule's arguments alone: what an override that gives only a ``name`` inherits."""
        update: dict[str, Any] = {"override": ()}
        if "layer" in type(self).model_fields:
            update["layer"] = None
        return self.model_copy(update=update)


class Override(BaseModel):
    """An override: a named submodule and the rule for all of it (None: the parent's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Attribute name of the submodule.")
    init: Initializer | None = Field(
        default=None, description="The rule for the submodule; None reuses the parent's."
    )

    def to_cfg(self) -> dict[str, Any]:
        return {"name": self.name, **(self.init.to_cfg() if self.init else {})}


def _layer_forms(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class WeightInit(Initializer):
    """Base of initializers that write ``weight`` by a formula and fill ``bias`` with a constant.

    Subclass it, implement :meth:`init_weight`, and register the class with
    :func:`initschema.register_initializer` to add an initializer of your own.
    """

    fan_based: ClassVar[bool] = False
    """True when the formula needs fan-in/fan-out (a weight of two or more dimensions)."""

    layer: tuple[str, ...] | None = Field(
        default=None,
        description="Class names of the submodules to write (a module matches its own class "
        "name or the name of one of its class's direct bases). None matches nothing.",
    )
    bias: Number = Field(default=0, description="Value to fill every written bias with.")
    bias_prob: Annotated[float, Field(strict=True, gt=0, lt=1)] | None = Field(
        default=None,
        description="Prior probability p: fill biases with -log((1-p)/p) instead of `bias`.",
    )

    _layer_forms = field_validator("layer", mode="before")(_layer_forms)

    @property
    def bias_value(self) -> float:
        """The bias actually written: from ``bias_prob`` when it is given, else ``bias``."""
        return bias_init_with_prob(self.bias_prob) if self.bias_prob is not None else self.bias

    def describe_tensor(self, name: str) -> str:
        """What this rule writes into the tensor ``name`` (``'weight'`` or ``'bias'``)."""
        if name == "bias":
            return f"constant {self.bias_value:g} ({self.describe()})"
        return self.describe()

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        """Write ``weight`` in place. Subclasses implement this."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement init_weight")

    def write_tensor(
        self, name: str, tensor: Tensor, generator: torch.Generator | None = None
    ) -> None:
        """Write one tensor of a module: ``'weight'`` by the formula, ``'bias'`` by constant."""
        if name == "weight":
            self.init_weight(tensor, generator)
        else:
            nn.init.constant_(tensor, self.bias_value)

    def matches(self, module: nn.Module) -> bool:
        """Whether ``layer`` names ``module``'s class or one of its class's direct bases."""
        if not self.layer:
            return False
        cls = type(module)
        return any(
            name in self.layer for name in (cls.__name__, *(b.__name__ for b in cls.__bases__))
        )

    def constants(self, name: str) -> list[tuple[str, float]]:
        """The numbers written into tensor ``name`` that must fit its dtype (its range is
        checked at compile time); subclasses add their own."""
        return [("bias", self.bias_value)] if name == "bias" else []

    def problems(self, module: nn.Module) -> list[str]:
        """Why writing ``module`` would fail (checked at compile time, before any write)."""
        found = []
        for name in ("weight", "bias"):
            value = getattr(module, name, None)
            if value is not None and not isinstance(value, Tensor):
                found.append(
                    f"{type(module).__name__}.{name} is a {type(value).__name__}, not a tensor, "
                    f"so {self.type_name} cannot write it"
                )
        for name in ("weight", "bias"):
            tensor = getattr(module, name, None)
            if not isinstance(tensor, Tensor):
                continue
            info = torch.finfo(tensor.dtype) if tensor.is_floating_point() else None
            for what, value in self.constants(name):
                if info is not None and abs(value) > info.max:
                    found.append(
                        f"{what}={value:g} does not fit {type(module).__name__}.{name} "
                        f"({str(tensor.dtype).removeprefix('torch.')}, at most {info.max:g})"
                    )
        weight = getattr(module, "weight", None)
        if self.fan_based and isinstance(weight, Tensor) and weight.dim() < 2:
            found.append(
                f"{self.type_name} needs fan-in/fan-out, which a weight of shape "
                f"{tuple(weight.shape)} ({type(module).__name__}) does not have; select this "
                f"module with `layer` or give it its own override rule"
            )
        return found


def _register(name: str) -> Any:
    def decorator(cls: type[Initializer]) -> type[Initializer]:
        return WEIGHT_INITIALIZERS.register(cls, name)

    return decorator


@_register("Constant")
class ConstantInit(WeightInit):
    """Fill weights with ``val``."""

    val: Number = Field(description="Value to fill every written weight with.")

    def constants(self, name: str) -> list[tuple[str, float]]:
        return [("val", self.val)] if name == "weight" else super().constants(name)

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.constant_(weight, self.val)


@_register("Xavier")
class XavierInit(WeightInit):
    """Glorot & Bengio (2010): ``std = gain·√(2/(fan_in+fan_out))``."""

    fan_based: ClassVar[bool] = True
    gain: Number = Field(default=1, ge=0, description="Scaling factor.")
    distribution: Distribution = Field(default="normal", description="normal or uniform.")

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        if self.distribution == "uniform":
            nn.init.xavier_uniform_(weight, gain=self.gain, generator=generator)
        else:
            nn.init.xavier_normal_(weight, gain=self.gain, generator=generator)


@_register("Normal")
class NormalInit(WeightInit):
    """Draw weights from ``N(mean, std²)``."""

    mean: Number = Field(default=0, description="Mean of the normal distribution.")
    std: Number = Field(default=1, ge=0, description="Standard deviation (≥ 0).")

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.normal_(weight, self.mean, self.std, generator=generator)


@_register("TruncNormal")
class TruncNormalInit(WeightInit):
    """Draw weights from ``N(mean, std²)`` truncated to ``[a, b]``."""

    mean: Number = Field(default=0, description="Mean of the normal distribution.")
    std: Number = Field(default=1, gt=0, description="Standard deviation (> 0).")
    a: Number = Field(default=-2, description="Lower cutoff (absolute value, not in stds).")
    b: Number = Field(default=2, description="Upper cutoff (absolute value, not in stds).")

    @model_validator(mode="after")
    def _bounds(self) -> TruncNormalInit:
        if not self.a < self.b:
            raise ValueError(f"TruncNormal needs a < b, got a={self.a!r}, b={self.b!r}.")
        return self

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        trunc_normal_(weight, self.mean, self.std, self.a, self.b, generator=generator)


@_register("Uniform")
class UniformInit(WeightInit):
    """Draw weights from ``U(a, b)``."""

    a: Number = Field(default=0, description="Lower bound.")
    b: Number = Field(default=1, description="Upper bound (≥ a).")

    def constants(self, name: str) -> list[tuple[str, float]]:
        if name == "weight":
            return [("a", self.a), ("b", self.b), ("b - a", self.b - self.a)]
        return super().constants(name)

    @model_validator(mode="after")
    def _bounds(self) -> UniformInit:
        if not self.a <= self.b:
            raise ValueError(f"Uniform needs a <= b, got a={self.a!r}, b={self.b!r}.")
        return self

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.uniform_(weight, self.a, self.b, generator=generator)


@_register("Kaiming")
class KaimingInit(WeightInit):
    """He et al. (2015): ``std = gain(nonlinearity, a)/√fan``."""

    fan_based: ClassVar[bool] = True
    a: Number = Field(default=0, description="Negative slope of the rectifier (leaky_relu).")
    mode: Mode = Field(default="fan_out", description="fan_in or fan_out.")
    nonlinearity: Nonlinearity = Field(default="relu", description="torch.nn.init gain name.")
    distribution: Distribution = Field(default="normal", description="normal or uniform.")

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        kaiming = (
            nn.init.kaiming_uniform_ if self.distribution == "uniform" else nn.init.kaiming_normal_
        )
        kaiming(
            weight, a=self.a, mode=self.mode, nonlinearity=self.nonlinearity, generator=generator
        )


@_register("Caffe2Xavier")
class Caffe2XavierInit(WeightInit):
    """Caffe2's "Xavier": Kaiming(a=1, mode='fan_in', nonlinearity='leaky_relu', uniform)."""

    fan_based: ClassVar[bool] = True

    def init_weight(self, weight: Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.kaiming_uniform_(
            weight, a=1, mode="fan_in", nonlinearity="leaky_relu", generator=generator
        )


@_register("Pretrained")
class PretrainedInit(Initializer):
    """Load a checkpoint into the module (missing keys keep their values)."""

    checkpoint: str = Field(
        min_length=1,
        description="A checkpoint: a .pth/.pt/.bin or .safetensors file, a sharded index "
        "(*.safetensors.index.json, *.bin.index.json), a directory holding one, an "
        "http(s):// URL (downloaded once into the cache), torchvision://NAME or "
        "open-mmlab://NAME.",
    )
    prefix: str | None = Field(
        default=None,
        description="Load only the checkpoint keys under this prefix (e.g. 'backbone.'), "
        "with the prefix removed.",
    )
    map_location: str | None = Field(default="cpu", description="Where tensors are read to.")
    revise_keys: tuple[tuple[str, str], ...] = Field(
        default=((r"^module\.", ""),),
        description="(regex, replacement) pairs applied in order to every checkpoint key; by "
        "default a leading 'module.' (DDP) is stripped. Without an explicit value they apply "
        "only when there is no prefix, as in MMEngine.",
    )
    allow_pickle: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Unpickle arbitrary objects in torch checkpoints (weights_only=False). "
        "Only for files you trust: unpickling can run code.",
    )
    on_mismatch: Literal["skip", "error"] = Field(
        default="skip",
        description="A checkpoint entry whose shape differs from the model's: skip it with a "
        "warning (MMEngine's behaviour), or make it an error.",
    )
    strict: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Demand that every model key is in the checkpoint and every checkpoint key "
        "in the model.",
    )

    @field_validator("revise_keys")
    @classmethod
    def _patterns_compile(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for pattern, _ in value:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"revise_keys pattern {pattern!r} is not a regex: {error}"
                ) from None
        return value


Initializer.model_rebuild()
Override.model_rebuild()
