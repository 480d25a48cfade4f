"""Draws several families share: torch.nn.init's spread for a std, Kaiming's std, and
the seeded truncated normal."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..cfg.formulas import FanInit

__all__ = ["kaiming_std", "spread", "truncated"]


def spread(weight: Tensor, generator: torch.Generator | None, std: float, uniform: bool) -> None:
    """torch.nn.init's draw for a std: ``U(±√3·std)`` or ``N(0, std²)``."""
    if uniform:
        bound = math.sqrt(3.0) * std
        weight.uniform_(-bound, bound, generator=generator)
    else:
        weight.normal_(0.0, std, generator=generator)


def kaiming_std(
    init: FanInit, shape: tuple[int, ...], a: float, mode: str, nonlinearity: str
) -> float:
    """torch.nn.init's Kaiming std ``gain(nonlinearity, a)/√fan`` with ``init``'s fans."""
    fan_in, fan_out = init.fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = nn.init.calculate_gain(nonlinearity, a)  # type: ignore[arg-type]
    return gain / math.sqrt(fan) if fan else math.inf


def truncated(
    values: Tensor, g: torch.Generator, mean: float, std: float, a: float, b: float
) -> None:
    """Seeded ``N(mean, std²)`` truncated to ``[a, b]`` by inverse CDF, as the faithful
    kernel draws it, except that the uniform draw stays inside (-1, 1): an exact -1
    (possible when the lower bound is far out, as -2 is at std 0.02) would give
    erfinv = -inf, clamped to the bound itself, 100 std out."""

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    low = 2 * cdf((a - mean) / std) - 1
    high = 2 * cdf((b - mean) / std) - 1
    values.uniform_(low, high, generator=g)
    edge = 1 - torch.finfo(values.dtype).eps
    values.clamp_(-edge, edge)
    values.erfinv_()
    values.mul_(std * math.sqrt(2.0))
    values.add_(mean)
    values.clamp_(a, b)
