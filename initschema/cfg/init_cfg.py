"""Parsing every form of ``init_cfg`` into typed rules, with errors that name the config path.

Accepted forms: a rule dict, a list of rule dicts, a mapping of named rules
(``{'convs': {...}, 'head': {...}}``, applied in mapping order), typed
initializer objects anywhere a dict is accepted, and ``None``/empty (no rules).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InitCfgError, Problem, did_you_mean, join_path, shown
from .builtin import PretrainedInit
from .initializer import Initializer, parse_overrides, parse_rule

__all__ = [
    "MAX_DEPTH",
    "InitCfg",
    "InitCfgError",
    "Rule",
    "nesting_problem",
    "parse_init_cfg",
    "parse_overrides",
]

MAX_DEPTH = 32
"""The deepest nesting of dicts and lists an init_cfg may have (the deepest real one,
rules → overrides → a field's list, is under ten): deeper ones are refused before
anything recursive (parsing, copying, hashing) meets them."""


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
    if "type" in value or "_target_" in value:
        return True
    return any(not isinstance(v, Mapping | Initializer | None) for v in value.values())


def _typeless(item: Any) -> bool:
    """A mapping with neither ``type`` nor ``_target_``: a rule that cannot be typed."""
    return isinstance(item, Mapping) and "type" not in item and "_target_" not in item


def parse_init_cfg(obj: Any, path: str = "init_cfg") -> InitCfg:
    """Parse any init_cfg form into typed rules; raise :class:`InitCfgError` listing every problem.

    >>> parse_init_cfg([dict(type='Kaiming', layer='Conv2d'), dict(type='Normal', std=0.01)])
    """
    if isinstance(obj, InitCfg):
        return obj
    if too_deep := nesting_problem(obj, path):
        raise InitCfgError([too_deep])
    problems: list[Problem] = []
    rules: list[Rule] = []

    def add(item: Any, item_path: str, name: str | None = None) -> None:
        paths: list[str] = []
        init = parse_rule(item, item_path, problems, override_paths=paths)
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
                    problems.append(Problem(path, f"rule names must be strings, got {shown(key)}."))
                elif item is not None:  # a rule set to null is switched off
                    count = len(problems)
                    add(item, join_path(path, key), key)
                    if _typeless(item) and len(problems) > count:
                        # `+model.init_cfg.linear.std=…` for the rule `linears`
                        others = [k for k in obj if k != key and not _typeless(obj[k])]
                        if hint := did_you_mean(key, others):
                            last = problems[-1]
                            problems[-1] = Problem(
                                last.path,
                                f"{key!r} is no rule of this init_cfg{hint} (to add a new "
                                f"rule instead: {last.message})",
                            )
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        for index, item in enumerate(obj):
            add(item, join_path(path, index))
    else:
        problems.append(
            Problem(
                path,
                f"init_cfg must be a dict, a list of dicts or a mapping of named rules, "
                f"got {type(obj).__name__} {shown(obj)}.",
            )
        )
    if problems:
        raise InitCfgError(problems)
    return InitCfg(tuple(rules))


def nesting_problem(obj: Any, path: str, limit: int = MAX_DEPTH) -> Problem | None:
    """A problem at the first place ``obj`` nests dicts and lists deeper than ``limit``,
    or None (found without recursion, so any depth is safe to ask about)."""
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    try:
        while stack:
            value, where, depth = stack.pop()
            if isinstance(value, Mapping):
                items: Any = ((str(k), v) for k, v in value.items())
            elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
                items = enumerate(value)
            else:
                continue
            if depth == limit:
                return Problem(
                    where,
                    f"the init_cfg nests dicts and lists more than {limit} deep here; no rule "
                    f"needs that many levels (is a value nested by mistake?).",
                )
            stack.extend((v, join_path(where, k), depth + 1) for k, v in items)
    except Exception:  # a container that cannot be walked: parsing reports it
        return None
    return None
