"""Pictures of what initialization wrote (``initschema report --plot out.png``).

Left: the std of every weight (two or more dimensions) against its depth in the model,
measured beside what its initializer predicts, on a log scale, flagged ones marked.
Right: a histogram of the values per initializer type.

matplotlib is an optional extra (``pip install 'initschema[plot]'``), imported only
when a picture is drawn, and used without pyplot: no backend is switched, no global
figure state is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .errors import InitSchemaError
from .plan import InitPlan
from .stats import TensorStats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["SAMPLE", "MissingExtraError", "plot", "require_matplotlib"]

SAMPLE = 100_000
"""At most this many values of one tensor go into a histogram (drawn at random, with a
fixed seed)."""


class MissingExtraError(InitSchemaError, ImportError):
    """An optional dependency is not installed; the message says which ``pip install``
    fixes it."""


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or :class:`MissingExtraError` naming the install."""
    try:
        import matplotlib
    except ImportError as error:
        raise MissingExtraError(
            f"Drawing the report needs matplotlib, which cannot be imported ({error}); "
            f"install it with `pip install 'initschema[plot]'`."
        ) from None
    return matplotlib


def plot(plan: InitPlan, stats: Sequence[TensorStats], path: str) -> None:
    """Draw ``stats`` (from :func:`initschema.stats.measure` of ``plan``) into the image
    file ``path``; its suffix picks the format (``.png``, ``.svg``, ``.pdf``)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    families: dict[str, list[TensorStats]] = {}
    for row in stats:
        if row.std:  # constants make a spike, not a histogram
            families.setdefault(row.family, []).append(row)
    rows = max(1, len(families))
    figure = Figure(figsize=(15, max(5.0, 2.3 * rows)), layout="constrained")
    grid = figure.add_gridspec(rows, 2, width_ratios=(1.5, 1))
    _depth(figure.add_subplot(grid[:, 0]), stats)
    if not families:
        empty = figure.add_subplot(grid[0, 1])
        empty.text(0.5, 0.5, "no tensor with spread values", ha="center", va="center")
        empty.set_axis_off()
    module = plan.module
    for index, (family, members) in enumerate(families.items()):
        values = torch.cat([_sample(module.get_parameter(row.path)) for row in members])
        axes = figure.add_subplot(grid[index, 1])
        bins = min(120, max(10, math.isqrt(values.numel())))
        axes.hist(values.numpy(), bins=bins, color=f"C{index % 10}", alpha=0.8)
        tensors = f"{len(members)} tensor" + ("s" if len(members) > 1 else "")
        axes.set_title(f"{family}: {tensors}, {sum(r.numel for r in members):,} values", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.set_yticks([])
    figure.suptitle(f"Initialization of {type(module).__name__}")
    figure.savefig(path, dpi=110)


def _depth(axes: Axes, stats: Sequence[TensorStats]) -> None:
    weights = [row for row in stats if len(row.shape) >= 2 and row.std]
    axes.set_title("std of each weight, by depth")
    if not weights:
        axes.text(0.5, 0.5, "no weight of two or more dimensions", ha="center", va="center")
        return
    depth = range(len(weights))
    axes.semilogy(depth, [row.std for row in weights], "o-", ms=4, label="measured")
    known = [(i, row.expected_std) for i, row in enumerate(weights) if row.expected_std]
    if known:
        axes.semilogy(*zip(*known, strict=True), "s--", ms=7, mfc="none", label="expected")
    flagged = [(i, row.std) for i, row in enumerate(weights) if row.flags]
    if flagged:
        axes.semilogy(*zip(*flagged, strict=True), "x", color="red", ms=11, mew=2, label="flagged")
    axes.set_xlabel("weight, in parameter order")
    axes.set_ylabel("std (log scale)")
    if len(weights) <= 60:
        axes.set_xticks(list(depth), [row.path for row in weights], rotation=90, fontsize=6)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()


def _sample(tensor: torch.Tensor) -> torch.Tensor:
    """At most :data:`SAMPLE` finite values of ``tensor`` as float64 on the CPU, the same
    ones every time."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() > SAMPLE:
        generator = torch.Generator().manual_seed(0)
        index = torch.randint(flat.numel(), (SAMPLE,), generator=generator)
        flat = flat[index.to(flat.device)]
    values = flat.to("cpu", torch.float64)
    finite = values[torch.isfinite(values)]
    return finite if finite.numel() else torch.zeros(0, dtype=torch.float64)
