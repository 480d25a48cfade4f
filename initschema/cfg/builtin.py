"""MMEngine's eight initializers as typed models: Constant, Xavier, Normal, TruncNormal,
Uniform, Kaiming, Caffe2Xavier and Pretrained, with MMEngine's defaults; and the Call rule.

Fields only (the config language does not import torch): each one's torch side is
registered with it in its family's file of :mod:`initschema.kernels`. Beyond MMEngine's
arguments, and off by default (MMEngine's bits unchanged): ``splits`` on every formula,
``fan_axes`` on the fan-based ones, depth scaling of Normal's and TruncNormal's std, and
TruncNormal's bounds in stds (:mod:`initschema.cfg.formulas`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import redact
from .formulas import DepthScaledInit, FanInit, FormulaInit
from .initializer import WEIGHT_INITIALIZERS, Initializer, Number
from .patterns import compile_replacement, compile_user_regex
from .weight_init import layer_matches, parse_layer

__all__ = [
    "MODULE_METHODS",
    "Caffe2XavierInit",
    "CallInit",
    "ConstantInit",
    "Distribution",
    "KaimingInit",
    "Mode",
    "Nonlinearity",
    "NormalInit",
    "PretrainedInit",
    "TruncNormalInit",
    "UniformInit",
    "XavierInit",
    "method_problem",
]

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


def _register(name: str) -> Any:
    def decorator(cls: type[Initializer]) -> type[Initializer]:
        return WEIGHT_INITIALIZERS.register(cls, name)

    return decorator


@_register("Constant")
class ConstantInit(FormulaInit):
    """Fill weights with ``val``."""

    val: Number = Field(description="Value to fill every written weight with.")

    def constants(self, name: str) -> list[tuple[str, float]]:
        return [("val", self.val)] if name == "weight" else super().constants(name)


@_register("Xavier")
class XavierInit(FanInit):
    """Glorot & Bengio (2010): ``std = gain·√(2/(fan_in+fan_out))``."""

    gain: Number = Field(default=1, ge=0, description="Scaling factor.")
    distribution: Distribution = Field(default="normal", description="normal or uniform.")


@_register("Normal")
class NormalInit(DepthScaledInit):
    """Draw weights from ``N(mean, std²)``; with depth scaling, ``std/√(2·(layer_id+1))``
    (torchtitan) or ``std/√(2·n_layers)`` (GPT-2, Megatron)."""

    mean: Number = Field(default=0, description="Mean of the normal distribution.")
    std: Number = Field(default=1, ge=0, description="Standard deviation (≥ 0).")

    def constants(self, name: str) -> list[tuple[str, float]]:
        # The draw is made in the weight's dtype: mean and std must fit it.
        if name == "weight":
            return [("mean", self.mean), ("std", self.scaled_std)]
        return super().constants(name)


@_register("TruncNormal")
class TruncNormalInit(DepthScaledInit):
    """Draw weights from ``N(mean, std²)`` truncated to ``[a, b]`` (MMEngine's, timm's
    ``trunc_normal_``); with ``bounds: std``, ``mean + std·z`` for ``z ~ N(0, 1)``
    truncated to ``[a, b]`` (timm's ``trunc_normal_tf_``, TensorFlow's and JAX's).
    Depth scaling as :class:`NormalInit`'s."""

    mean: Number = Field(default=0, description="Mean of the normal distribution.")
    std: Number = Field(default=1, gt=0, description="Standard deviation (> 0).")
    a: Number = Field(
        default=-2, description="Lower cutoff: a value, or a number of stds with bounds: std."
    )
    b: Number = Field(
        default=2, description="Upper cutoff: a value, or a number of stds with bounds: std."
    )
    bounds: Literal["absolute", "std"] = Field(
        default="absolute",
        description="absolute: a and b are values (MMEngine, torch); std: they count stds "
        "from the mean (timm's trunc_normal_tf_, TensorFlow, JAX; ±2 is ±2σ at any std).",
    )

    shown_if_set: ClassVar[dict[str, Any]] = {**DepthScaledInit.shown_if_set, "bounds": "absolute"}

    def absolute_bounds(self) -> tuple[float, float]:
        """``(a, b)`` as values (at the scaled std, when the bounds count stds)."""
        if self.bounds == "std":
            std = self.scaled_std
            return self.mean + self.a * std, self.mean + self.b * std
        return self.a, self.b

    def constants(self, name: str) -> list[tuple[str, float]]:
        # The draw is made in the weight's dtype, and both bound modes clamp the weight
        # itself to [a, b]: its dtype must hold them all.
        if name == "weight":
            return [("mean", self.mean), ("std", self.scaled_std), ("a", self.a), ("b", self.b)]
        return super().constants(name)

    @model_validator(mode="after")
    def _bounds(self) -> TruncNormalInit:
        if not self.a < self.b:
            raise ValueError(f"TruncNormal needs a < b, got a={self.a!r}, b={self.b!r}.")
        return self


@_register("Uniform")
class UniformInit(FormulaInit):
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


@_register("Kaiming")
class KaimingInit(FanInit):
    """He et al. (2015): ``std = gain(nonlinearity, a)/√fan``."""

    a: Number = Field(default=0, description="Negative slope of the rectifier (leaky_relu).")
    mode: Mode = Field(default="fan_out", description="fan_in or fan_out.")
    nonlinearity: Nonlinearity = Field(default="relu", description="torch.nn.init gain name.")
    distribution: Distribution = Field(default="normal", description="normal or uniform.")


@_register("Caffe2Xavier")
class Caffe2XavierInit(FanInit):
    """Caffe2's "Xavier": Kaiming(a=1, mode='fan_in', nonlinearity='leaky_relu', uniform)."""


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

    def describe(self) -> str:
        return redact(super().describe())  # a URL's password stays out of plans and logs

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "checkpoint" else value

    @field_validator("revise_keys")
    @classmethod
    def _patterns_compile(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        for index, (pattern, replacement) in enumerate(value):
            try:
                compile_replacement(compile_user_regex(pattern), replacement)
            except ValueError as error:
                raise ValueError(f"revise_keys[{index}]: {error}") from None
        return value


@_register("Call")
class CallInit(Initializer):
    """Run a method of every module whose class ``layer`` names, e.g. ``reset_parameters``,
    or the method that recomputes a rotary embedding's ``inv_freq`` buffer on a model
    built on the meta device. An opaque step, like a user ``init_weights``: what it wrote
    is read off tensor version counters. Seeded runs seed the global RNG for it."""

    method: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The name of the method to call, with no arguments, on each matching "
        "module (e.g. reset_parameters, reset_running_stats).",
    )
    layer: tuple[str, ...] | None = Field(
        default=None,
        description="Class names of the submodules to call it on (a module matches its own "
        "class name or the name of one of its class's direct bases).",
    )
    shard_safe: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Declare that the method gives the right values on sharded (DTensor) "
        "tensors: that it writes each rank's part without drawing from the global RNG. "
        "Without it, a Call on a module holding sharded parameters is refused.",
    )

    _layer_forms = field_validator("layer", mode="before")(parse_layer)

    @field_validator("method")
    @classmethod
    def _an_initializer(cls, value: str) -> str:
        if problem := method_problem(value):
            raise ValueError(problem)
        return value

    def matches(self, module: object) -> bool:
        """Whether ``layer`` names ``module``'s class or one of its class's direct bases."""
        return layer_matches(self.layer, module)


MODULE_METHODS = frozenset(
    {
        *("half", "float", "double", "bfloat16", "type", "to", "to_empty"),
        *("cuda", "cpu", "xpu", "ipu", "mtia", "share_memory", "compile"),
        *("apply", "load_state_dict", "state_dict", "set_extra_state", "get_extra_state"),
        *("train", "eval", "requires_grad_", "zero_grad", "forward", "extra_repr"),
        *("add_module", "set_submodule", "get_submodule", "get_parameter", "get_buffer"),
        *("parameters", "named_parameters", "buffers", "named_buffers"),
        *("children", "named_children", "modules", "named_modules"),
    }
)
"""``nn.Module``'s own public methods (and the ``register_*`` ones): none initializes,
several change dtype, device, structure or training state. Named here because this
layer has no torch; the compiler also refuses any other name ``nn.Module`` defines."""


def method_problem(name: str) -> str | None:
    """Why a Call rule may not call the method ``name`` whatever the module, or None."""
    if name.startswith("__"):
        return (
            f"method {name!r} is a special method; a Call rule runs an initializer method "
            f"such as reset_parameters."
        )
    if name in MODULE_METHODS or name.startswith("register_"):
        return (
            f"method {name!r} is one of nn.Module's own methods, which change the model beyond "
            f"its values (dtype, device, structure, training state) or initialize nothing; "
            f"a Call rule runs an initializer method such as reset_parameters."
        )
    return None
