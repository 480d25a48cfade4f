"""A registry: name ↔ class, what a config's ``type`` names. ``WEIGHT_INITIALIZERS``, the
one of initializer models, is made beside their base (:mod:`initschema.cfg.initializer`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import ClassVar, Generic, Protocol, TypeVar

from ..errors import did_you_mean, shown

__all__ = ["Registry", "option_name", "target_names"]


class Named(Protocol):
    """What a registry holds: classes that learn the name they are registered under."""

    type_name: ClassVar[str]


E = TypeVar("E", bound=Named)


class Registry(Generic[E]):
    """A name → class table (every class a subclass of ``base``, when given); names are
    what ``type`` says in a config."""

    def __init__(self, name: str, base: type[E] | None = None) -> None:
        self.name = name
        self.base = base
        """The class every entry must derive from (None: any class)."""
        self._classes: dict[str, type[E]] = {}
        self.resolvers: list[Callable[[str], type[E] | None]] = []
        """Looked up before the registered names: a name one of them resolves means its
        class (:mod:`initschema.mmengine` adds MMEngine's registry here)."""

    def register(self, cls: type[E], name: str | None = None, *, force: bool = False) -> type[E]:
        """Register ``cls`` under ``name`` (default: the class name without ``Init``)."""
        if not (isinstance(cls, type) and (self.base is None or issubclass(cls, self.base))):
            raise TypeError(
                f"{cls!r} is not an initializer model; subclass initschema.WeightInit "
                f"(or initschema.Initializer) and register that."
            )
        key = name or cls.__name__.removesuffix("Init")
        if not key.isidentifier():
            raise ValueError(f"initializer names must be identifiers, got {key!r}")
        if key in self._classes and self._classes[key] is not cls and not force:
            raise KeyError(
                f"{key!r} is already registered to {self._classes[key].__qualname__}; "
                f"pass force=True to replace it."
            )
        self._classes[key] = cls
        cls.type_name = key
        return cls

    def get(self, key: str | type) -> type[E]:
        """The class registered as ``key`` (a name, or a registered class itself)."""
        if isinstance(key, type):
            if key in self._classes.values():
                return key
            raise KeyError(f"{key.__qualname__} is not registered in {self.name}")
        if isinstance(key, str):
            for resolve in self.resolvers:
                if (found := resolve(key)) is not None:
                    return found
        if isinstance(key, str) and key in self._classes:
            return self._classes[key]
        raise KeyError(self.unknown_message(key))

    def by_target(self, target: object) -> type[E] | None:
        """The registered class a Hydra ``_target_`` names (see :func:`target_names`), or
        the class itself when ``target`` is a registered class; None for anything else."""
        if isinstance(target, type):
            return target if target in self._classes.values() else None
        for cls in self._classes.values():
            if target in target_names(cls):
                return cls
        return None

    def unknown_message(self, key: object) -> str:
        hint = did_you_mean(key, self._classes) if isinstance(key, str) else ""
        registered = ", ".join(self._classes)
        return f"unknown initializer type {shown(key)}{hint} Registered types: {registered}."

    def __contains__(self, key: object) -> bool:
        return key in self._classes or key in self._classes.values()

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def items(self) -> list[tuple[str, type[E]]]:
        return list(self._classes.items())

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {list(self._classes)})"


def target_names(cls: type) -> tuple[str, ...]:
    """What a ``_target_`` may name a registered class by: ``initschema.<Name>`` for the
    package's own classes (the first, the one generated configs use), and the class's
    module and qualified name."""
    own = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__.startswith("initschema."):
        return (f"initschema.{cls.__name__}", own)
    return (own,)


def option_name(type_name: str) -> str:
    """A type name in snake case, as Hydra's ``init`` group names its option (and the
    JSON Schema knows it): ``TruncNormal`` → ``trunc_normal``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type_name).lower()
