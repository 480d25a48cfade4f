"""``WEIGHT_INITIALIZERS``: registered name ↔ initializer model class."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar, overload

from .errors import did_you_mean, shown

if TYPE_CHECKING:
    from .initializers import Initializer

__all__ = ["WEIGHT_INITIALIZERS", "Registry", "option_name", "register_initializer"]

InitT = TypeVar("InitT", bound="type[Initializer]")


class Registry:
    """A name → initializer class table; names are what ``type`` says in a config."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._classes: dict[str, type[Initializer]] = {}
        self.resolvers: list[Callable[[str], type[Initializer] | None]] = []
        """Looked up before the registered names: a name one of them resolves means its
        class (:mod:`initschema.mmengine` adds MMEngine's registry here)."""
        self.base: type | None = None
        """The class every entry must derive from (set by :mod:`initschema.initializers`,
        which defines it above this module)."""

    def register(
        self, cls: type[Initializer], name: str | None = None, *, force: bool = False
    ) -> type[Initializer]:
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

    def get(self, key: str | type) -> type[Initializer]:
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

    def items(self) -> list[tuple[str, type[Initializer]]]:
        return list(self._classes.items())

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {list(self._classes)})"


WEIGHT_INITIALIZERS = Registry("WEIGHT_INITIALIZERS")


@overload
def register_initializer(name: InitT, *, force: bool = False) -> InitT: ...
@overload
def register_initializer(
    name: str | None = None, *, force: bool = False
) -> Callable[[InitT], InitT]: ...
def register_initializer(
    name: str | type | None = None, *, force: bool = False
) -> type | Callable[[InitT], InitT]:
    """Register a typed initializer so that configs can name it in ``type``.

    >>> @register_initializer("Sparse")
    ... class SparseInit(WeightInit):
    ...     sparsity: float = 0.5
    ...     def init_weight(self, weight, generator=None):
    ...         torch.nn.init.sparse_(weight, self.sparsity, generator=generator)
    """
    if isinstance(name, type):
        return WEIGHT_INITIALIZERS.register(name, force=force)

    def decorator(cls: InitT) -> InitT:
        WEIGHT_INITIALIZERS.register(cls, name, force=force)
        return cls

    return decorator


def option_name(type_name: str) -> str:
    """A type name in snake case, as Hydra's ``init`` group names its option (and the
    JSON Schema knows it): ``TruncNormal`` → ``trunc_normal``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type_name).lower()
