"""Where a value of a composed Hydra config came from: the command-line override, or the
config file that set it last.

Hydra records the overrides and the search path in the config's ``hydra`` node; the
defaults list rebuilt from them is the merge order of the config files, so the last
file holding a key is the one whose value the composed config kept.
"""

from __future__ import annotations

import os
import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import InitCfgError, Problem

__all__ = ["annotate", "origin", "split_path"]


def split_path(path: str) -> list[str | int]:
    """``model.init_cfg.head.std`` → its keys; ``a[1]`` → ``['a', 1]``."""
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def hydra_node(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _command_line(path: str, node: Any) -> str:
    overrides: list[str] = OmegaConf.to_container(node.overrides.task)  # type: ignore[assignment]
    # An override at the value or above it set it; overrides below it (u.a=1 u.b=0 for a
    # problem of the rule u) are what made it wrong.
    groups = set(node.runtime.choices)  # model=llama picks a file: that file is the origin
    given = [
        override
        for override in overrides
        if "@" not in (key := override.split("=", 1)[0].lstrip("+~"))
        and key not in groups
        and (path == key or path.startswith(key + ".") or key.startswith(path + "."))
    ]
    return f"set on the command line: {', '.join(given)}" if given else ""


def _holds(config: Any, keys: list[str | int]) -> bool:
    node = config
    for key in keys:
        # `in` is False for a ??? value, which a file does set.
        if isinstance(node, DictConfig) and isinstance(key, str) and key in node.keys():
            node = node._get_node(key)
        elif isinstance(node, ListConfig) and isinstance(key, int) and key < len(node):
            node = node._get_node(key)
        else:
            return False
    return True


def _files(node: Any) -> list[tuple[str, str, Any]]:
    """(package, where, config) of every config of the defaults list, in merge order."""
    from hydra._internal.config_repository import ConfigRepository
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    from hydra._internal.defaults_list import create_defaults_list

    search_path = ConfigSearchPathImpl()
    for source in node.runtime.config_sources:
        search_path.append(source.provider, f"{source.schema}://{source.path}")
    repo = ConfigRepository(config_search_path=search_path)
    overrides: list[str] = OmegaConf.to_container(node.overrides.task)  # type: ignore[assignment]
    defaults = create_defaults_list(
        repo=repo,
        config_name=node.job.config_name,
        overrides_list=_parsed(overrides),
        prepend_hydra=False,
        skip_missing=True,
    )
    cwd = node.runtime.cwd
    files = []
    for default in defaults.defaults:
        if default.config_path is None:
            continue
        loaded = repo.load_config(default.config_path)
        if loaded is None:
            continue
        files.append(
            (default.package or "", _where(default.config_path, loaded, cwd), loaded.config)
        )
    return files


def _parsed(overrides: list[str]) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides=overrides)


def _where(config_path: str, loaded: Any, cwd: str) -> str:
    """The file a loaded config was read from, relative to the run's directory when inside
    it; a structured config (an initializer's defaults) by its group option."""
    source = loaded.path or ""
    schema, _, base = source.partition("://")
    if schema == "file":
        file = os.path.join(base, f"{config_path}.yaml")
        relative = os.path.relpath(file, cwd)
        return file if relative.startswith("..") else relative
    if schema == "pkg":
        return f"{source}/{config_path}.yaml"
    return f"the defaults of {config_path}"


def _file_origin(path: str, node: Any, cache: dict[str, Any]) -> str:
    if "files" not in cache:
        try:
            cache["files"] = _files(node)
        except Exception:  # a config whose sources moved since it was composed
            cache["files"] = []
    files = cache["files"]
    keys = split_path(path)
    found = ""
    for package, where, config in files:
        prefix = split_path(package)
        if keys[: len(prefix)] == prefix:
            if _holds(config, keys[len(prefix) :]):
                found = where
        elif prefix[: len(keys)] == keys:  # the file writes inside the value at path
            found = where
    return f"set in {found}" if found else ""


def origin(path: str, cfg: Any, cache: dict[str, Any] | None = None) -> str:
    """``set on the command line: a.b=1`` or ``set in conf/experiment/x.yaml`` for the
    value at ``path``, and ``value from ${lr} (set in conf/config.yaml)`` when it is an
    interpolation; ``""`` when Hydra does not know. ``cache`` keeps the rebuilt defaults
    list between calls for the same config."""
    cache = {} if cache is None else cache
    node = hydra_node(cfg)
    where = ""
    if node is not None:
        where = _command_line(path, node) or _file_origin(path, node, cache)
    raw = _raw(cfg, path)
    if raw is None:
        return where
    target = re.fullmatch(r"\$\{([\w.]+)\}", raw)
    source = ""
    if target and not target.group(1).startswith(".") and node is not None:
        source = _command_line(target.group(1), node) or _file_origin(target.group(1), node, cache)
    interpolation = f"value from {raw}" + (f" ({source})" if source else "")
    return "; ".join(w for w in (where, interpolation) if w)


def _raw(cfg: Any, path: str) -> str | None:
    """The interpolation at ``path`` (``${lr_std}``), if its value is one."""
    node = cfg
    try:
        for part in split_path(path):
            node = node._get_node(part)
    except Exception:  # no such node (a path inside a typed object), or no config at all
        return None
    raw = node._value() if hasattr(node, "_value") else None
    return raw if isinstance(raw, str) and raw.startswith("${") else None


def annotate(error: InitCfgError, cfg: Any = None) -> InitCfgError:
    """The same problems, each followed by where its value came from."""
    problems = []
    cache: dict[str, Any] = {}
    for problem in error.problems:
        where = origin(problem.path, cfg, cache) if problem.path else ""
        problems.append(Problem(problem.path, f"{problem.message} [{where}]") if where else problem)
    return InitCfgError(problems)
