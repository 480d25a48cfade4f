"""``InitReport``: which action last wrote each parameter, as rows, a table, JSON or log lines."""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from .tables import new_table, render, render_html, shape_text

__all__ = ["InitReport", "Provenance", "ReportRow"]

_KIND_WORDS = {
    "write": "init_cfg rules",
    "load": "checkpoints",
    "call": "user init_weights",
    "method": "Call rules",
}


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


class InitReport:
    """Exact provenance for every parameter of the initialized module.

    Built from ``rows``, or (what execution does) from raw records that are turned into
    :class:`Provenance` text only when the rows are first read: initializing a model
    costs no string formatting per tensor.
    """

    __slots__ = ("_kinds", "_rows", "_source", "findings", "model")

    def __init__(
        self, model: str, rows: Sequence[ReportRow] = (), findings: Sequence[str] = ()
    ) -> None:
        self.model = model
        self.findings: tuple[str, ...] = tuple(findings)
        """What only running could tell, e.g. an init_cfg user code never applied."""
        self._rows: tuple[ReportRow, ...] | None = tuple(rows)
        self._source: tuple[Sequence[tuple[str, tuple[int, ...]]], Callable[[str], Any]] | None
        self._source = None
        self._kinds: Callable[[], Counter[str]] | None = None

    @classmethod
    def lazy(
        cls,
        model: str,
        parameters: Sequence[tuple[str, tuple[int, ...]]],
        provenance: Callable[[str], Provenance | None],
        kinds: Callable[[], Counter[str]],
    ) -> InitReport:
        """A report whose rows are made on first use: ``provenance(path)`` formats one
        parameter's entry; ``kinds()`` counts the kinds of writers (for the summary)."""
        report = cls(model)
        report._rows, report._source, report._kinds = None, (parameters, provenance), kinds
        return report

    @property
    def rows(self) -> tuple[ReportRow, ...]:
        """One row per parameter, in ``named_parameters`` order."""
        if self._rows is None:
            assert self._source is not None
            parameters, provenance = self._source
            self._rows = tuple(ReportRow(p, shape, provenance(p)) for p, shape in parameters)
        return self._rows

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InitReport) and (self.model, self.rows) == (
            other.model,
            other.rows,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InitReport(model={self.model!r}, rows={len(self.rows)})"

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
        if self._rows is None and self._kinds is not None:
            counts = self._kinds()
        else:
            counts = Counter(row.provenance.kind if row.provenance else "none" for row in self.rows)
        parts = [f"{counts[k]} by {w}" for k, w in _KIND_WORDS.items() if counts[k]]
        parts.append(f"{counts['none']} unchanged")
        return f"initialized {self.model}: {counts.total()} parameters, {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "findings": list(self.findings),
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
        """Each parameter at DEBUG, one summary line at INFO, each finding at WARNING."""
        for finding in self.findings:
            logger.warning("%s", finding)
        if logger.isEnabledFor(logging.DEBUG):
            for row in self.rows:
                logger.debug("%s %s: %s", row.path, list(row.shape), _written_by(row.provenance))
        logger.info("%s", self.summary())

    def table(self) -> Table:
        table = new_table("parameter", "shape", "written by", "rule")
        for row in self.rows:
            source = row.provenance.source if row.provenance else ""
            table.add_row(row.path, shape_text(row.shape), _written_by(row.provenance), source)
        return table

    def __str__(self) -> str:
        return f"{self.summary()}\n{render(self.table())}"

    def _repr_html_(self) -> str:
        """The report in a notebook: the summary and the table."""
        return f"<p>{html.escape(self.summary())}</p>{render_html(self.table())}"


def _written_by(provenance: Provenance | None) -> str:
    return "unchanged" if provenance is None else provenance.initializer
