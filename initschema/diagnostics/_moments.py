"""Moments of a tensor's finite values and the checks on them (see
:mod:`initschema.diagnostics.stats`, whose tolerances these are)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "HUGE",
    "MIN_NUMEL",
    "RELATIVE_FLOOR",
    "SIGMAS",
    "Finding",
    "FindingKind",
    "Moments",
    "cast_to",
]

SIGMAS = 6.0
"""How many standard errors a measured std or mean may be off before it is flagged."""
RELATIVE_FLOOR = 0.01
"""Plus this fraction of the expected std, whatever the size."""
MIN_NUMEL = 30
"""Tensors with fewer values get no statistical check (constants are still exact)."""
HUGE = 1e30
"""Finite values beyond this magnitude are taken for uninitialized memory."""

FindingKind = Literal["std", "mean", "constant", "non-finite", "uninitialized", "init-cfg-ignored"]
_CHUNK = 1 << 22


@dataclass(frozen=True)
class Finding:
    """Something wrong with what initialization wrote: where (a parameter or a module
    path), what kind, and a sentence that says what and how to fix it."""

    path: str
    kind: FindingKind
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def cast_to(value: float, dtype: torch.dtype) -> float:
    """``value`` as a tensor of ``dtype`` holds it (what a constant fill writes)."""
    return (
        float(torch.tensor(value, dtype=torch.float64).to(dtype))
        if dtype.is_floating_point
        else value
    )


@dataclass(frozen=True)
class Moments:
    """Statistics of a tensor's finite values, computed in float64 chunk by chunk."""

    numel: int
    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    nan: int
    inf: int
    denormal: int
    huge: int

    @classmethod
    def of(cls, tensor: Tensor) -> Moments:
        numel = tensor.numel()
        if tensor.is_meta or tensor.is_complex() or numel == 0:
            return cls(numel, 0, None, None, None, None, 0, 0, 0, 0)
        flat = tensor.detach().reshape(-1)
        tiny = torch.finfo(flat.dtype).tiny if flat.dtype in _DENORMAL_DTYPES else 0.0
        count, mean, m2, nan, inf, denormal, huge = 0, 0.0, 0.0, 0, 0, 0, 0
        low, high = math.inf, -math.inf
        for chunk in _chunks(flat):
            finite = chunk
            mask = torch.isfinite(chunk)
            if not bool(mask.all()):
                finite = chunk[mask]
                nans = int(torch.isnan(chunk).sum())
                nan, inf = nan + nans, inf + chunk.numel() - finite.numel() - nans
            size = finite.numel()
            if not size:
                continue
            lowest, highest = (float(v) for v in torch.aminmax(finite))
            low, high = min(low, lowest), max(high, highest)
            magnitude = finite.abs()
            if tiny:
                denormal += int(((magnitude < tiny) & (magnitude > 0)).sum())
            if max(-lowest, highest) > HUGE:
                huge += int((magnitude > HUGE).sum())
            # Chan et al.'s pairwise update: one pass, stable for any number of chunks.
            part_mean = float(finite.mean())
            delta, merged = part_mean - mean, count + size
            mean += delta * size / merged
            m2 += float(finite.var(correction=0)) * size + delta * delta * count * size / merged
            count = merged
        if not count:
            return cls(numel, 0, None, None, None, None, nan, inf, denormal, huge)
        std = math.sqrt(m2 / (count - 1)) if count > 1 else 0.0
        return cls(numel, count, mean, std, low, high, nan, inf, denormal, huge)

    def problems(self, path: str, *, check_denormals: bool) -> Iterator[Finding]:
        if self.nan or self.inf:
            yield Finding(
                path,
                "non-finite",
                f"{self.nan} NaN and {self.inf} infinite values of {self.numel}; find what "
                f"wrote it last (the report says) and why it produced them.",
            )
        garbage = self.huge + (self.denormal if check_denormals else 0)
        if garbage:
            yield Finding(
                path,
                "uninitialized",
                f"{garbage} of {self.numel} values are denormal or beyond {HUGE:g} in "
                f"magnitude, as uninitialized memory holds; make sure something writes it "
                f"(a rule in an init_cfg, or its module's reset_parameters).",
            )

    def deviations(
        self, path: str, expected: tuple[float, float], initializer: str, dtype: torch.dtype
    ) -> Iterator[Finding]:
        assert self.mean is not None and self.std is not None
        assert self.min is not None and self.max is not None
        mean, std = expected
        if std == 0:
            value = cast_to(mean, dtype)
            if not self.min == self.max == value:
                yield Finding(
                    path,
                    "constant",
                    f"values span [{self.min:.6g}, {self.max:.6g}], but {initializer} writes "
                    f"exactly {value:.6g}; something changed it afterwards (user code, a "
                    f"later load), or the write did not happen.",
                )
            return
        if self.count < MIN_NUMEL:
            return
        n = self.count
        resolution = (torch.finfo(dtype).eps if dtype.is_floating_point else 0) * (
            abs(mean) + 3 * std
        )
        std_tol = std * (SIGMAS * math.sqrt(1 / (2 * (n - 1))) + RELATIVE_FLOOR) + resolution
        # The mean's error scales with the spread there is: a wrong std is not also a mean.
        mean_tol = max(std, self.std) * (SIGMAS / math.sqrt(n) + RELATIVE_FLOOR) + resolution
        if abs(self.std - std) > std_tol:
            yield Finding(
                path,
                "std",
                f"std {self.std:.4g} is {self.std / std:.3g}× the {std:.4g} that {initializer} "
                f"predicts (tolerance ±{std_tol:.2g} for {n} values); check the rule's "
                f"arguments (std, gain, mode, nonlinearity) and whatever writes the tensor "
                f"after it.",
            )
        if abs(self.mean - mean) > mean_tol:
            yield Finding(
                path,
                "mean",
                f"mean {self.mean:.4g} is off the {mean:.4g} that {initializer} predicts by "
                f"more than {mean_tol:.2g} ({n} values); check the rule's mean and bounds and "
                f"whatever writes the tensor after it.",
            )


_DENORMAL_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
"""Dtypes whose subnormals no initializer writes (float16's start at 6e-5: normal draws
land there)."""


def _chunks(flat: Tensor) -> Iterator[Tensor]:
    for start in range(0, flat.numel(), _CHUNK):
        yield flat[start : start + _CHUNK].to("cpu", torch.float64)
