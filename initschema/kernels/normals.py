"""Normal, TruncNormal, SmallInit, WangInit: normal draws of a given (or depth-scaled)
std, truncated or not."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..cfg.builtin import NormalInit, TruncNormalInit
from ..cfg.modern import SmallInit, WangInit
from ..cfg.weight_init import WeightInit
from ._common import truncated
from ._side import TorchSide, register
from .functions import trunc_normal_


def _normal(init: NormalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.normal_(init.mean, init.scaled_std, generator=generator)


def _trunc_normal(init: TruncNormalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    if init.bounds == "std":  # timm's trunc_normal_tf_: N(0, 1) on [a, b], then ·std + mean
        trunc_normal_(weight, 0.0, 1.0, init.a, init.b, generator=generator)
        weight.mul_(init.scaled_std).add_(init.mean)
    else:
        trunc_normal_(weight, init.mean, init.scaled_std, init.a, init.b, generator=generator)


def _normal_of_std(
    init: SmallInit | WangInit, weight: Tensor, generator: torch.Generator | None
) -> None:
    weight.normal_(0.0, init.std, generator=generator)


def draw_normal(init: WeightInit, weight: Tensor) -> None:
    weight.normal_()


def draw_trunc_normal(init: WeightInit, weight: Tensor) -> None:
    # The uniform draw of trunc_normal_; erfinv, scaling and clamping only transform it.
    weight.uniform_(-1.0, 1.0)


def _sample_normal(
    init: NormalInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.normal_(init.mean, init.scaled_std, generator=g)


def _sample_trunc_normal(
    init: TruncNormalInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    if init.bounds == "std":  # timm's trunc_normal_tf_: N(0, 1) on [a, b], then ·std + mean
        truncated(values, g, 0.0, 1.0, init.a, init.b)
        values.mul_(init.scaled_std).add_(init.mean)
    else:
        truncated(values, g, init.mean, init.scaled_std, init.a, init.b)


def _sample_normal_of_std(
    init: SmallInit | WangInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.normal_(0.0, init.std, generator=g)


def _normal_moments(init: NormalInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return init.mean, init.scaled_std


def _trunc_normal_moments(
    init: TruncNormalInit, shape: tuple[int, ...]
) -> tuple[float, float] | None:
    return truncated_moments(init.mean, init.scaled_std, *init.absolute_bounds())


def _of_std_moments(init: SmallInit | WangInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return 0.0, init.std


def truncated_moments(mean: float, std: float, a: float, b: float) -> tuple[float, float] | None:
    """Mean and std of N(mean, std²) truncated to [a, b] (a, b absolute); None when [a, b]
    holds no mass in float64 (``trunc_normal_`` then clamps everything to a bound)."""

    def pdf(x: float) -> float:
        return math.exp(-x * x / 2) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0

    def tail(x: float) -> float:  # P(Z > x), without cancellation far in the upper tail
        return math.erfc(x / math.sqrt(2)) / 2

    alpha, beta = (a - mean) / std, (b - mean) / std
    mass = tail(alpha) - tail(beta) if alpha > 0 else tail(-beta) - tail(-alpha)
    if mass <= 1e-12:
        return None
    shift = (pdf(alpha) - pdf(beta)) / mass
    variance = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift * shift
    return mean + std * shift, std * math.sqrt(max(variance, 0.0))


register(NormalInit, TorchSide(_normal, draw_normal, _normal_moments, _sample_normal))
register(
    TruncNormalInit,
    TorchSide(_trunc_normal, draw_trunc_normal, _trunc_normal_moments, _sample_trunc_normal),
)
for _cls in (SmallInit, WangInit):
    register(_cls, TorchSide(_normal_of_std, draw_normal, _of_std_moments, _sample_normal_of_std))
