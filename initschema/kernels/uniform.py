"""Uniform: ``U(a, b)``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..cfg.builtin import UniformInit
from ..cfg.weight_init import WeightInit
from ._side import TorchSide, register


def _uniform(init: UniformInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.uniform_(init.a, init.b, generator=generator)


def draw_uniform(init: WeightInit, weight: Tensor) -> None:
    weight.uniform_()


def _sample_uniform(
    init: UniformInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    values.uniform_(init.a, init.b, generator=g)


def _uniform_moments(init: UniformInit, shape: tuple[int, ...]) -> tuple[float, float]:
    return (init.a + init.b) / 2, (init.b - init.a) / math.sqrt(12)


register(UniformInit, TorchSide(_uniform, draw_uniform, _uniform_moments, _sample_uniform))
