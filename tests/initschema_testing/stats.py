"""Comparing two samples' laws."""

from __future__ import annotations

import torch


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical
    distribution functions of ``a`` and ``b``."""
    a, b = a.sort().values, b.sort().values
    points = torch.cat([a, b])
    gap = (
        torch.searchsorted(a, points, right=True) / a.numel()
        - torch.searchsorted(b, points, right=True) / b.numel()
    )
    return float(gap.abs().max())
