"""The progress bar of long steps (a download, a checkpoint load, a large init): shown on a
terminal only, for work past a size; below the engine and the checkpoints, which both use
it, and free of torch."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """A rich progress bar on a terminal when ``total`` bytes exceed ``threshold``; else
    nothing. Used as ``with ProgressBar(label, total) as advance: advance(n)``."""

    def __init__(self, label: str, total: int | None, threshold: int = 256 * 2**20) -> None:
        self.bar: Any = None
        if total and total > threshold and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> ProgressBar:
        if self.bar is not None:
            self.bar.start()
        return self

    def __call__(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, amount)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
