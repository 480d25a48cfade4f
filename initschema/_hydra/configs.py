"""The ``init`` config group: one dataclass per registered initializer, generated from
its pydantic model, and the entry points through which packages add their own.

Generated classes pickle by the initializer they stand for (its module and registry
name), not by an attribute of this package: a launcher's worker process (joblib, a
cluster launcher) rebuilds them after importing the module that registers the
initializer, so an initializer registered by importing a module goes through a
pickling launcher too.
"""

from __future__ import annotations

import copyreg
import enum
import functools
import importlib
import sys
from abc import ABCMeta
from collections.abc import Iterator, Mapping
from dataclasses import MISSING as DC_MISSING
from dataclasses import field, make_dataclass
from types import UnionType
from typing import Annotated, Any, Optional, Union, get_args, get_origin

from ..cfg.initializer import WEIGHT_INITIALIZERS, Initializer
from ..cfg.registry import option_name, target_names
from ..cfg.schema import ENTRY_POINTS, load_entry_points
from ..errors import literal_choices

__all__ = [
    "ENTRY_POINTS",
    "GROUP",
    "config_name",
    "load_entry_points",
    "register_configs",
    "structured_config",
    "target_of",
]

GROUP = "init"
"""The config group holding one option per initializer type."""

_HYDRA_MODULE = "initschema.hydra"
"""Where generated classes say they live (their names are its attributes)."""


class _GeneratedMeta(ABCMeta):
    """The metaclass of generated dataclasses, so that they pickle through a reducer."""


class _Generated(Mapping[str, Any], metaclass=_GeneratedMeta):
    """Base of the generated dataclasses: also a read-only mapping of their fields (choices
    as their strings), so that the objects ``OmegaConf.to_object`` makes of a config are
    rules ``parse_init_cfg`` reads like any other mapping."""

    _initializer: tuple[str, str] = ("", "")

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:  # type: ignore[attr-defined]
            raise KeyError(key)
        value = getattr(self, key)
        return value.value if isinstance(value, enum.Enum) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)  # type: ignore[attr-defined]


class _ChoiceMeta(enum.EnumMeta):
    """The metaclass of generated choice Enums, so that they pickle through a reducer."""


class _Choice(str, enum.Enum, metaclass=_ChoiceMeta):
    """Base of the generated choice Enums."""


def _initializer(module: str, type_name: str) -> type[Initializer]:
    """The registered initializer ``type_name``, once ``module`` (which registers it) is
    imported: what a worker process needs before rebuilding a generated class."""
    if type_name not in WEIGHT_INITIALIZERS:
        load_entry_points()
    if type_name not in WEIGHT_INITIALIZERS and module not in sys.modules:
        importlib.import_module(module)
    return WEIGHT_INITIALIZERS.get(type_name)


def _config_class(module: str, type_name: str) -> type:
    return structured_config(_initializer(module, type_name))


def _choice_class(module: str, type_name: str, name: str) -> type:
    return _choices(structured_config(_initializer(module, type_name)))[name]


def _reduce_config(cls: Any) -> tuple[Any, tuple[str, ...]]:
    return _config_class, cls._initializer


def _reduce_choice(cls: Any) -> tuple[Any, tuple[str, ...]]:
    return _choice_class, cls._initializer


copyreg.pickle(_GeneratedMeta, _reduce_config)
copyreg.pickle(_ChoiceMeta, _reduce_choice)


def _choices(config: type) -> dict[str, type]:
    return {f.name: f.type for f in config.__dataclass_fields__.values() if _is_choice(f.type)}  # type: ignore[attr-defined]


def _is_choice(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, _Choice)


def _scalar(annotation: Any) -> tuple[type | None, bool]:
    """(float, str or bool, whether None is allowed) for such fields, else (None, _)."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    nullable = type(None) in args
    bases = {get_args(a)[0] if get_origin(a) is Annotated else a for a in args}
    bases.discard(type(None))
    scalar = next(iter(bases)) if len(bases) == 1 and bases <= {float, str, bool} else None
    return scalar, nullable


@functools.cache
def structured_config(cls: type[Initializer]) -> type:
    """A dataclass with ``cls``'s fields for Hydra's ConfigStore (generated, not hand-written).

    It and its Enums are named ``initschema.hydra.NormalInitConfig``,
    ``initschema.hydra.KaimingMode``, and pickle by the initializer they stand for, so
    composed configs, their containers and the typed rules pickle, and a child process
    rebuilds them (importing the module that registers a user initializer).
    """
    origin = (cls.__module__, cls.type_name)
    fields: list[tuple[str, Any, Any]] = [
        ("_target_", str, field(default=target_of(cls))),
        ("type", str, field(default=cls.type_name)),
    ]
    for name, info in cls.model_fields.items():
        default = DC_MISSING if info.is_required() else info.default
        if default == ():
            default = None
        choices = literal_choices(info.annotation)
        scalar, nullable = _scalar(info.annotation)
        kind: Any = Any
        if choices and not any(c in _ENUM_RESERVED for c in choices):
            kind = _public(
                _Choice(  # type: ignore[call-overload]
                    f"{cls.type_name}{name.title().replace('_', '')}",
                    {c: c for c in choices},
                    module=_HYDRA_MODULE,
                )
            )
            kind._initializer = (*origin, name)
            default = kind(default)
        elif choices:  # a choice Enum cannot have as a member name: checked on validation
            kind = str
        elif scalar is not None:
            kind = Optional[scalar] if nullable else scalar  # noqa: UP045 (OmegaConf 2.3 needs it)
        value = "???" if default is DC_MISSING else default
        fields.append((name, kind, field(default=value)))
    generated: Any = make_dataclass(config_name(cls.type_name), fields, bases=(_Generated,))
    generated._initializer = origin
    return _public(generated)  # type: ignore[no-any-return]


_ENUM_RESERVED = frozenset({"mro"})
"""Names an Enum member cannot have (``match: mro``)."""

GENERATED: dict[str, type] = {}
"""Every generated class by name (what ``initschema.hydra``'s attributes resolve to)."""


def config_name(type_name: str) -> str:
    """The generated dataclass of an initializer type: ``Normal`` → ``NormalInitConfig``."""
    return f"{type_name}InitConfig"


def target_of(cls: type) -> str:
    """What ``_target_`` names ``cls`` by in generated configs: ``initschema.NormalInit``
    for the package's own classes, else the class's module and qualified name."""
    return target_names(cls)[0]


def _public(generated: Any) -> Any:
    generated.__module__ = _HYDRA_MODULE
    generated.__qualname__ = generated.__name__
    GENERATED[generated.__name__] = generated
    return generated


def register_configs(store: Any = None) -> None:
    """Store one option per registered initializer in group ``init`` (call again after
    registering your own initializers; :func:`initschema.hydra.main` does)."""
    from hydra.core.config_store import ConfigStore

    load_entry_points()
    store = store or ConfigStore.instance()
    for type_name, cls in WEIGHT_INITIALIZERS.items():
        store.store(group=GROUP, name=option_name(type_name), node=structured_config(cls))
