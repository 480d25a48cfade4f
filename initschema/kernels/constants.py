"""Constant, Zeros, Ones: one value everywhere, no random numbers."""

from __future__ import annotations

import torch
from torch import Tensor

from ..cfg.builtin import ConstantInit
from ..cfg.modern import OnesInit, ZerosInit
from ._side import TorchSide, draw_nothing, register


def _constant(init: ConstantInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.fill_(init.val)


def _zeros(init: ZerosInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.zero_()


def _ones(init: OnesInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.fill_(1)


def _sample_constant(
    init: ConstantInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.fill_(init.val)


def _sample_zeros(
    init: ZerosInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.zero_()


def _sample_ones(
    init: OnesInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.fill_(1)


def _constant_moments(init: ConstantInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return init.val, 0.0


def _zeros_moments(init: ZerosInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return 0.0, 0.0


def _ones_moments(init: OnesInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return 1.0, 0.0


register(
    ConstantInit, TorchSide(_constant, draw_nothing, _constant_moments, _sample_constant, fill=True)
)
register(ZerosInit, TorchSide(_zeros, draw_nothing, _zeros_moments, _sample_zeros, fill=True))
register(OnesInit, TorchSide(_ones, draw_nothing, _ones_moments, _sample_ones, fill=True))
