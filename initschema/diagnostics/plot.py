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

from ..engine.plan import InitPlan
from ..errors import InitSchemaError
from .stats import TensorStats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["LABELS", "SAMPLE", "SPAN", "MissingExtraError", "figure", "plot", "require_matplotlib"]

SAMPLE = 100_000
"""At most this many values of one tensor go into a histogram (drawn at random, with a
fixed seed)."""
LABELS = 40
"""At most this many weights are named on the depth axis (every k-th beyond that)."""
SPAN = 100.0
"""A std further than this factor from the median std is drawn at the axis's edge, named,
so that one tiny or huge tensor (a ``cls_token`` at 1e-6) does not flatten the others."""


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
    """Draw ``stats`` (from :func:`initschema.diagnostics.stats.measure` of ``plan``) into the image
    file ``path``; its suffix picks the format (``.png``, ``.svg``, ``.pdf``)."""
    figure(plan, stats).savefig(path, dpi=110)


def figure(plan: InitPlan, stats: Sequence[TensorStats]) -> Any:
    """The matplotlib ``Figure`` that :func:`plot` saves."""
    require_matplotlib()
    from matplotlib.figure import Figure

    families: dict[str, list[TensorStats]] = {}
    for row in stats:
        if row.std:  # constants make a spike, not a histogram
            families.setdefault(row.family, []).append(row)
    rows = max(1, len(families))
    drawing = Figure(figsize=(15, max(5.0, 2.3 * rows)), layout="constrained")
    grid = drawing.add_gridspec(rows, 2, width_ratios=(1.5, 1))
    _depth(drawing.add_subplot(grid[:, 0]), stats)
    if not families:
        empty = drawing.add_subplot(grid[0, 1])
        empty.text(0.5, 0.5, "no tensor with spread values", ha="center", va="center")
        empty.set_axis_off()
    module = plan.module
    for index, (family, members) in enumerate(families.items()):
        values = torch.cat([_sample(module.get_parameter(row.path)) for row in members])
        axes = drawing.add_subplot(grid[index, 1])
        bins = min(120, max(10, math.isqrt(values.numel())))
        axes.hist(values.numpy(), bins=bins, color=f"C{index % 10}", alpha=0.8)
        tensors = f"{len(members)} tensor" + ("s" if len(members) > 1 else "")
        axes.set_title(f"{family}: {tensors}, {sum(r.numel for r in members):,} values", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.set_yticks([])
    drawing.suptitle(f"Initialization of {type(module).__name__}")
    return drawing


def _depth(axes: Axes, stats: Sequence[TensorStats]) -> None:
    weights = [row for row in stats if len(row.shape) >= 2 and row.std]
    axes.set_title("std of each weight, by depth")
    if not weights:
        axes.text(0.5, 0.5, "no weight of two or more dimensions", ha="center", va="center")
        return
    depth = list(range(len(weights)))
    low, high = _body([row.std or 0.0 for row in weights])
    measured = [min(max(row.std or 0.0, low), high) for row in weights]
    axes.semilogy(depth, measured, "o-", ms=4, label="measured")
    # NaN where there is nothing to expect (a Call rule, a checkpoint): the line breaks there.
    expected = [
        min(max(row.expected_std, low), high) if row.expected_std else math.nan for row in weights
    ]
    if any(not math.isnan(value) for value in expected):
        axes.semilogy(depth, expected, "s--", ms=7, mfc="none", label="expected")
    flagged = [(i, measured[i]) for i, row in enumerate(weights) if row.flags]
    if flagged:
        axes.semilogy(*zip(*flagged, strict=True), "x", color="red", ms=11, mew=2, label="flagged")
    for i, row in enumerate(weights):
        if row.std is not None and not low <= row.std <= high:
            axes.annotate(
                f"{row.path}: {row.std:.2g} (off scale)",
                (i, measured[i]),
                xytext=(4, 6 if row.std > high else -12),
                textcoords="offset points",
                fontsize=8,
                color="C3",
            )
    axes.set_ylim(low / 1.5, high * 1.5)
    axes.set_xlabel("weight, in parameter order")
    axes.set_ylabel("std (log scale)")
    step = max(1, math.ceil(len(weights) / LABELS))
    shown = depth[::step]
    axes.set_xticks(shown, [weights[i].path for i in shown], rotation=90, fontsize=7)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()


def _body(stds: Sequence[float]) -> tuple[float, float]:
    """The range of the stds within :data:`SPAN` of their median (all of them, if none is
    an outlier)."""
    positive = sorted(std for std in stds if std > 0) or [1.0]
    median = positive[len(positive) // 2]
    inside = [std for std in positive if median / SPAN <= std <= median * SPAN]
    return min(inside), max(inside)


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
