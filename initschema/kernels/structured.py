"""Orthogonal, Dirac, Eye: matrices computed whole (no elementwise seeded sampler; seeded
mode computes them whole and slices)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..cfg.modern import DiracInit, EyeInit, OrthogonalInit
from ._side import TorchSide, draw_nothing, register

_QR_DTYPES = (torch.float32, torch.float64)
"""Dtypes torch's CPU QR takes; orthogonal matrices of others are computed in float32."""


def _orthogonal(init: OrthogonalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    if weight.dtype in _QR_DTYPES or weight.is_meta:
        nn.init.orthogonal_(weight, init.gain, generator=generator)
    else:  # torch's QR has no half kernels: the same draws and matrix in float32
        full = torch.empty(weight.shape, dtype=torch.float32, device=weight.device)
        nn.init.orthogonal_(full, init.gain, generator=generator)
        weight.copy_(full)


def _draw_orthogonal(init: OrthogonalInit, weight: Tensor) -> None:
    # orthogonal_ draws a (rows, numel/rows) standard normal matrix, fresh and contiguous,
    # in the dtype it computes in; QR and the sign fix draw nothing.
    rows = weight.shape[0]
    dtype = weight.dtype if weight.dtype in _QR_DTYPES else torch.float32
    torch.empty((rows, weight.numel() // rows), dtype=dtype, device=weight.device).normal_()


def _orthogonal_moments(init: OrthogonalInit, shape: tuple[int, ...]) -> tuple[float, float] | None:
    if init.splits is not None or len(shape) < 2:
        return None
    # Rows or columns orthonormal: the squares sum to gain²·min(rows, cols).
    return 0.0, init.gain / math.sqrt(max(shape[0], math.prod(shape[1:])))


def _dirac(init: DiracInit, weight: Tensor, generator: torch.Generator | None) -> None:
    nn.init.dirac_(weight, init.groups)


def _eye(init: EyeInit, weight: Tensor, generator: torch.Generator | None) -> None:
    nn.init.eye_(weight)


register(OrthogonalInit, TorchSide(_orthogonal, _draw_orthogonal, _orthogonal_moments))
register(DiracInit, TorchSide(_dirac, draw_nothing))
register(EyeInit, TorchSide(_eye, draw_nothing))
