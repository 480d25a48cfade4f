"""The strategy library from Python: ``initschema.strategy("gpt2", n_layer=12)``.

The strategies are the Hydra files in ``initschema/conf/init_strategy/``; this composes
one (with Hydra's config loader, so its defaults list picks the same rule files an app
gets) and gives its typed rules, for ``initialize(model, rules)`` or
``compile_plan(model, rules)`` without Hydra. A strategy's parameters are what its file
leaves to the model's config: a value it reads from above itself (``${...n_layer}``)
and a value it leaves ``???`` (``output.std``, given as ``output_std``).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ._hydra.configs import register_configs
from .cfg.init_cfg import InitCfg, parse_init_cfg
from .errors import InitCfgError, Problem, did_you_mean, join_path

__all__ = ["available_strategies", "strategy"]

_GROUP = "init_strategy"
_ABOVE = re.compile(r"^\$\{(\.+)(\w+)\}$")


def available_strategies() -> list[str]:
    """The names of the shipped strategies (``gpt2``, ``vit_timm``, …)."""
    folder = resources.files("initschema.conf") / _GROUP
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _file(name: str) -> Any:
    return resources.files("initschema.conf") / _GROUP / f"{name}.yaml"


def strategy(name: str, /, **parameters: Any) -> InitCfg:
    """The typed rules of the shipped strategy ``name``, its parameters given by keyword.

    >>> rules = initschema.strategy("gpt2", n_layer=12)
    >>> initschema.compile_plan(model, rules).execute()

    An unknown strategy, a parameter it does not take, one it needs that is missing, or
    a value of the wrong type is an :class:`~initschema.InitCfgError` that names it.
    """
    names = available_strategies()
    if name not in names:
        raise InitCfgError.single(
            "strategy",
            f"no strategy {name!r}{did_you_mean(name, names) or ';'} available: "
            f"{', '.join(names)}.",
        )
    # The parameters are read from the file itself: a ??? it writes does not override the
    # default of the option it tweaks once composed (OmegaConf merges skip missing values).
    above, missing = _parameters(OmegaConf.create(_file(name).read_text()), "")
    rules = _compose(name)
    wanted = {**above, **missing}
    problems = [
        Problem(
            key,
            f"strategy {name!r} takes no parameter {key!r}{did_you_mean(key, wanted) or ';'} "
            + (f"its parameters: {', '.join(wanted)}." if wanted else "it takes none."),
        )
        for key in parameters
        if key not in wanted
    ]
    problems += [
        Problem(key, f"strategy {name!r} needs {key}=... (it sets {wanted[key]}).")
        for key in wanted
        if key not in parameters
    ]
    if problems:
        raise InitCfgError(problems)
    root = OmegaConf.create({key: parameters[key] for key in above})
    for key, path in missing.items():
        try:
            OmegaConf.update(rules, path, parameters[key], merge=False)
        except OmegaConfBaseException as error:
            message = str(error).splitlines()[0]
            raise InitCfgError.single(key, f"{message} (it sets {path}).") from None
    root.init_cfg = rules
    try:
        plain = OmegaConf.to_container(root.init_cfg, resolve=True, enum_to_str=True)
        return parse_init_cfg(plain, name)
    except InitCfgError as error:
        raise InitCfgError([_named(p, name, wanted) for p in error.problems]) from None


def _named(problem: Problem, name: str, wanted: dict[str, str]) -> Problem:
    """A problem at the place a parameter went, named by the parameter."""
    for key, path in wanted.items():
        if problem.path == join_path(name, path):
            return Problem(key, f"{problem.message} (it sets {path})")
    return problem


def _compose(name: str) -> Any:
    """The strategy file composed alone (its rules at the root), without resolving it."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    register_configs()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://initschema.conf"))
    composed = loader.load_configuration(
        config_name=f"{_GROUP}/{name}", overrides=[], run_mode=RunMode.RUN, from_shell=False
    )
    # A group's file composed as the primary config sits under its group's name.
    return composed._get_node(_GROUP)


def _parameters(node: Any, path: str, depth: int = 1) -> tuple[dict[str, str], dict[str, str]]:
    """(parameter → path) of the values read from above the strategy and of the ``???``
    values under ``node``."""
    above: dict[str, str] = {}
    missing: dict[str, str] = {}
    keys: Any = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child_path = join_path(path, key)
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_missing():
            more_above, more_missing = _parameters(child, child_path, depth + 1)
            above.update(more_above)
            missing.update(more_missing)
        elif child._is_missing():
            missing[child_path.replace(".", "_")] = child_path
        elif isinstance(raw := child._value(), str) and (found := _ABOVE.match(raw)):
            if len(found.group(1)) > depth:
                above[found.group(2)] = child_path
    return above, missing
