"""Parsing every form of ``init_cfg`` into typed rules, with errors that name the config path.

Accepted forms: a rule dict, a list of rule dicts, a mapping of named rules
(``{'convs': {...}, 'head': {...}}``, applied in mapping order), typed
initializer objects anywhere a dict is accepted, and ``None``/empty (no rules).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InitCfgError, Problem, join_path
from .initializers import CONFIG_PATH, Initializer, Override, PretrainedInit
from .registry import WEIGHT_INITIALIZERS

__all__ = ["InitCfg", "InitCfgError", "Rule", "parse_init_cfg", "parse_overrides"]


@dataclass(frozen=True)
class Rule:
    """One typed rule and where it came from (``source`` is its config path)."""

    source: str
    init: Initializer
    name: str | None = None
    override_paths: tuple[str, ...] | None = None
    """Config path of each override, as written (``.override`` for a single dict)."""

    @property
    def override_sources(self) -> tuple[str, ...]:
        if self.override_paths is not None:
            return self.override_paths
        return tuple(join_path(self.source, "override", i) for i in range(len(self.init.override)))

    @property
    def is_pretrained(self) -> bool:
        return isinstance(self.init, PretrainedInit)


class InitCfg:
    """The typed rules of one ``init_cfg``, in the order they apply.

    A plain class rather than a dataclass so that OmegaConf and Hydra's ``instantiate``
    pass it through untouched (a dataclass would become a structured config).
    """

    __slots__ = ("rules",)

    def __init__(self, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = tuple(rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InitCfg) and self.rules == other.rules

    def __hash__(self) -> int:
        return hash(self.rules)

    def __repr__(self) -> str:
        return f"InitCfg({list(self.rules)!r})"

    def to_cfg(self) -> list[dict[str, Any]] | dict[str, dict[str, Any]]:
        """Plain dicts again: a mapping when every rule is named, else a list."""
        if self.rules and all(rule.name is not None for rule in self.rules):
            return {str(rule.name): rule.init.to_cfg() for rule in self.rules}
        return [rule.init.to_cfg() for rule in self.rules]


def _is_rule_mapping(value: Mapping[Any, Any]) -> bool:
    """A rule (rather than a mapping of named rules): it has a ``type``, or a value that
    cannot be a rule (then it is a rule that lacks its ``type``)."""
    if "type" in value:
        return True
    return any(not isinstance(v, Mapping | Initializer | None) for v in value.values())


def parse_init_cfg(obj: Any, path: str = "init_cfg") -> InitCfg:
    """Parse any init_cfg form into typed rules; raise :class:`InitCfgError` listing every problem.

    >>> parse_init_cfg([dict(type='Kaiming', layer='Conv2d'), dict(type='Normal', std=0.01)])
    """
    if isinstance(obj, InitCfg):
        return obj
    problems: list[Problem] = []
    rules: list[Rule] = []

    def add(item: Any, item_path: str, name: str | None = None) -> None:
        paths: list[str] = []
        init = _parse_rule(item, item_path, problems, override_paths=paths)
        if init is not None:
            rules.append(Rule(item_path, init, name, tuple(paths) if paths else None))

    if obj is None:
        pass
    elif isinstance(obj, Initializer):
        add(obj, path)
    elif isinstance(obj, Mapping):
        if _is_rule_mapping(obj):
            add(obj, path)
        else:
            for key, item in obj.items():
                if not isinstance(key, str):
                    problems.append(Problem(path, f"rule names must be strings, got {key!r}."))
                elif item is not None:  # a rule set to null is switched off
                    add(item, join_path(path, key), key)
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        for index, item in enumerate(obj):
            add(item, join_path(path, index))
    else:
        problems.append(
            Problem(
                path,
                f"init_cfg must be a dict, a list of dicts or a mapping of named rules, "
                f"got {type(obj).__name__} {obj!r}.",
            )
        )
    if problems:
        raise InitCfgError(problems)
    return InitCfg(tuple(rules))


def _parse_rule(
    obj: Any,
    path: str,
    problems: list[Problem],
    *,
    nested: bool = False,
    override_paths: list[str] | None = None,
) -> Initializer | None:
    if isinstance(obj, Initializer):
        return obj
    if not isinstance(obj, Mapping):
        problems.append(
            Problem(path, f"a rule must be a dict with a 'type', got {type(obj).__name__} {obj!r}.")
        )
        return None
    data = dict(obj)
    if "type" not in data:
        problems.append(
            Problem(
                path,
                f"the rule has no 'type'; add one of {', '.join(WEIGHT_INITIALIZERS)} "
                f"(got keys {sorted(map(str, data))}).",
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
        problems.append(Problem(path, f"keys must be strings, got {bad_keys!r}."))
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
                found.append(Problem(item_path, f"an override must be a dict, got {item!r}."))
            elif item.get("name", key) != key:
                found.append(
                    Problem(
                        join_path(item_path, "name"),
                        f"name {item['name']!r} differs from its key {key!r}; drop 'name' "
                        f"or make them equal.",
                    )
                )
            else:
                items.append((item_path, {**item, "name": key}))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items.extend((join_path(path, i), item) for i, item in enumerate(value))
    else:
        found.append(Problem(path, f"override must be a dict or a list of dicts, got {value!r}."))
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
        problems.append(Problem(path, f"an override must be a dict, got {obj!r}."))
        return None
    data = dict(obj)
    name = data.pop("name", None)
    if name is None:
        problems.append(
            Problem(
                path,
                f"an override needs 'name', the attribute name of the submodule it "
                f"initializes (got {dict(obj)!r}).",
            )
        )
        return None
    if not isinstance(name, str) or not name:
        problems.append(
            Problem(join_path(path, "name"), f"name must be a non-empty string, got {name!r}.")
        )
        return None
    if not data:
        return Override(name=name)
    if "type" not in data:
        problems.append(
            Problem(
                path,
                f"an override with arguments needs 'type' (got {sorted(map(str, data))}); "
                f"add a type, or give only 'name' to reuse the parent rule.",
            )
        )
        return None
    init = _parse_rule(data, path, problems, nested=True)
    return Override(name=name, init=init) if init is not None else None
