"""The initializers modern models use beyond MMEngine's eight, as typed models: Zeros,
Ones, Orthogonal, Dirac, Eye, VarianceScaling, LecunNormal, LecunUniform, SmallInit and
WangInit.

Fields only (the config language does not import torch): each one's torch side (kernel,
overwritten-write draw, seeded sampler, expected moments) is registered with it in its
family's file of :mod:`initschema.kernels` (Orthogonal, Dirac and Eye have no sampler:
computed whole).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .formulas import FanInit, FormulaInit, integer_only
from .initializer import Number, register_initializer

__all__ = [
    "TRUNCATED_NORMAL_STD",
    "DiracInit",
    "EyeInit",
    "LecunNormalInit",
    "LecunUniformInit",
    "OnesInit",
    "OrthogonalInit",
    "ScalingDistribution",
    "ScalingMode",
    "SmallInit",
    "VarianceScalingBase",
    "VarianceScalingInit",
    "WangInit",
    "ZerosInit",
]

ScalingMode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
ScalingDistribution = Literal["truncated_normal", "normal", "uniform"]

TRUNCATED_NORMAL_STD = 0.87962566103423978
"""The std of a standard normal truncated to [-2, 2] (JAX's variance_scaling divides by it,
so that the samples' std is the one asked for)."""


@register_initializer("Zeros")
class ZerosInit(FormulaInit):
    """Fill weights with 0 (``torch.nn.init.zeros_``): zero-initialized residual branches
    (Fixup, ReZero), heads, biases chosen by ``params``."""


@register_initializer("Ones")
class OnesInit(FormulaInit):
    """Fill weights with 1 (``torch.nn.init.ones_``): norm scales, gates."""


@register_initializer("Orthogonal")
class OrthogonalInit(FormulaInit):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe, McClelland & Ganguli 2014, "Exact
    solutions to the nonlinear dynamics of learning in deep linear neural networks";
    ``torch.nn.init.orthogonal_``): the tensor viewed as ``rows = shape[0]`` by the product
    of the rest is ``Q`` of the QR decomposition of a standard normal matrix (signs fixed
    by ``R``'s diagonal), so ``WᵀW = gain²·I`` (rows ≥ cols) or ``WWᵀ = gain²·I``.
    Not elementwise: seeded mode computes the whole tensor and keeps a shard's slice."""

    gain: Number = Field(default=1, ge=0, description="Scaling factor (≥ 0).")

    def formula_problem(self, shape: tuple[int, ...]) -> str | None:
        if len(shape) < 2:
            return f"Orthogonal needs a tensor of 2 or more dimensions, not shape {shape}"
        return None


@register_initializer("Dirac")
class DiracInit(FormulaInit):
    """The Dirac delta (``torch.nn.init.dirac_``): a convolution weight of 3 to 5 dimensions
    that passes its first ``min(out/groups, in)`` input channels through unchanged, per
    group (identity-initialized convolutions, e.g. Zagoruyko & Komodakis 2017, DiracNets).
    Position-dependent: seeded mode computes the whole tensor and keeps a shard's slice."""

    groups: Annotated[int, Field(strict=True, ge=1)] = Field(
        default=1, description="Groups of the convolution (≥ 1; divides dim 0)."
    )

    _groups_integer = field_validator("groups", mode="before")(integer_only)

    def formula_problem(self, shape: tuple[int, ...]) -> str | None:
        if len(shape) not in (3, 4, 5):
            return f"Dirac needs a convolution weight of 3, 4 or 5 dimensions, not shape {shape}"
        if shape[0] % self.groups:
            return f"Dirac: groups={self.groups} does not divide dimension 0 of shape {shape}"
        return None


@register_initializer("Eye")
class EyeInit(FormulaInit):
    """The identity matrix (``torch.nn.init.eye_``): ones on the diagonal of a 2-D weight,
    zeros elsewhere, so a Linear passes its first ``min(out, in)`` inputs through.
    Position-dependent: seeded mode computes the whole tensor and keeps a shard's slice."""

    def formula_problem(self, shape: tuple[int, ...]) -> str | None:
        return None if len(shape) == 2 else f"Eye needs a 2-D weight, not shape {shape}"


class VarianceScalingBase(FanInit):
    """JAX's ``jax.nn.initializers.variance_scaling``: ``variance = scale/n`` with ``n`` the
    fan of ``mode``; truncated_normal draws ``N(0, 1)`` truncated to ``[-2, 2]`` times
    ``√variance/0.87962566103423978`` (so the samples' std is ``√variance``), normal
    ``N(0, variance)``, uniform ``U(-√(3·variance), √(3·variance))``."""

    def scaling(self) -> tuple[float, ScalingMode, ScalingDistribution]:
        """``(scale, mode, distribution)``."""
        raise NotImplementedError

    def sample_std(self, shape: tuple[int, ...]) -> float:
        """``√variance``: the std of the samples for a tensor (or piece) of ``shape``."""
        scale, mode, _ = self.scaling()
        fan_in, fan_out = self.fans(shape)
        n = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out),
        }[mode]
        return math.sqrt(scale / n)


@register_initializer("VarianceScaling")
class VarianceScalingInit(VarianceScalingBase):
    """JAX/Flax's ``variance_scaling(scale, mode, distribution)`` (TensorFlow's
    ``VarianceScaling``): ``variance = scale/n``, ``n`` = fan_in, fan_out,
    (fan_in+fan_out)/2 or √(fan_in·fan_out); truncated_normal: ``N(0, 1)`` truncated to
    ``[-2, 2]`` times ``√variance/0.87962566103423978``; normal: ``N(0, variance)``;
    uniform: ``U(±√(3·variance))``. Defaults are LeCun normal."""

    scale: Number = Field(default=1, gt=0, description="Scaling factor of the variance (> 0).")
    mode: ScalingMode = Field(
        default="fan_in", description="fan_in, fan_out, fan_avg or fan_geo_avg."
    )
    distribution: ScalingDistribution = Field(
        default="truncated_normal", description="truncated_normal, normal or uniform."
    )

    def scaling(self) -> tuple[float, ScalingMode, ScalingDistribution]:
        return self.scale, self.mode, self.distribution


@register_initializer("LecunNormal")
class LecunNormalInit(VarianceScalingBase):
    """LeCun normal (LeCun et al. 1998, "Efficient BackProp"; JAX's ``lecun_normal``,
    Flax's default kernel init): VarianceScaling(1, fan_in, truncated_normal), so the
    samples' std is ``1/√fan_in``."""

    def scaling(self) -> tuple[float, ScalingMode, ScalingDistribution]:
        return 1.0, "fan_in", "truncated_normal"


@register_initializer("LecunUniform")
class LecunUniformInit(VarianceScalingBase):
    """LeCun uniform (JAX's ``lecun_uniform``): VarianceScaling(1, fan_in, uniform), i.e.
    ``U(±√(3/fan_in))``."""

    def scaling(self) -> tuple[float, ScalingMode, ScalingDistribution]:
        return 1.0, "fan_in", "uniform"


@register_initializer("SmallInit")
class SmallInit(FormulaInit):
    """Small init (Nguyen & Salazar 2019, "Transformers without Tears"; GPT-NeoX's
    ``small_init_init_method``): ``N(0, std²)`` with ``std = √(2/(5·d))``, ``d`` the model
    width (in a Hydra config, interpolate it: ``d: ${model.dim}``)."""

    d: Annotated[int, Field(strict=True, ge=1)] = Field(description="The model width (≥ 1).")

    _d_integer = field_validator("d", mode="before")(integer_only)

    @property
    def std(self) -> float:
        return math.sqrt(2 / (5 * self.d))


@register_initializer("WangInit")
class WangInit(FormulaInit):
    """Wang init (Ben Wang's Mesh-Transformer-JAX; GPT-NeoX's ``wang_init_method``), for
    the output projections of residual branches: ``N(0, std²)`` with
    ``std = 2/(n_layers·√d)``."""

    d: Annotated[int, Field(strict=True, ge=1)] = Field(description="The model width (≥ 1).")
    n_layers: Annotated[int, Field(strict=True, ge=1)] = Field(
        description="The number of layers (≥ 1)."
    )

    _integers = field_validator("d", "n_layers", mode="before")(integer_only)

    @property
    def std(self) -> float:
        return 2 / (self.n_layers * math.sqrt(self.d))
