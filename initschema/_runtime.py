"""The one hook through which a lower layer calls an upper one; pausing the garbage collector.

Two conveniences sit low but need the engine above them: ``KaimingInit(...)(model)``
(an initializer model, in the torch-free config layer, applied to a module) and
``plan.execute()`` (a plan value, below the executor). They call :func:`engine`,
which returns what :mod:`initschema.modules` registered with :func:`register` when it
was imported, importing it first if nothing has. Nothing else reaches upward.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["Engine", "engine", "paused_gc", "register"]

_ENGINE_MODULE = "initschema.modules"


class Engine(Protocol):
    """What the upper layers provide to the lower ones."""

    def apply(self, init: Any, module: Any) -> None:
        """``initialize(module, init)``: compile and run one rule."""

    def execute(self, plan: Any, seed: int | None, device: str) -> Any:
        """Run a compiled plan and return its report."""


_registered: list[Engine] = []


def register(implementation: Engine) -> None:
    """Called once, by :mod:`initschema.modules` when it is imported."""
    _registered[:] = [implementation]


def engine() -> Engine:
    """The registered engine (importing the module that registers it, the first time)."""
    if not _registered:
        importlib.import_module(_ENGINE_MODULE)
    return _registered[0]


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after, if it was on).

    Compiling and running a plan allocate one small object per action and per tensor, all
    alive until the plan is dropped, and none in a cycle: the collector's passes over them
    (and over the whole model) find nothing and cost up to a third of a 50,000-tensor
    compile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
