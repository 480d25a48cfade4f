"""The MMEngine door: one line switches an OpenMMLab project to initschema.

In an MMEngine config file (what OpenMMLab projects write for plugins)::

    custom_imports = dict(imports=["initschema.mmengine"], allow_failed_imports=False)

or in Python, ``import initschema.mmengine``. From then on every MMEngine ``BaseModule``
(so every OpenMMLab model, and MMEngine's ``BaseModel``) validates its ``init_cfg`` when
it is built and initializes through initschema's plan: the same weights and RNG state as
MMEngine's ``init_weights()``, every problem raised before the first write, and the
per-parameter lines MMEngine writes to the run's log naming the rule (by config path) or
the code that last wrote each parameter.

The methods of MMEngine's ``BaseModule`` class itself are replaced, so classes defined
before the import and names bound by ``from mmengine.model import BaseModule`` are
switched too. :func:`deactivate` undoes it all (:func:`activate` redoes it); activating
twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from logging import FileHandler
from typing import Any

try:
    from mmengine.dist import is_main_process
    from mmengine.logging import MMLogger, print_log
    from mmengine.model import base_module as _mm_base_module
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a bare environment
    if (error.name or "").split(".")[0] != "mmengine":
        raise
    raise ModuleNotFoundError(
        'initschema.mmengine needs MMEngine, which is not installed; pip install "initschema['
        'mmengine]" (or any mmengine / mmengine-lite 0.10) installs it.',
        name="mmengine",
    ) from None

import torch
from torch import nn

from ._mmengine_registry import resolve
from .cfg.initializer import WEIGHT_INITIALIZERS
from .engine.compiler import MODEL_WRAPPERS
from .engine.report import InitReport, Provenance
from .modules import check_init_cfg, plan_own_init_weights, run_init_weights

__all__ = ["activate", "active", "deactivate", "deactivated"]

BaseModule = _mm_base_module.BaseModule
"""MMEngine's class (the one this module switches), not initschema's."""

_ORIGINALS: dict[str, Any] = {}


def active() -> bool:
    """Whether MMEngine's ``BaseModule`` currently runs through initschema."""
    return bool(_ORIGINALS)


def activate() -> None:
    """Switch MMEngine's ``BaseModule`` (and every subclass, defined already or later) to
    initschema; importing this module does it. A second call does nothing."""
    if _ORIGINALS:
        return
    _ORIGINALS.update((name, BaseModule.__dict__[name]) for name in ("__init__", "init_weights"))
    BaseModule.__init__ = _init
    BaseModule.init_weights = _init_weights
    BaseModule._initschema_base_module = True  # the compiler's marker of a BaseModule
    BaseModule.__init_subclass__ = classmethod(_init_subclass)
    for cls in _subclasses():
        plan_own_init_weights(cls, _dump)
    MODEL_WRAPPERS.append(_is_model_wrapper)
    WEIGHT_INITIALIZERS.resolvers.append(resolve)


def deactivate() -> None:
    """Give MMEngine's ``BaseModule`` back its own methods (modules built while the door
    was open keep what they are; their ``init_weights`` is MMEngine's again)."""
    if not _ORIGINALS:
        return
    for cls in _subclasses():
        own = cls.__dict__.get("init_weights")
        if hasattr(own, "__wrapped_init_weights__"):
            cls.init_weights = own.__wrapped_init_weights__  # type: ignore[attr-defined, union-attr]
    for name, original in _ORIGINALS.items():
        setattr(BaseModule, name, original)
    del BaseModule._initschema_base_module
    del BaseModule.__init_subclass__
    MODEL_WRAPPERS.remove(_is_model_wrapper)
    WEIGHT_INITIALIZERS.resolvers.remove(resolve)
    _ORIGINALS.clear()


@contextmanager
def deactivated() -> Iterator[None]:
    """MMEngine's own ``BaseModule`` inside the block (e.g. to compare with it), the door
    as it was afterwards."""
    was_active = active()
    deactivate()
    try:
        yield
    finally:
        if was_active:
            activate()


def _subclasses() -> list[type]:
    found: list[type] = []
    stack = [BaseModule]
    while stack:
        for cls in stack.pop().__subclasses__():
            if cls not in found:
                found.append(cls)
                stack.append(cls)
    return found


def _init(self: nn.Module, init_cfg: Any = None) -> None:
    _ORIGINALS["__init__"](self, init_cfg)
    check_init_cfg(self, init_cfg)


def _init_subclass(cls: type, /, **kwargs: Any) -> None:
    super(BaseModule, cls).__init_subclass__(**kwargs)
    plan_own_init_weights(cls, _dump)


def _init_weights(self: nn.Module) -> None:
    """Initialize the weights from the ``init_cfg`` of this module and its descendants
    (initschema's plan: every rule checked before the first write)."""
    if self.is_init:
        print_log(
            f"init_weights of {type(self).__name__} has been called more than once.",
            logger="current",
            level=logging.WARNING,
        )
        return
    report = run_init_weights(self)
    if report is not None:
        _dump(self, report)


_init_weights._initschema_base_init_weights = True  # type: ignore[attr-defined]


def _is_model_wrapper(module: nn.Module) -> bool:
    # Looked up when called, as MMEngine's init_weights does (its tests patch it there).
    return bool(_mm_base_module.is_model_wrapper(module))


def _dump(module: nn.Module, report: InitReport) -> None:
    """MMEngine's ``_dump_init_info``: each parameter's name, shape and what initialized it
    into the current MMLogger's log files (or as INFO records when it has none), now
    with initschema's provenance; then the report's summary line."""
    if not is_main_process():
        return
    logger = MMLogger.get_current_instance()
    owner = type(module).__name__
    lines = [
        f"\n{row.path} - {torch.Size(row.shape)}: \n{_info(row.provenance, owner)} \n"
        for row in report.rows
    ]
    files = [h for h in logger.handlers if isinstance(h, FileHandler)]
    for handler in files:
        if handler.stream is not None:  # MMEngine writes to the files themselves
            handler.stream.write("Name of parameter - Initialization information\n")
            handler.stream.write("".join(lines))
            handler.stream.flush()
    if not files:
        for line in lines:
            logger.info(line)
    logger.info(report.summary())


def _info(provenance: Provenance | None, owner: str) -> str:
    if provenance is None:
        return f"The value is the same before and after calling `init_weights` of {owner}"
    module = provenance.module or "(root)"
    if provenance.kind == "call":
        return f"Initialized by {provenance.initializer} at module '{module}'"
    return f"Initialized by {provenance.initializer} from {provenance.source} at module '{module}'"


activate()
