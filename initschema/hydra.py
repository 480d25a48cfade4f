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
task function, so a bad config never reaches model construction.
"""

from __future__ import annotations

import enum
import functools
import importlib.metadata
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING as DC_MISSING
from dataclasses import field, make_dataclass
from types import UnionType
from typing import Annotated, Any, Optional, TypeVar, Union, get_args, get_origin

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import initschema

from .cfg import InitCfg, parse_init_cfg
from .errors import InitCfgError, Problem, join_path, literal_choices
from .initializers import Initializer, target_names
from .registry import WEIGHT_INITIALIZERS, option_name

__all__ = [
    "ENTRY_POINTS",
    "GROUP",
    "INIT_CFG_KEYS",
    "annotate",
    "config_errors",
    "config_name",
    "init_cfg_paths",
    "instantiate_and_plan",
    "load_entry_points",
    "main",
    "option_name",
    "register_configs",
    "structured_config",
    "target_of",
    "typed_container",
    "validate",
    "validated",
]

logger = logging.getLogger("initschema")

GROUP = "init"
"""The config group holding one option per initializer type."""

TaskT = TypeVar("TaskT", bound=Callable[..., Any])


def _scalar(annotation: Any) -> tuple[type | None, bool]:
    """(float, str or bool, whether None is allowed) for such fields, else (None, _)."""
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    nullable = type(None) in args
    bases = {get_args(a)[0] if get_origin(a) is Annotated else a for a in args}
    bases.discard(type(None))
    scalar = next(iter(bases)) if len(bases) == 1 and bases <= {float, str, bool} else None
    return scalar, nullable


@functools.cache
def structured_config(cls: type[Initializer]) -> type:
    """A dataclass with ``cls``'s fields for Hydra's ConfigStore (generated, not hand-written).

    It and its Enums are attributes of this module under stable names
    (``NormalInitConfig``, ``KaimingMode``), so composed configs, their containers and
    the typed rules pickle, and a child process finds them again (for a user initializer,
    once the module that registers it is imported there).
    """
    fields: list[tuple[str, Any, Any]] = [
        ("_target_", str, field(default=target_of(cls))),
        ("type", str, field(default=cls.type_name)),
    ]
    for name, info in cls.model_fields.items():
        default = DC_MISSING if info.is_required() else info.default
        if default == ():
            default = None
        choices = literal_choices(info.annotation)
        scalar, nullable = _scalar(info.annotation)
        kind: Any = Any
        if choices and not any(c in _ENUM_RESERVED for c in choices):
            kind = _public(
                enum.Enum(
                    f"{cls.type_name}{name.title().replace('_', '')}",
                    {c: c for c in choices},
                    type=str,
                    module=__name__,
                )
            )
            default = kind(default)
        elif choices:  # a choice Enum cannot have as a member name: checked on validation
            kind = str
        elif scalar is not None:
            kind = Optional[scalar] if nullable else scalar  # noqa: UP045 (OmegaConf 2.3 needs it)
        value = "???" if default is DC_MISSING else default
        fields.append((name, kind, field(default=value)))
    generated: type = _public(make_dataclass(config_name(cls.type_name), fields))
    return generated


_ENUM_RESERVED = frozenset({"mro"})
"""Names an Enum member cannot have (``match: mro``)."""


def config_name(type_name: str) -> str:
    """The generated dataclass of an initializer type: ``Normal`` → ``NormalInitConfig``."""
    return f"{type_name}InitConfig"


def target_of(cls: type) -> str:
    """What ``_target_`` names ``cls`` by in generated configs: ``initschema.NormalInit``
    for the package's own classes, else the class's module and qualified name."""
    return target_names(cls)[0]


def _public(generated: Any) -> Any:
    """Make a generated class an attribute of this module under its own name (pickle looks
    classes up by module and qualified name)."""
    generated.__module__ = __name__
    generated.__qualname__ = generated.__name__
    globals()[generated.__name__] = generated
    return generated


def __getattr__(name: str) -> Any:
    """Generated classes of initializers registered since this module was imported (a
    child process unpickling a config asks for them by name)."""
    register_configs()
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ENTRY_POINTS = "initschema.initializers"
"""The entry point group through which a package registers its own initializers: each
entry names a module to import (``scaled = mypkg.inits``); Hydra apps then know them
before composing, in every process (the plugin and :func:`register_configs` load them)."""


@functools.cache
def load_entry_points() -> None:
    """Import the modules of the ``initschema.initializers`` entry point group, once."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        entry.load()


def register_configs(store: Any = None) -> None:
    """Store one option per registered initializer in group ``init`` (call again after
    registering your own initializers; :func:`main` does)."""
    from hydra.core.config_store import ConfigStore

    load_entry_points()
    store = store or ConfigStore.instance()
    for type_name, cls in WEIGHT_INITIALIZERS.items():
        store.store(group=GROUP, name=option_name(type_name), node=structured_config(cls))


INIT_CFG_KEYS: tuple[str, ...] = ("init_cfg",)
"""The keys whose values are init_cfgs, by default; every function here takes ``keys=``."""


def _init_cfg_nodes(node: Any, path: str, names: Sequence[str]) -> Iterator[tuple[str, Any, Any]]:
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
            yield from _init_cfg_nodes(child, child_path, names)


def init_cfg_paths(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> list[str]:
    """The config paths of every node under one of ``keys`` in ``cfg``, at any depth."""
    return [path for path, _, _ in _init_cfg_nodes(cfg, "", keys)]


def _plain(parent: Any, key: Any, path: str, problems: list[Problem]) -> Any:
    """The resolved Python value of ``parent[key]``; every ``???`` and broken interpolation
    in it becomes a problem at its full config path."""
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
        return {k: _plain(value, k, join_path(path, str(k)), problems) for k in value.keys()}
    if isinstance(value, ListConfig):
        return [_plain(value, i, join_path(path, i), problems) for i in range(len(value))]
    return value.value if isinstance(value, enum.Enum) else value


def _hydra_node(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _origin(path: str, hydra_node: Any) -> str:
    """Where the value at ``path`` came from: a command-line override or a group option."""
    if hydra_node is None:
        return ""
    overrides: list[str] = OmegaConf.to_container(hydra_node.overrides.task)  # type: ignore[assignment]
    # An override at the value or above it set it; overrides below it (u.a=1 u.b=0 for a
    # problem of the rule u) are what made it wrong.
    given = [
        override
        for override in overrides
        if "@" not in (key := override.split("=", 1)[0].lstrip("+~"))
        and (path == key or path.startswith(key + ".") or key.startswith(path + "."))
    ]
    if given:
        return f"set on the command line: {', '.join(given)}"
    best_package, label = "", ""
    for choice, option in hydra_node.runtime.choices.items():
        group, _, package = choice.partition("@")
        package = package or group.replace("/", ".")
        inside = path == package or path.startswith(package + ".")
        if option is not None and inside and len(package) > len(best_package):
            best_package, label = package, f"{group}/{option}"
    return f"rule composed from {label}" if label else ""


def annotate(error: InitCfgError, cfg: Any = None) -> InitCfgError:
    """The same problems, each followed by where Hydra says its value came from."""
    node = _hydra_node(cfg)
    problems = []
    for problem in error.problems:
        where = [_origin(problem.path, node), _interpolation(cfg, problem.path)]
        origin = "; ".join(w for w in where if w)
        problems.append(
            Problem(problem.path, f"{problem.message} [{origin}]") if origin else problem
        )
    return InitCfgError(problems)


def _interpolation(cfg: Any, path: str) -> str:
    """``value from ${lr_std}`` when the value at ``path`` is an interpolation."""
    node = cfg
    try:
        for part in _split(path):
            node = node._get_node(part)
    except Exception:  # no such node (a path inside a typed object), or no config at all
        return ""
    raw = node._value() if hasattr(node, "_value") else None
    return f"value from {raw}" if isinstance(raw, str) and raw.startswith("${") else ""


def validate(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> dict[str, InitCfg]:
    """Typed rules for every ``init_cfg`` node (every node under one of ``keys``) of a
    composed config, keyed by config path.

    Resolves interpolations; a ``???``, a broken interpolation or an invalid rule is an
    :class:`InitCfgError` naming the config path and, when Hydra knows it, the group
    option or command-line override the value came from.
    """
    problems: list[Problem] = []
    found: dict[str, InitCfg] = {}
    for path, parent, key in _init_cfg_nodes(cfg, "", keys):
        unresolved: list[Problem] = []
        value = _plain(parent, key, path, unresolved)
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
        raise annotate(InitCfgError(problems), cfg)
    return found


def typed_container(cfg: Any, keys: Sequence[str] = INIT_CFG_KEYS) -> Any:
    """The resolved config as plain Python, each ``init_cfg`` (each node under one of
    ``keys``) replaced by its typed :class:`~initschema.InitCfg` (ready for
    ``hydra.utils.instantiate``)."""
    typed = validate(cfg, keys)
    plain: dict[str, Any] = {}
    for key in cfg.keys():
        if key != "hydra":  # Hydra's own node holds run-time interpolations
            child = cfg._get_node(key)
            container = isinstance(child, DictConfig | ListConfig)
            plain[key] = (
                OmegaConf.to_container(child, resolve=True, enum_to_str=True)
                if container
                else cfg[key]
            )
    for path, init_cfg in typed.items():
        *parents, last = _split(path)
        node: Any = plain
        for part in parents:
            node = node[part]
        node[last] = init_cfg
    return plain


def _split(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


@contextmanager
def config_errors(cfg: Any) -> Iterator[None]:
    """Re-raise an :class:`~initschema.InitCfgError` from inside the block with each
    problem's origin in ``cfg`` (the command-line override or group option its value came
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
) -> tuple[Any, Any]:
    """Build the model that config ``node`` describes (``hydra.utils.instantiate``) and
    compile its plan: ``(model, plan)``, nothing written yet. With ``meta=True`` the model
    is built on the meta device (no memory, no default initialization); allocate and
    initialize it with :func:`initschema.materialize`.

    ``cfg`` is the composed config ``node`` belongs to (by default, its root). Every
    ``init_cfg`` is validated first; then what only the model can tell — an override
    naming a submodule it lacks, a missing checkpoint, a wrong ``prefix``, shapes that do
    not fit — is an :class:`~initschema.InitCfgError` whose problems name the config
    path (``model.init_cfg.zero.override.heads.name``) and where its value came from.

    >>> model, plan = initschema.hydra.instantiate_and_plan(cfg.model, cfg)
    >>> plan.execute()
    >>> model, plan = initschema.hydra.instantiate_and_plan(cfg.model, cfg, meta=True)
    >>> initschema.materialize(model, "cuda", seed=cfg.seed, plan=plan)
    """
    from hydra.utils import instantiate

    root = cfg if cfg is not None else node._get_root()
    full_key = node._get_full_key(None) if node is not root else ""
    spec: Any = typed_container(root, keys)
    for part in _split(full_key) if full_key else ():
        spec = spec[part]
    with config_errors(root):
        if meta:
            import torch

            with torch.device("meta"):
                model = instantiate(spec)
        else:
            model = instantiate(spec)
        # Through the package: this module (and `initschema validate`) imports no torch.
        return model, initschema.compile_plan(model, strict=strict, log=log)


def validated(task: TaskT | None = None, *, keys: Sequence[str] = INIT_CFG_KEYS) -> Any:
    """Wrap a Hydra task function so that every ``init_cfg`` of its config is validated
    when the task starts (under plain ``@hydra.main``, hydra-zen's ``zen``, or any
    launcher: it runs inside each job).

    A bad config (or an :class:`~initschema.InitCfgError` the task raises, e.g. from
    :func:`instantiate_and_plan`) logs ``Error in config PATH: …`` for each problem on the
    ``initschema`` logger (the job's log file gets them) and then, in a ``-m`` sweep, raises
    :class:`~initschema.InitCfgError`: that job fails, the others run, and the sweep ends
    non-zero. In a single run it writes the same lines to standard error and exits with
    status 1, without a traceback.

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
                # ends the job the same way.
                return task(cfg, *args, **kwargs)
            except InitCfgError as error:
                for problem in error.problems:
                    logger.error("Error in config %s", problem)
                if _in_sweep():
                    raise
                for problem in error.problems:
                    print(f"Error in config {problem}", file=sys.stderr)
                raise SystemExit(1) from None

        return run  # type: ignore[return-value]

    return decorate(task) if task is not None else decorate


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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
