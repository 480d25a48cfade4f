"""``InitReport``: which action last wrote each parameter; tables for plans and reports."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from torch import nn

from .errors import join_path

__all__ = [
    "InitReport",
    "Provenance",
    "ReportRow",
    "possibly_uninitialized",
    "render",
    "shape_text",
]

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
            table.add_row(row.path, shape_text(row.shape), _written_by(row.provenance), source)
        return table

    def __str__(self) -> str:
        return f"{self.summary()}\n{render(self.table())}"


def _written_by(provenance: Provenance | None) -> str:
    if provenance is None:
        return "unchanged"
    if provenance.kind == "call":
        return provenance.initializer
    if provenance.kind == "load":
        return provenance.initializer
    return provenance.initializer


def possibly_uninitialized(owner: nn.Module) -> bool:
    """Whether a tensor of ``owner`` that nothing writes may hold uninitialized memory: its
    class is not one of torch's own modules and has no ``reset_parameters`` (built-in
    modules fill their tensors when built; ``torch.empty`` in user code does not)."""
    return not type(owner).__module__.startswith("torch.") and not callable(
        getattr(owner, "reset_parameters", None)
    )


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def render(renderable: Any) -> str:
    """Text of a rich renderable, as wide as the terminal or as its content needs: rich
    would otherwise cut long parameter and rule paths, and identifiers are never cut."""
    measure = Console(width=100_000, no_color=True).measure(renderable)
    width = max(100, shutil.get_terminal_size((140, 24)).columns, measure.maximum)
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False, soft_wrap=False).print(
        renderable
    )
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
