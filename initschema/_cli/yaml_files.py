"""YAML for the ``initschema`` command: loading a file with aliases bounded, and validating
the init_cfgs a file holds on its own (no composition, no model, no torch).

A value the file cannot give alone (``???``, or an interpolation naming something only the
composed config has) is not an error here: it is a :class:`Note`, and the rest is checked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..cfg.init_cfg import parse_init_cfg
from ..errors import InitCfgError, Problem, join_path

__all__ = [
    "ALIAS_NODES",
    "AliasError",
    "CommandError",
    "Note",
    "check_tree",
    "load_yaml",
    "validate_file",
]

ALIAS_NODES = 10_000
"""How many nodes a file's aliases (``*name``) may add when expanded: ordinary reuse of an
anchor adds a few, an alias bomb (each level ×10) billions."""

_MAX_FILES = 5_000
"""How many YAML files of a config directory are checked before composing it."""


class CommandError(Exception):
    """A usage error, or input the command cannot use; the message says why (exit status 2)."""


class AliasError(CommandError):
    """YAML aliases that expand too far, or refer to themselves."""


@dataclass(frozen=True)
class Note:
    """A value of a file that only composition gives, so not checked here."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def load_yaml(path: str, *, scalar: bool = False) -> Any:
    """The file as an OmegaConf container, refusing aliases that expand beyond
    :data:`ALIAS_NODES` nodes or refer to themselves; with ``scalar``, a file holding one
    value (``Linear``, ``false``) gives that value, for the caller to judge."""
    if not os.path.isfile(path):
        raise CommandError(f"{path!r} does not exist.")
    from omegaconf._utils import get_yaml_loader

    try:
        with open(path, encoding="utf-8") as file:
            loader = get_yaml_loader()(file)
            try:
                node = loader.get_single_node()
                if node is not None:
                    _check_aliases(node, path)
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        if data is not None and not isinstance(data, dict | list):
            if scalar:
                return data
            raise CommandError(f"{path!r} holds a {type(data).__name__}, not a mapping.")
        return OmegaConf.create(data if data is not None else {})
    except CommandError:
        raise
    except RecursionError:
        raise CommandError(f"{path!r} is nested too deep to read.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as error:
        reason = " ".join(str(error).split())
        raise CommandError(f"{path!r} is not a YAML file OmegaConf can read: {reason}") from None


def check_tree(directory: str) -> None:
    """The aliases of every YAML file under a config directory, as :func:`load_yaml` checks
    them: Hydra would expand an alias bomb there too (other problems are Hydra's to report,
    for the files it reads)."""
    count = 0
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            if name.endswith((".yaml", ".yml")) and count < _MAX_FILES:
                count += 1
                try:
                    load_yaml(os.path.join(root, name))
                except AliasError:
                    raise
                except CommandError:
                    continue


def _check_aliases(root: yaml.Node, path: str) -> None:
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise AliasError(f"{path!r} holds an alias that refers to itself.")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        return total

    expanded = size(root)
    if expanded - len(sizes) > ALIAS_NODES:
        raise AliasError(
            f"{path!r}: its aliases expand to {expanded:,} nodes (at most {ALIAS_NODES:,} more "
            f"than the file writes are read); write the values out, or use fewer aliases."
        )


def validate_file(
    path: str, nodes: Sequence[str], keys: Sequence[str]
) -> tuple[dict[str, int], list[Problem], list[Note]]:
    """Validate the init_cfgs of a YAML file: those at the dotted keys ``nodes``; else
    every node under one of ``keys`` at any depth; else the whole file as one. Returns
    (rules per init_cfg, problems, notes on values only composition gives)."""
    from ..hydra import init_cfg_paths

    document = load_yaml(path, scalar=not nodes)
    if not isinstance(document, DictConfig | ListConfig):  # a file holding one value
        try:
            return {"init_cfg": len(parse_init_cfg(document, "init_cfg"))}, [], []
        except InitCfgError as error:  # what a rule of that value would be told
            return {}, list(error.problems), []
    notes: list[Note] = []
    if isinstance(document, DictConfig) and "defaults" in document:
        found_nodes = nodes or init_cfg_paths(document, keys)
        if not found_nodes:
            raise CommandError(
                f"{path!r} is a Hydra config with a defaults list: its rules are complete only "
                f"once composed. Validate the composed config: initschema validate "
                f"--config-dir DIR --config-name NAME [OVERRIDE ...]."
            )
        notes.append(Note("defaults", "not applied: its values come only when composed"))
    targets: list[tuple[str, Any, Any]] = []
    if nodes:
        for key in nodes:
            parent, last = _parent(document, key, path)
            targets.append((key, parent, last))
    else:
        found = init_cfg_paths(document, keys)
        for key in found:
            parent, last = _parent(document, key, path)
            targets.append((key, parent, last))
        if not found:
            targets.append(("init_cfg", None, document))  # the whole file is one init_cfg
    counts: dict[str, int] = {}
    problems: list[Problem] = []
    for key, parent, last in targets:
        own: list[Note] = []
        value = _resolved(document, key, own) if parent is None else _child(parent, last, key, own)
        notes += own
        try:
            counts[key] = len(parse_init_cfg(value, key))
        except InitCfgError as error:
            problems += [p for p in error.problems if not _under_any(p.path, own)]
            if own:  # counted as written: its unchecked values may complete it
                counts[key] = 1 if isinstance(value, dict) and "type" in value else len(value or ())
    return counts, problems, notes


def _parent(document: Any, key: str, path: str) -> tuple[Any, Any]:
    """The container holding dotted ``key`` and its last part; a usage error when absent."""
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(document, parent_key, default=None) if parent_key else document
    if not isinstance(parent, DictConfig | ListConfig) or not _has(parent, last):
        raise CommandError(f"{path} has no key {key!r}.")
    return parent, int(last) if isinstance(parent, ListConfig) else last


def _has(parent: Any, key: str) -> bool:
    if isinstance(parent, ListConfig):
        return key.isdigit() and int(key) < len(parent)
    return key in parent


def _child(parent: Any, key: Any, path: str, notes: list[Note]) -> Any:
    """The resolved Python value of ``parent[key]``; each ``???`` and interpolation the file
    cannot resolve alone becomes a note (and None)."""
    if OmegaConf.is_missing(parent, key):
        notes.append(Note(path, "not checked: ??? (its value is given when composed)"))
        return None
    try:
        value = parent[key]
    except OmegaConfBaseException as error:
        raw = parent._get_node(key)._value()
        reason = str(error).splitlines()[0]
        notes.append(Note(path, f"not checked: {raw} does not resolve in this file ({reason})"))
        return None
    return _resolved(value, path, notes)


def _resolved(value: Any, path: str, notes: list[Note]) -> Any:
    if isinstance(value, DictConfig):
        return {k: _child(value, k, join_path(path, str(k)), notes) for k in value.keys()}
    if isinstance(value, ListConfig):
        return [_child(value, i, join_path(path, i), notes) for i in range(len(value))]
    return value


def _under_any(path: str, notes: Sequence[Note]) -> bool:
    return any(
        path == note.path or path.startswith((note.path + ".", note.path + "[")) for note in notes
    )
