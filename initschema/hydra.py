"""Hydra integration: structured configs for the ``init`` group and load-time validation.

pydantic stays the one place an init_cfg is validated; Hydra and OmegaConf carry
it. Every registered initializer gets a dataclass generated from its model
(choices become ``str`` Enums, so bad values and unknown keys fail at compose
time with the full key) in the ``init`` config group; ``init_cfg`` nodes are
mappings of named rules picked from that group::

    defaults:
      - /init@convs: kaiming

:func:`validate` turns every ``init_cfg`` node of a composed config into typed
rules, and :func:`main` (``hydra.main`` plus that validation) runs it before the
task function, so a bad config never reaches model construction; a bad config fails
its job, not the process. :func:`instantiate_and_plan` builds a model that takes an
``init_cfg``; :func:`plan_rules` plans rules kept under a config key for a plain
``nn.Module``. The generated configs live in :mod:`initschema._hydra.configs`, the
origins of values in :mod:`initschema._hydra.origins`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from hydra.errors import CompactHydraException
from omegaconf import DictConfig

import initschema

from ._hydra.configs import (
    ENTRY_POINTS,
    GENERATED,
    GROUP,
    config_name,
    load_entry_points,
    register_configs,
    structured_config,
    target_of,
)
from ._hydra.nodes import init_cfg_nodes, plain_value, resolved, with_typed
from ._hydra.origins import annotate, split_path
from .cfg.init_cfg import InitCfg, parse_init_cfg
from .cfg.registry import option_name
from .errors import InitCfgError, Problem

__all__ = [
    "ENTRY_POINTS",
    "GROUP",
    "INIT_CFG_KEYS",
    "JobConfigError",
    "annotate",
    "config_errors",
    "config_name",
    "init_cfg_paths",
    "instantiate_and_plan",
    "load_entry_points",
    "main",
    "option_name",
    "plan_rules",
    "register_configs",
    "structured_config",
    "target_of",
    "typed_container",
    "validate",
    "validated",
]

logger = logging.getLogger("initschema")

TaskT = TypeVar("TaskT", bound=Callable[..., Any])


def __getattr__(name: str) -> Any:
    """Generated classes by name (``NormalInitConfig``, ``KaimingMode``), including those of
    initializers registered since this module was imported."""
    register_configs()
    if name in GENERATED:
        return GENERATED[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INIT_CFG_KEYS: tuple[str, ...] = ("init_cfg", "init_rules")
"""The keys whose values are init_cfgs, by default; every function here takes ``keys=``.
``init_rules`` is the conventional key of the rules of a model that takes no ``init_cfg``
(a plain ``nn.Module``, planned with :func:`plan_rules`)."""


def init_cfg_paths(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> list[str]:
    """The config paths of every node under one of ``keys`` in ``cfg``, at any depth."""
    return [path for path, _, _ in init_cfg_nodes(cfg, "", keys)]


def validate(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> dict[str, InitCfg]:
    """Typed rules for every ``init_cfg`` node (every node under one of ``keys``) of a
    composed config, keyed by config path.

    Resolves interpolations in those nodes only; a ``???``, a broken interpolation or an
    invalid rule is an :class:`InitCfgError` naming the config path and, when Hydra knows
    it, the command-line override or the config file its value came from.
    """
    return _validate(cfg, cfg, "", keys)


def _validate(root: Any, node: Any, at: str, keys: Sequence[str]) -> dict[str, InitCfg]:
    """:func:`validate` for the nodes under ``node`` (at config path ``at`` of ``root``)."""
    problems: list[Problem] = []
    found: dict[str, InitCfg] = {}
    for path, parent, key in init_cfg_nodes(node, at, keys):
        unresolved: list[Problem] = []
        value = plain_value(parent, key, path, unresolved)
        problems += unresolved
        try:
            init_cfg = parse_init_cfg(value, path)
        except InitCfgError as error:
            # An unresolved value was read as None: its own problem already says why.
            flagged = tuple(p.path for p in unresolved)
            problems += [p for p in error.problems if not p.path.startswith(flagged or ("\0",))]
            continue
        if not unresolved:
            found[path] = init_cfg
    if problems:
        raise annotate(InitCfgError(problems), root)
    return found


def typed_container(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> Any:
    """The resolved config as plain Python, each ``init_cfg`` (each node under one of
    ``keys``) replaced by its typed :class:`~initschema.InitCfg` (ready for
    ``hydra.utils.instantiate``)."""
    typed = validate(cfg, keys)
    plain: dict[str, Any] = {}
    for key in cfg.keys():
        if key != "hydra":  # Hydra's own node holds run-time interpolations
            plain[key] = resolved(cfg, key, str(key))
    return with_typed(plain, typed, "")


@contextmanager
def config_errors(cfg: Any) -> Iterator[None]:
    """Re-raise an :class:`~initschema.InitCfgError` from inside the block with each
    problem's origin in ``cfg`` (the command-line override or config file its value came
    from): for compiling a model built from ``cfg``, whose rules carry config paths."""
    try:
        yield
    except InitCfgError as error:
        raise annotate(error, cfg) from None


def instantiate_and_plan(
    node: Any,
    cfg: Any = None,
    *,
    strict: bool | None = None,
    log: bool = True,
    keys: Sequence[str] = INIT_CFG_KEYS,
    meta: bool = False,
    rules: str | None = None,
) -> tuple[Any, Any]:
    """Build the model that config ``node`` describes (``hydra.utils.instantiate``) and
    compile its plan: ``(model, plan)``, nothing written yet. With ``meta=True`` the model
    is built on the meta device (no memory, no default initialization); allocate and
    initialize it with :func:`initschema.materialize`.

    ``cfg`` is the composed config ``node`` belongs to (by default, its root); only
    ``node`` is resolved (a ``???`` or an interpolation elsewhere in ``cfg`` is not its
    business). Every ``init_cfg`` under ``node`` is validated first; then what only the
    model can tell — an override naming a submodule it lacks, a missing checkpoint, a
    wrong ``prefix``, shapes that do not fit — is an :class:`~initschema.InitCfgError`
    whose problems name the config path (``model.init_cfg.zero.override.heads.name``)
    and where its value came from.

    ``rules`` plans the rules at that config path of ``cfg`` (:func:`plan_rules`) instead
    of the model's own ``init_weights``: for a plain ``nn.Module``, which takes no
    ``init_cfg``.

    >>> model, plan = initschema.hydra.instantiate_and_plan(cfg.model, cfg)
    >>> plan.execute()
    >>> model, plan = initschema.hydra.instantiate_and_plan(cfg.model, cfg, meta=True)
    >>> initschema.materialize(model, "cuda", seed=cfg.seed, plan=plan)
    """
    from hydra.utils import instantiate

    root = cfg if cfg is not None else node._get_root()
    full_key = node._get_full_key(None) if node is not root else ""
    typed = _validate(root, node, full_key, keys)
    with config_errors(root):
        if full_key:
            *parents, last = split_path(full_key)
            parent = root
            for part in parents:
                parent = parent._get_node(part)
            spec = with_typed(resolved(parent, last, full_key), typed, full_key)
        else:
            spec = typed_container(root, keys)
        if meta:
            import torch

            with torch.device("meta"):
                model = instantiate(spec)
        else:
            model = instantiate(spec)
    if rules is not None:
        return model, plan_rules(model, root, rules, strict=strict, log=log)
    if getattr(type(model), "_initschema_base_module", False) is not True:
        # A plain nn.Module: its own init_weights is no plan; its rules live elsewhere.
        raise InitCfgError.single(
            full_key,
            f"builds a {type(model).__name__}, a plain nn.Module that takes no init_cfg: "
            f"keep its rules under a key of the config (init_rules) and plan them with "
            f"rules='init_rules' (initschema plan|diff|report: --rules init_rules).",
        )
    with config_errors(root):
        # Through the package: this module (and `initschema validate`) imports no torch.
        return model, initschema.compile_plan(model, strict=strict, log=log)


def plan_rules(
    model: Any,
    cfg: Any,
    key: str,
    *,
    strict: bool | None = None,
    log: bool = True,
) -> Any:
    """The plan of the rules at config path ``key`` of ``cfg`` for ``model``: for a plain
    ``nn.Module`` (timm, Hugging Face, your own) that takes no ``init_cfg``. Resolves only
    that node; problems name their config path (``init_rules.head.std``) and where the
    value came from.

    >>> model = hydra.utils.instantiate(cfg.model)
    >>> plan = initschema.hydra.plan_rules(model, cfg, "init_rules")
    >>> plan.execute()
    """
    *parents, last = split_path(key)
    parent = cfg
    with config_errors(cfg):
        for part in parents:
            found = isinstance(parent, DictConfig) and part in parent.keys()
            parent = parent._get_node(part) if found else None
        if not isinstance(parent, DictConfig) or last not in parent.keys():
            raise InitCfgError.single(key, f"the config has no {key!r}; add the rules there.")
        problems: list[Problem] = []
        value = plain_value(parent, last, key, problems)
        if problems:
            raise InitCfgError(problems)
        return initschema.compile_plan(model, value, path=key, strict=strict, log=log)


class JobConfigError(InitCfgError, CompactHydraException):
    """The :class:`~initschema.InitCfgError` a :func:`validated` task raises inside a Hydra
    job: it fails that job (callbacks see it, a sweep goes on), and Hydra prints it as
    ``Error in config PATH: …`` lines, without a traceback."""

    def __str__(self) -> str:
        return "\n".join(f"Error in config {problem}" for problem in self.problems)


def validated(task: TaskT | None = None, *, keys: Sequence[str] = INIT_CFG_KEYS) -> Any:
    """Wrap a Hydra task function so that every ``init_cfg`` of its config is validated
    when the task starts (under plain ``@hydra.main``, hydra-zen's ``zen``, or any
    launcher: it runs inside each job).

    A bad config (or an :class:`~initschema.InitCfgError` the task raises, e.g. from
    :func:`instantiate_and_plan`) fails the job, never the process: inside a Hydra job it
    writes ``Error in config PATH: …`` for each problem to the job's log file and raises
    :class:`JobConfigError` (an ``InitCfgError``), which Hydra's callbacks see
    (``on_job_end``, status ``FAILED``) and Hydra prints without a traceback (a single
    run exits with status 1; a sweep runs its other jobs and ends non-zero). Called
    outside a Hydra job (a test calling the task with a composed config), it raises the
    ``InitCfgError`` itself.

    >>> @hydra.main(config_path="conf", config_name="config", version_base="1.3")
    ... @initschema.hydra.validated
    ... def train(cfg): ...
    """

    def decorate(task: TaskT) -> TaskT:
        @functools.wraps(task)
        def run(cfg: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                validate(cfg, keys)
                # What only the model can tell (instantiate_and_plan inside the task)
                # fails the job the same way.
                return task(cfg, *args, **kwargs)
            except InitCfgError as error:
                if not _in_hydra_job():
                    raise
                _to_log_files(error)
                raise JobConfigError(error.problems) from None

        return run  # type: ignore[return-value]

    return decorate(task) if task is not None else decorate


def _in_hydra_job() -> bool:
    """Whether Hydra's ``run_job`` is running the caller (HydraConfig outlives a run)."""
    from hydra.core.utils import run_job

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is run_job.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _to_log_files(error: InitCfgError) -> None:
    """The problems to the log files of the ``initschema`` logger's handlers (the job's
    log file): the terminal gets them once, from Hydra."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers += current.handlers
        current = current.parent if current.propagate else None
    for handler in handlers:
        if isinstance(handler, logging.FileHandler) and handler.level <= logging.ERROR:
            for problem in error.problems:
                record = logger.makeRecord(
                    logger.name, logging.ERROR, __file__, 0, "Error in config %s", (problem,), None
                )
                handler.handle(record)


def main(
    config_path: str | None = None,
    config_name: str | None = None,
    version_base: str = "1.3",
    *,
    keys: Sequence[str] = INIT_CFG_KEYS,
) -> Callable[[TaskT], Callable[[], Any]]:
    """``hydra.main`` with :func:`validated` around the task: a bad ``init_cfg`` stops the
    job before the task function runs. ``config_path`` is relative to the file that
    defines the task function, as with ``hydra.main``.
    """
    import hydra

    def decorate(task: TaskT) -> Callable[[], Any]:
        register_configs()
        path = config_path
        if path is not None and not path.startswith("pkg://") and not os.path.isabs(path):
            source = inspect.getsourcefile(task)
            path = os.path.join(os.path.dirname(os.path.abspath(source or ".")), path)
        run = validated(task, keys=keys)
        return hydra.main(config_path=path, config_name=config_name, version_base=version_base)(run)  # type: ignore[no-any-return]

    return decorate


register_configs()
