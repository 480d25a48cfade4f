"""Initializers a project registered in MMEngine's ``WEIGHT_INITIALIZERS`` (or a child
registry, such as mmdet's), under :mod:`initschema.mmengine`: an init_cfg naming one runs
MMEngine's class as MMEngine runs it, as one opaque step."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from mmengine.model import weight_init
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_INITIALIZERS
from pydantic import model_validator
from torch import nn

from .cfg.initializer import WEIGHT_INITIALIZERS, Initializer
from .cfg.opaque import OpaqueInit
from .errors import InitCfgTypeError, TypeProblem

__all__ = ["MMEngineInit", "resolve"]

_BUILT_IN = frozenset(
    {
        weight_init.ConstantInit,
        weight_init.XavierInit,
        weight_init.NormalInit,
        weight_init.TruncNormalInit,
        weight_init.UniformInit,
        weight_init.KaimingInit,
        weight_init.Caffe2XavierInit,
        weight_init.PretrainedInit,
    }
)
"""MMEngine's own initializers: initschema's built-ins of the same names give their bits."""


class MMEngineInit(OpaqueInit):
    """A rule whose ``type`` names an initializer registered in MMEngine's registry by a
    project; its keys (``layer``, ``bias``, its own arguments) are that class's."""

    mm_class: ClassVar[type] = object
    """The MMEngine class the name resolved to."""

    @model_validator(mode="after")
    def _mmengine_accepts(self) -> MMEngineInit:
        try:
            self._build()
        except (TypeError, ValueError, AssertionError, KeyError) as error:
            message = (
                f"{self.origin} refused these arguments ({type(error).__name__}: {error}); "
                f"see its __init__ for what it takes."
            )
            if isinstance(error, TypeError):
                raise InitCfgTypeError([TypeProblem("", message)]) from None
            raise ValueError(message) from None
        return self

    @property
    def origin(self) -> str:
        return f"{self.mm_class.__module__}.{self.mm_class.__qualname__}"

    def arguments(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def _build(self) -> Any:
        return self.mm_class(**copy.deepcopy(self.arguments()))

    def run(self, module: nn.Module) -> None:
        # As MMEngine's _initialize: a fresh instance per call, wholemodule for overrides.
        initializer = self._build()
        initializer.wholemodule = self.whole
        initializer(module)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments().items())
        return f"{self.type_name}({args}) ({self.origin}, from MMEngine's registry)"

    def to_cfg(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"type": self.type_name, **self.arguments()}
        if self.override:
            cfg["override"] = [item.to_cfg() for item in self.override]
        return cfg

    def without_selection(self) -> Initializer:
        # MMEngine's name-only override: the rule's arguments without layer and override.
        kept = {k: v for k, v in self.arguments().items() if k != "layer"}
        return type(self)(**kept)


_CLASSES: dict[tuple[str, type], type[MMEngineInit]] = {}
_NAMES: dict[tuple[tuple[int, int], ...], frozenset[str] | None] = {}


def _registered_names() -> frozenset[str] | None:
    """The names of the projects' classes in MMEngine's initializer registry and its
    children: most rules name none of them (``Kaiming``, …), and looking in the scope's
    registry as MMEngine does costs more than this. None while a child still has modules
    to import (it may register more)."""
    registries, stack = [], [MMENGINE_INITIALIZERS]
    while stack:
        registry = stack.pop()
        registries.append(registry)
        stack.extend(registry.children.values())
    key = tuple((id(r), len(r.module_dict)) for r in registries)
    if key not in _NAMES:
        _NAMES.clear()
        lazy = any(r._locations and not r._imported for r in registries)
        _NAMES[key] = (
            None
            if lazy
            else frozenset(
                n for r in registries for n, c in r.module_dict.items() if c not in _BUILT_IN
            )
        )
    return _NAMES[key]


def resolve(name: str) -> type[Initializer] | None:
    """The rule class for ``name`` when MMEngine's registry (in the current default scope,
    as MMEngine's ``build_from_cfg`` looks it up) holds a project's class under it; None
    for MMEngine's own initializers and unknown names (initschema's registry decides)."""
    names = _registered_names()
    if names is not None and "." not in name and name not in names:
        return None
    with MMENGINE_INITIALIZERS.switch_scope_and_registry(None) as registry:
        found = registry.get(name)
    if not isinstance(found, type) or found in _BUILT_IN:
        return None
    key = (name, found)
    if key not in _CLASSES:
        shadowed = name in dict(WEIGHT_INITIALIZERS.items())
        _CLASSES[key] = type(
            f"MMEngine{found.__name__}",
            (MMEngineInit,),
            {
                "__module__": __name__,
                "mm_class": found,
                "type_name": name,
                "shadows": name if shadowed else "",
            },
        )
    return _CLASSES[key]
