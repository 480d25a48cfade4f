"""One initializer's torch side, registered with its config class in one call: the kernel
that writes a tensor, what an overwritten write draws, the seeded sampler and the
expected moments. Each built-in's side lives in its family's file of this folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..cfg.formulas import FormulaInit
from ..cfg.weight_init import KERNELS, WeightInit

__all__ = [
    "FILLS",
    "Draw",
    "Kernel",
    "Moments",
    "Sampler",
    "TorchSide",
    "draw_nothing",
    "pieces",
    "register",
    "side_of",
]

Kernel = Callable[[Any, Tensor, "torch.Generator | None"], None]
"""Writes one tensor (or one piece of a split one) under ``torch.no_grad()``."""
Draw = Callable[[Any, Tensor], None]
"""Draws what the kernel draws from the global RNG, and nothing else."""
Sampler = Callable[[Any, Tensor, torch.Generator, tuple[int, ...]], None]
"""Seeded mode: fills a flat tile of values, fans from the logical shape."""
Moments = Callable[[Any, tuple[int, ...]], "tuple[float, float] | None"]
"""``(mean, std)`` a weight of a shape gets; None where only measured."""


def draw_nothing(init: WeightInit, weight: Tensor) -> None:
    """The draw of a formula that uses no random numbers."""


@dataclass(frozen=True)
class TorchSide:
    """What torch does for one initializer class."""

    kernel: Kernel
    """The formula, with the tensor operations ``torch.nn.init`` makes (the same bits)."""
    draw: Draw
    """What a write that a later one overwrites must still draw (faithful mode)."""
    moments: Moments | None = None
    """The expected moments of a weight (``initschema report``)."""
    sampler: Sampler | None = None
    """Elementwise seeded values; None: computed whole and sliced (Orthogonal, Dirac, Eye)."""
    fill: bool = False
    """The sampler writes a constant: no stream, no generator."""
    split_kernel: Kernel | None = None
    """``kernel`` piece by piece with ``splits`` (set by :func:`register`)."""


_SIDES: dict[type, TorchSide] = {}

FILLS: set[Sampler] = set()
"""Samplers of constants: written in place, with no stream (and no generator)."""


def register(cls: type[WeightInit], side: TorchSide) -> None:
    """Give ``cls`` its torch side; its ``init_weight`` then runs the kernel."""
    split = _in_pieces(side.kernel)
    _SIDES[cls] = TorchSide(
        side.kernel, side.draw, side.moments, side.sampler, side.fill, split_kernel=split
    )
    KERNELS[cls] = _guarded(split)
    if side.fill and side.sampler is not None:
        FILLS.add(side.sampler)


def side_of(cls: type, *, exact: bool = False) -> TorchSide | None:
    """The torch side of ``cls`` (``exact``: its own, else the nearest in its MRO)."""
    if exact:
        return _SIDES.get(cls)
    return next((_SIDES[c] for c in cls.__mro__ if c in _SIDES), None)


def pieces(init: WeightInit, tensor: Tensor) -> tuple[Tensor, ...]:
    """The views of ``tensor`` that ``init``'s ``splits`` cut it into (itself without)."""
    splits = getattr(init, "splits", None)
    if splits is None:
        return (tensor,)
    assert isinstance(init, FormulaInit)
    return torch.split(tensor, list(splits), dim=init.split_dim)


def _guarded(kernel: Kernel) -> Kernel:
    """``kernel`` under ``torch.no_grad()``: what ``init_weight`` runs when called directly."""

    def init_weight(init: Any, weight: Tensor, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            kernel(init, weight, generator)

    return init_weight


def _in_pieces(kernel: Kernel) -> Kernel:
    """``kernel`` applied to each piece ``splits`` cuts a tensor into, in order, from one
    generator (to the whole tensor without ``splits``)."""

    def write(init: Any, weight: Tensor, generator: torch.Generator | None) -> None:
        if init.splits is None:
            kernel(init, weight, generator)
            return
        for piece in pieces(init, weight):
            kernel(init, piece, generator)

    return write
