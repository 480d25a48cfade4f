"""Reading the init_cfg nodes out of a composed OmegaConf config: finding them at any
depth, and their values as plain Python, resolved, with every ``???``, broken
interpolation or over-deep value a problem at its config path."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..cfg.init_cfg import InitCfg
from ..errors import InitCfgError, Problem, join_path
from .origins import split_path

__all__ = ["MAX_DEPTH", "bounded", "init_cfg_nodes", "plain_value", "resolved", "with_typed"]


def init_cfg_nodes(node: Any, path: str, names: Sequence[str]) -> Iterator[tuple[str, Any, Any]]:
    """(config path, parent, key) of every node under one of ``names``, at any depth."""
    keys: Any = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child_path = join_path(path, key)
        if key == "hydra" and not path:
            continue
        if key in names:
            yield child_path, node, key
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_missing():
            yield from init_cfg_nodes(child, child_path, names)


MAX_DEPTH = 64
"""Deeper values than this (a resolver's output) are no rule: refused at their path."""


def plain_value(parent: Any, key: Any, path: str, problems: list[Problem], depth: int = 0) -> Any:
    """The resolved Python value of ``parent[key]``; every ``???`` and broken interpolation
    in it becomes a problem at its full config path."""
    if depth > MAX_DEPTH:
        problems.append(Problem(path, f"the value is nested more than {MAX_DEPTH} levels deep."))
        return None
    if OmegaConf.is_missing(parent, key):
        problems.append(
            Problem(path, f"no value given (???); set it, e.g. on the command line: {path}=...")
        )
        return None
    try:
        value = parent[key]
    except OmegaConfBaseException as error:
        problems.append(
            Problem(
                path,
                f"cannot resolve {parent._get_node(key)._value()!r}: {str(error).splitlines()[0]}",
            )
        )
        return None
    if isinstance(value, DictConfig):
        keys = value.keys()
        return {
            k: plain_value(value, k, join_path(path, str(k)), problems, depth + 1) for k in keys
        }
    if isinstance(value, ListConfig):
        items = range(len(value))
        return [plain_value(value, i, join_path(path, i), problems, depth + 1) for i in items]
    if isinstance(value, list | tuple | dict):  # a resolver's output, in a typed node
        return bounded(value, path, problems, depth)
    return value.value if isinstance(value, enum.Enum) else value


def bounded(value: Any, path: str, problems: list[Problem], depth: int) -> Any:
    """``value`` when no deeper than the limit, else None and a problem at ``path``."""
    stack = [(value, depth)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            problems.append(
                Problem(path, f"the value is nested more than {MAX_DEPTH} levels deep.")
            )
            return None
        if isinstance(item, list | tuple):
            stack += [(child, level + 1) for child in item]
        elif isinstance(item, dict):
            stack += [(child, level + 1) for child in item.values()]
    return value


def resolved(parent: Any, key: Any, path: str) -> Any:
    """``parent[key]`` as plain Python, resolved; an interpolation that does not resolve
    is an :class:`InitCfgError` at its path."""
    try:
        child = parent._get_node(key)
        if isinstance(child, DictConfig | ListConfig):
            return OmegaConf.to_container(child, resolve=True, enum_to_str=True)
        return parent[key]
    except OmegaConfBaseException as error:
        where = join_path(path, *split_path(error.full_key or "")[len(split_path(path)) :])
        raise InitCfgError.single(where, f"cannot resolve: {str(error).splitlines()[0]}") from None


def with_typed(plain: Any, typed: dict[str, InitCfg], at: str) -> Any:
    """``plain`` (the container of config path ``at``) with its init_cfg nodes typed."""
    skip = len(split_path(at)) if at else 0
    for path, init_cfg in typed.items():
        *parents, last = split_path(path)[skip:]
        node: Any = plain
        for part in parents:
            node = node[part]
        node[last] = init_cfg
    return plain
