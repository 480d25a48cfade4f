"""Tables as text and HTML (rich): what plans, reports and the command print, wrapped to
the terminal without cutting a path."""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["new_table", "render", "render_html", "shape_text"]


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def render_html(renderable: Any) -> str:
    """HTML of a rich renderable with inline styles, for notebooks (``_repr_html_``)."""
    console = Console(record=True, file=io.StringIO(), width=100_000)
    console.print(renderable)
    return console.export_html(
        inline_styles=True, code_format='<pre style="font-family:monospace">{code}</pre>'
    )


_IDENTIFIERS = frozenset({"parameter", "shape", "rule"})
"""Columns of paths and shapes: never wrapped, so a narrow terminal wraps the others."""


def new_table(*columns: str, numbers: Sequence[str] = ()) -> Table:
    """A table with these columns (then ``numbers``, right-aligned); paths, shapes and
    numbers are never wrapped (:func:`render` wraps the other cells between words)."""
    table = Table()
    for column in columns:
        table.add_column(column, no_wrap=column in _IDENTIFIERS)
    for column in numbers:
        table.add_column(column, justify="right", no_wrap=True)
    return table


def render(renderable: Any) -> str:
    """Text of a rich renderable. On a terminal (or with ``COLUMNS`` set) it fits the
    width: cells wrap between words (``Call(method='reset_parameters')`` / ``(may
    write)``), and where the longest words still do not fit, the table grows, since
    identifiers (parameter and rule paths) are never cut. Into a pipe or a file, a row
    stays one line, whatever its width (for grep)."""
    measure = Console(width=100_000, no_color=True).measure(renderable)
    width = max(shutil.get_terminal_size((measure.maximum, 24)).columns, measure.minimum)
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, highlight=False, soft_wrap=False).print(
        renderable
    )
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
