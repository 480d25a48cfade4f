"""Models and plans for the ``initschema`` command: from a factory (``--model``) or a Hydra
config (``--config-dir``), with the user's code found and its failures told in one line.

The current directory becomes importable (for ``--model`` and ``_target_`` modules) only
after the command's own imports, and last on ``sys.path``: a file in it never stands in
for an installed package.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InitCfgError, InitUsageError, Problem
from .yaml_files import CommandError, check_tree, load_yaml

__all__ = ["Built", "compose", "from_factory", "from_hydra", "import_user_module", "user_path"]

_META_LINTS = frozenset({"stays-on-meta"})
"""Lints about tensors on the meta device: when the command chose to build there, they
describe its choice, not the user's model."""


@dataclass(frozen=True)
class Built:
    """A compiled plan and the lints that concern the user (``plan.lints`` less those about
    the command's own meta build)."""

    plan: Any
    lints: tuple[Any, ...]
    cfg: Any = None
    """The composed config the model came from (for the origins of strict lints)."""

    def strict_problems(self) -> list[Problem]:
        """The warning lints as problems, as ``compile_plan(strict=True)`` raises them."""
        problems = [
            Problem(lint.path, f"{lint.message} (strict: {lint.kind})")
            for lint in self.lints
            if lint.level == "warning"
        ]
        if problems and self.cfg is not None:
            from ..hydra import annotate

            return list(annotate(InitCfgError(problems), self.cfg).problems)
        return problems


def _own_imports() -> None:
    """What the command itself imports, done before the current directory is importable."""
    import rich.console
    import rich.markup
    import rich.progress
    import rich.table
    import safetensors
    import torch

    import initschema.diagnostics.stats
    import initschema.modules

    del rich, safetensors, torch, initschema


def user_path(engine: bool = True) -> None:
    """The current directory, last on ``sys.path`` (installed packages win over files in it);
    with ``engine``, only after the engine's own imports (``validate`` imports no torch)."""
    if engine:
        _own_imports()
    here = os.getcwd()
    if here not in sys.path:
        sys.path.append(here)


def import_user_module(module: str, option: str, *, engine: bool = True) -> None:
    """Import a module the user named, the current directory importable (last); with
    ``engine``, after the engine's own imports (``validate`` imports no torch)."""
    user_path(engine)
    try:
        importlib.import_module(module)
    except ImportError as error:
        missing = getattr(error, "name", None)
        if isinstance(error, ModuleNotFoundError) and missing and not _is_part_of(missing, module):
            raise CommandError(
                f"{option} {module}: importing it failed: it imports {missing!r}, which is not "
                f"installed ({error})."
            ) from None
        raise CommandError(
            f"{option} {module}: cannot import it ({error}). Put the directory that holds it "
            f"on PYTHONPATH, or install its package."
        ) from None
    except Exception as error:
        raise CommandError(f"{option} {module}: importing it failed: {_one_line(error)}") from None


def _is_part_of(missing: str, module: str) -> bool:
    """Whether the module that was not found is ``module`` or one of its parent packages
    (the user's name is wrong) rather than something ``module`` imports."""
    return module == missing or module.startswith(missing + ".")


def _factory(spec: str | None) -> Callable[[], Any]:
    if not spec or ":" not in spec:
        raise CommandError("give --model PKG.MOD:FACTORY, a callable that builds the model.")
    module, _, name = spec.partition(":")
    import_user_module(module, "--model")
    factory = getattr(sys.modules[module], name, None)
    if not callable(factory):
        raise CommandError(f"--model {spec}: {module} has no callable {name!r}.")
    return factory  # type: ignore[no-any-return]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def user_lints(plan: Any, meta: bool) -> tuple[Any, ...]:
    """``plan.lints`` less those about the meta device when the command chose to build
    there (``meta``)."""
    return tuple(lint for lint in plan.lints if not (meta and lint.kind in _META_LINTS))


def from_factory(spec: str | None, init_cfg: Any, *, meta: bool, has_config: bool) -> Built:
    """Build ``--model`` (on the meta device with ``meta``) and plan ``init_cfg`` on it
    (None: its own ``init_weights``)."""
    import torch

    import initschema as ins

    factory = _factory(spec)
    try:
        if meta:
            with torch.device("meta"):
                model = factory()
        else:
            model = factory()
    except Exception as error:
        raise CommandError(
            f"--model {spec} failed to build the model: {_one_line(error)}"
        ) from None
    try:
        plan = ins.compile_plan(model, init_cfg, strict=False, log=False)
    except InitUsageError:
        if has_config:
            raise
        raise CommandError(
            f"--model {spec} builds a model of class {type(model).__name__}, which is no "
            f"initschema BaseModule and has no init_cfg of its own: pass --config FILE.yaml, "
            f"the init_cfg to apply to it."
        ) from None
    return Built(plan, user_lints(plan, meta))


def init_cfg_of(path: str, key: str | None) -> Any:
    """The plain value of the init_cfg in a YAML file (at dotted ``key``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    document = load_yaml(path)
    value = document
    if key:
        value = OmegaConf.select(document, key, default="\0missing")
        if isinstance(value, str) and value == "\0missing":
            raise CommandError(f"{path} has no key {key!r}.")
    try:
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    except OmegaConfBaseException as error:
        raise CommandError(
            f"{path}: {' '.join(str(error).split())}; give the value in the file (a plan "
            f"needs every value), or plan the composed config with --config-dir."
        ) from None


def compose(config_dir: str | None, config_name: str | None, overrides: Sequence[str]) -> Any:
    """The composed config (Hydra's node included), as the app would get it."""
    if not (config_dir and config_name):
        raise CommandError("give both --config-dir and --config-name.")
    directory = os.path.abspath(config_dir)
    if not os.path.isdir(directory):
        raise CommandError(f"--config-dir {config_dir!r} is not a directory.")
    check_tree(directory)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .. import hydra as ins_hydra

    ins_hydra.register_configs()
    try:
        with initialize_config_dir(config_dir=directory, version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise CommandError(f"the config does not compose: {' '.join(str(error).split())}") from None


def from_hydra(
    cfg: Any, node_key: str, config_name: str, *, meta: bool, rules: str | None = None
) -> Built:
    """Build the model at ``node_key`` of a composed config (running its ``_target_``s) and
    plan it (its own ``init_weights``, or the rules at config key ``rules``); a failing
    build is one line."""
    from hydra.errors import InstantiationException
    from omegaconf import OmegaConf

    from .. import hydra as ins_hydra

    node = OmegaConf.select(cfg, node_key, default=None)
    if node is None:
        raise CommandError(f"{config_name} has no node {node_key!r} (--node).")
    user_path()
    try:
        _, plan = ins_hydra.instantiate_and_plan(
            node, cfg, strict=False, log=False, meta=meta, rules=rules
        )
    except InitCfgError:
        raise
    except InstantiationException as error:
        raise CommandError(
            f"building {node_key} failed: {_instantiation_reason(error)} (the current "
            f"directory is importable, last on sys.path)"
        ) from None
    except Exception as error:
        raise CommandError(f"building {node_key} failed: {_one_line(error)}") from None
    return Built(plan, user_lints(plan, meta), cfg)


def _instantiation_reason(error: BaseException) -> str:
    """Hydra's message without its advice to set HYDRA_FULL_ERROR, and the cause."""
    text = " ".join(str(error).split()).replace(
        ", set env var HYDRA_FULL_ERROR=1 to see chained exception.", ""
    )
    cause = error.__cause__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    if cause is not None and type(cause).__name__ not in text:
        text += f" ({_one_line(cause)})"
    return text.rstrip(".")
