"""``Initializer``, the base of every rule, with its overrides and the parsing of one rule:
a rule holds overrides that hold rules, so the three are one recursive concept.

Like the rest of :mod:`initschema.cfg`: pydantic only, no torch at import time, so a
config can be validated by an editor, a pre-commit hook or ``initschema validate`` at
pydantic's speed. The models are the documentation: every field is typed, range-checked and
described, and the same models produce the JSON Schema and the Hydra configs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import _runtime
from ..errors import (
    InitCfgError,
    Problem,
    TypeProblem,
    did_you_mean,
    join_path,
    problems_from_validation,
    shown,
)
from .patterns import compile_path_pattern, is_pattern
from .registry import Registry, target_names

__all__ = [
    "CONFIG_PATH",
    "WEIGHT_INITIALIZERS",
    "Initializer",
    "Number",
    "Override",
    "parse_overrides",
    "parse_rule",
    "register_initializer",
    "shown_argument",
]

CONFIG_PATH: ContextVar[str] = ContextVar("initschema_config_path", default="")
"""The config path of the rule being parsed, so that its errors name it."""

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""An int or a float (not a bool, not a string), finite."""


class Initializer(BaseModel):
    """Base of every initializer model: frozen, strict about its keys, callable on a module."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type_name: ClassVar[str] = ""

    override: tuple[Override, ...] = Field(
        default=(),
        description="Rules for named submodules (attributes of the module), applied to the "
        "whole submodule right after this rule. An override with only `name` reuses this "
        "rule's arguments.",
    )

    def __init__(self, **data: Any) -> None:
        # hydra.utils.instantiate passes a rule node's own `type` along with its fields.
        if isinstance(data.get("type"), str) and data["type"] == type(self).type_name:
            del data["type"]
        try:
            super().__init__(**data)
        except ValidationError as error:
            name = type(self).type_name or type(self).__name__
            path = CONFIG_PATH.get() or name
            raise InitCfgError(problems_from_validation(error, type(self), name, path)) from None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)

        # Tools that read a class's __init__ (hydra-zen's builds(populate_full_signature=
        # True)) see the fields, not the **data of the shared __init__ above.
        def __init__(self: Initializer, **data: Any) -> None:
            Initializer.__init__(self, **data)

        keyword = inspect.Parameter.KEYWORD_ONLY
        fields = [
            inspect.Parameter(
                name,
                keyword,
                annotation=info.annotation,
                default=inspect.Parameter.empty if info.is_required() else info.default,
            )
            for name, info in cls.model_fields.items()
        ]
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = inspect.Signature([self_param, *fields])  # type: ignore[attr-defined]
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.__signature__ = inspect.Signature(fields)

    @field_validator("override", mode="before")
    @classmethod
    def _override_forms(cls, value: Any) -> Any:
        return parse_overrides(value, "override")

    def __call__(self, module: Any) -> None:
        """Apply this rule to ``module`` as MMEngine's ``initialize(module, rule)`` would."""
        _runtime.engine().apply(self, module)

    def arguments(self) -> dict[str, Any]:
        """The initializer's own arguments (everything but ``layer`` and ``override``)."""
        return {
            name: getattr(self, name) for name in type(self).model_fields if name not in _SELECTION
        }

    def describe(self) -> str:
        """``Kaiming(a=0, mode='fan_out', nonlinearity='relu', distribution='normal')``: the
        type and every argument it works with, defaults included (a reader should not
        need to know the defaults)."""
        args = ", ".join(f"{k}={shown_argument(v)}" for k, v in self.arguments().items())
        return f"{self.type_name}({args})"

    def to_cfg(self) -> dict[str, Any]:
        """This rule as an MMEngine-style dict; ``parse_init_cfg`` reads it back unchanged."""
        cfg: dict[str, Any] = {"type": self.type_name}
        for name, value in self.model_dump(exclude_defaults=True).items():
            if name == "override":
                cfg[name] = [item.to_cfg() for item in self.override]
            elif name == "layer":
                cfg[name] = list(value)
            else:
                cfg[name] = value
        return cfg

    def without_selection(self) -> Initializer:
        """This rule's arguments alone: what an override that gives only a ``name`` inherits."""
        update: dict[str, Any] = {"override": ()}
        for name, empty in (("layer", None), ("params", None), ("match", "bases")):
            if name in type(self).model_fields:
                update[name] = empty
        return self.model_copy(update=update)


WEIGHT_INITIALIZERS: Registry[Initializer] = Registry("WEIGHT_INITIALIZERS", Initializer)
"""Registered name ↔ initializer model class: what a rule's ``type`` names."""

InitT = TypeVar("InitT", bound=type[Initializer])


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


_SELECTION = ("layer", "override", "match", "params")
"""Fields that say what a rule writes, not how: not among its arguments."""


def shown_argument(value: Any) -> str:
    """An argument as a table shows it: numbers alike whether a config gave 0 or 0.0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(float(value))
        return text.removesuffix(".0")
    return repr(value)


class Override(BaseModel):
    """An override: a named submodule and the rule for all of it (None: the parent's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        min_length=1,
        description="The submodule: an attribute name, a dotted path below the module "
        "(`blocks.0.mlp.fc2`), or a pattern over such paths (`blocks.*.mlp.fc2`, `re:...`; "
        "see `params`), which applies the rule to every match, in model order.",
    )

    @field_validator("name")
    @classmethod
    def _name_compiles(cls, value: str) -> str:
        if is_pattern(value) or "." in value:
            compile_path_pattern(value)
        return value

    init: Initializer | None = Field(
        default=None, description="The rule for the submodule; None reuses the parent's."
    )

    def to_cfg(self) -> dict[str, Any]:
        return {"name": self.name, **(self.init.to_cfg() if self.init else {})}


def parse_rule(
    obj: Any,
    path: str,
    problems: list[Problem],
    *,
    nested: bool = False,
    override_paths: list[str] | None = None,
) -> Initializer | None:
    """One rule dict (or typed object) as its typed initializer; problems are appended to
    ``problems`` with their config paths, and then None is returned."""
    if isinstance(obj, Initializer):
        return obj
    if not isinstance(obj, Mapping):
        problems.append(
            Problem(
                path, f"a rule must be a dict with a 'type', got {type(obj).__name__} {shown(obj)}."
            )
        )
        return None
    data = dict(obj)
    for key in _HYDRA_KEYS:
        data.pop(key, None)
    target = data.pop("_target_", None)
    kind = data.get("type")
    for key, value in (("_target_", target), ("type", kind)):
        if value is not None and not isinstance(value, str | type):
            problems.append(
                Problem(
                    join_path(path, key),
                    f"{key} must be a string naming an initializer, got "
                    f"{type(value).__name__} {shown(value)}.",
                )
            )
            return None
    if target is not None:
        cls_of_target = WEIGHT_INITIALIZERS.by_target(target)
        if cls_of_target is None:
            classes = [cls for _, cls in WEIGHT_INITIALIZERS.items()]
            accepted = [name for cls in classes for name in target_names(cls)]
            hint = did_you_mean(target, accepted) if isinstance(target, str) else ""
            problems.append(
                Problem(
                    join_path(path, "_target_"),
                    f"{shown(target)} is not a registered initializer class; a _target_ names "
                    f"one by its import path ({target_names(classes[0])[0]} for a built-in); "
                    f"registered: {', '.join(cls.__name__ for cls in classes)}{hint or '.'}",
                )
            )
            return None
        kind = data.setdefault("type", cls_of_target.type_name)
        if kind != cls_of_target.type_name and kind in WEIGHT_INITIALIZERS:
            problems.append(
                Problem(
                    join_path(path, "type"),
                    f"type {shown(data['type'])} disagrees with _target_ {shown(target)} "
                    f"({cls_of_target.type_name}); give one of them, or make them agree.",
                )
            )
            return None
    if "type" not in data:
        problems.append(
            Problem(
                path,
                f"the rule has no 'type'; add one of {', '.join(WEIGHT_INITIALIZERS)} "
                f"(or a _target_ naming one's class; got keys {sorted(map(str, data))}).",
            )
        )
        return None
    kind = data.pop("type")
    try:
        cls = WEIGHT_INITIALIZERS.get(kind)
    except KeyError:
        if isinstance(kind, type) and issubclass(kind, Initializer):
            cls = kind
        else:
            problems.append(
                Problem(join_path(path, "type"), WEIGHT_INITIALIZERS.unknown_message(kind))
            )
            return None
    before = len(problems)
    if "override" in data:
        if nested:
            problems.append(
                Problem(
                    join_path(path, "override"), "an override cannot have overrides of its own."
                )
            )
            return None
        data["override"] = parse_overrides(
            data["override"], join_path(path, "override"), problems, override_paths
        )
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        problems.append(Problem(path, f"keys must be strings, got {shown(bad_keys)}."))
        return None
    token = CONFIG_PATH.set(path)
    try:
        init = cls(**data)
    except InitCfgError as error:
        problems.extend(error.problems)
        return None
    finally:
        CONFIG_PATH.reset(token)
    return init if len(problems) == before else None


_HYDRA_KEYS = ("_recursive_", "_convert_", "_partial_")
"""Keys Hydra's ``instantiate`` reads beside ``_target_``; they mean nothing to a rule."""


def parse_overrides(
    value: Any,
    path: str,
    problems: list[Problem] | None = None,
    paths: list[str] | None = None,
) -> tuple[Override, ...]:
    """Parse an ``override`` value: a dict, a list of dicts, or a mapping keyed by submodule name.

    Without ``problems`` to append to, raises :class:`InitCfgError` itself; ``paths``, when
    given, receives the config path of each override returned.
    """
    own = problems is None
    found: list[Problem] = [] if problems is None else problems
    items: list[tuple[str, Any]] = []
    if value is None:
        pass
    elif isinstance(value, Override):
        items.append((path, value))
    elif isinstance(value, Mapping) and (
        "name" in value or any(not isinstance(v, Mapping | None) for v in value.values())
    ):
        items.append((path, value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            item_path = join_path(path, str(key))
            if item is None:
                continue
            if not isinstance(item, Mapping):
                found.append(Problem(item_path, f"an override must be a dict, got {shown(item)}."))
            elif "name" in item and not (isinstance(item["name"], str) and item["name"] == key):
                found.append(
                    Problem(
                        join_path(item_path, "name"),
                        f"name {shown(item['name'])} differs from its key {shown(key)}; "
                        f"drop 'name' or make them equal.",
                    )
                )
            else:
                items.append((item_path, {**item, "name": key}))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items.extend((join_path(path, i), item) for i, item in enumerate(value))
    else:
        message = f"override must be a dict or a list of dicts, got {shown(value)}."
        found.append(TypeProblem(path, message))
    overrides = []
    for item_path, item in items:
        override = _parse_override(item, item_path, found)
        if override is not None:
            overrides.append(override)
            if paths is not None:
                paths.append(item_path)
    if own and found:
        raise InitCfgError(found)
    return tuple(overrides)


def _parse_override(obj: Any, path: str, problems: list[Problem]) -> Override | None:
    if isinstance(obj, Override):
        return obj
    if not isinstance(obj, Mapping):
        problems.append(Problem(path, f"an override must be a dict, got {shown(obj)}."))
        return None
    data = dict(obj)
    name = data.pop("name", None)
    if name is None:
        problems.append(
            Problem(
                path,
                f"an override needs 'name', the attribute name of the submodule it "
                f"initializes (got {shown(dict(obj))}).",
            )
        )
        return None
    if not isinstance(name, str) or not name:
        problems.append(
            Problem(join_path(path, "name"), f"name must be a non-empty string, got {shown(name)}.")
        )
        return None
    if is_pattern(name) or "." in name:
        try:
            compile_path_pattern(name)
        except ValueError as error:
            problems.append(Problem(join_path(path, "name"), str(error)))
            return None
    if not data:
        return Override(name=name)
    if "type" not in data and "_target_" not in data:
        problems.append(
            Problem(
                path,
                f"an override with arguments needs 'type' (got {sorted(map(str, data))}); "
                f"add a type, or give only 'name' to reuse the parent rule.",
            )
        )
        return None
    init = parse_rule(data, path, problems, nested=True)
    return Override(name=name, init=init) if init is not None else None


Initializer.model_rebuild()
Override.model_rebuild()
