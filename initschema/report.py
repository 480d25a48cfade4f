"""``InitReport``: which action last wrote each parameter; tables for plans and reports."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from torch import nn

from .errors import join_path
from .lints import possibly_uninitialized

if TYPE_CHECKING:
    from .plan import InitPlan

__all__ = ["InitReport", "Provenance", "ReportRow"]

_KIND_WORDS = {"write": "init_cfg rules", "load": "checkpoints", "call": "user init_weights"}


@dataclass(frozen=True)
class Provenance:
    """The action that wrote a tensor: its kind, module, initializer and config source."""

    kind: str
    module: str
    initializer: str
    source: str


@dataclass(frozen=True)
class ReportRow:
    """One parameter: its path, shape and the action that last wrote it (None: unchanged)."""

    path: str
    shape: tuple[int, ...]
    provenance: Provenance | None


@dataclass(frozen=True)
class InitReport:
    """Exact provenance for every parameter of the initialized module."""

    model: str
    rows: tuple[ReportRow, ...]

    @classmethod
    def collect(
        cls, module: nn.Module, entries: Mapping[str, Provenance], prefix: str = ""
    ) -> InitReport:
        rows = tuple(
            ReportRow(name, tuple(p.shape), entries.get(join_path(prefix, name)))
            for name, p in module.named_parameters()
        )
        return cls(type(module).__name__, rows)

    def __iter__(self) -> Iterator[ReportRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, path: str) -> ReportRow:
        for row in self.rows:
            if row.path == path:
                return row
        raise KeyError(f"no parameter {path!r} in the report of {self.model}")

    @property
    def unchanged(self) -> tuple[str, ...]:
        """Paths of the parameters no action wrote."""
        return tuple(row.path for row in self.rows if row.provenance is None)

    def summary(self) -> str:
        """One line: how many parameters were written, and by what."""
        counts = Counter(row.provenance.kind if row.provenance else "none" for row in self.rows)
        parts = [f"{counts[k]} by {w}" for k, w in _KIND_WORDS.items() if counts[k]]
        parts.append(f"{counts['none']} unchanged")
        return f"initialized {self.model}: {len(self.rows)} parameters, {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "parameters": [
                {
                    "path": row.path,
                    "shape": list(row.shape),
                    "provenance": asdict(row.provenance) if row.provenance else None,
                }
                for row in self.rows
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def log(self, logger: logging.Logger) -> None:
        """Each parameter at DEBUG, one summary line at INFO."""
        if logger.isEnabledFor(logging.DEBUG):
            for row in self.rows:
                logger.debug("%s %s: %s", row.path, list(row.shape), _written_by(row.provenance))
        logger.info("%s", self.summary())

    def table(self) -> Table:
        table = Table()
        for column in ("parameter", "shape", "written by", "rule"):
            table.add_column(column)
        for row in self.rows:
            source = row.provenance.source if row.provenance else ""
            table.add_row(row.path, _shape(row.shape), _written_by(row.provenance), source)
        return table

    def __str__(self) -> str:
        return f"{self.summary()}\n{_render(self.table())}"


def _written_by(provenance: Provenance | None) -> str:
    if provenance is None:
        return "unchanged"
    if provenance.kind == "call":
        return provenance.initializer
    if provenance.kind == "load":
        return provenance.initializer
    return provenance.initializer


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def _render(renderable: Any) -> str:
    """Text of a rich renderable, as wide as the terminal or as its content needs: rich
    would otherwise cut long parameter and rule paths, and identifiers are never cut."""
    measure = Console(width=100_000, no_color=True).measure(renderable)
    width = max(100, shutil.get_terminal_size((140, 24)).columns, measure.maximum)
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False, soft_wrap=False).print(
        renderable
    )
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def render_plan(plan: InitPlan) -> str:
    """One row per parameter with the action that will write it last, then the lints."""
    writers: dict[str, list[int]] = {}
    for index, action in enumerate(plan.actions):
        if action.kind not in ("mark", "guard"):
            for path in action.params:
                writers.setdefault(path, []).append(index)
    model = type(plan.module).__name__
    steps = sum(1 for a in plan.actions if a.kind not in ("mark", "guard"))
    title = f"InitPlan for {model}: {steps} actions over {len(plan.parameters)} parameters"
    table = Table()
    for column in ("parameter", "shape", "initializer", "rule", "earlier writes"):
        table.add_column(column)
    for path, shape in plan.parameters:
        indices = writers.get(path, [])
        if not indices:
            table.add_row(path, _shape(shape), _unwritten(plan.module, path), "", "")
            continue
        action = plan.actions[indices[-1]]
        what = action.describe_param(path)
        if action.kind == "call":
            what = "user-defined init_weights (may write)"
        table.add_row(path, _shape(shape), what, action.source, str(len(indices) - 1 or ""))
    text = f"{title}\n{_render(table)}"
    if plan.lints:
        text += "\nLints:\n" + "\n".join(f"  {lint}" for lint in plan.lints)
    return text


def _unwritten(model: nn.Module, path: str) -> str:
    owner = model.get_submodule(path.rpartition(".")[0])
    if possibly_uninitialized(owner):
        return "not written: possibly uninitialized"
    return "PyTorch default (unchanged)"
