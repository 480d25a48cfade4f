"""``BaseModule`` and its containers: modules that carry an ``init_cfg`` and run it.

Same contract as MMEngine's: ``init_weights()`` runs the module's own
non-Pretrained rules, then each child's ``init_weights`` (deeper rules win),
then its Pretrained rules; it sets ``is_init`` and a second call only warns.
The difference: the whole tree is validated and planned before the first write.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from . import _runtime
from .cfg.init_cfg import parse_init_cfg
from .cfg.initializer import Initializer
from .engine.compiler import compile_init_weights, compile_plan, has_own_init_weights
from .engine.execute import execute, path_in_run, run_nested, running
from .engine.lints import deferred_lints
from .engine.plan import InitPlan
from .engine.report import InitReport
from .errors import InitCfgError, InitCfgTypeError, TypeProblem, join_path

__all__ = [
    "BaseModule",
    "ModuleDict",
    "ModuleList",
    "Sequential",
    "check_init_cfg",
    "initialize",
    "plan_own_init_weights",
    "run_init_weights",
]

logger = logging.getLogger("initschema")


Done = Callable[[nn.Module, InitReport], None]
"""What to do with the report of an ``init_weights`` run from outside a plan."""


def check_init_cfg(module: nn.Module, init_cfg: Any) -> None:
    """Validate the ``init_cfg`` a module is built with: raise :class:`InitCfgError`, or
    for a class that owns its ``init_weights`` (which may give it its own meaning) log
    the problems as deferred lints."""
    try:
        _parse(init_cfg, f"{type(module).__name__}.init_cfg")
    except InitCfgError as error:
        if not has_own_init_weights(module):
            raise
        for lint in deferred_lints(type(module).__name__, error.problems):
            logger.info("%s", lint)


def _parse(init_cfg: Any, path: str) -> None:
    try:
        parse_init_cfg(init_cfg, path)
    except InitCfgError as error:
        if isinstance(init_cfg, Mapping | list | tuple | Initializer):
            raise
        # Not even a container of rules: MMEngine raises TypeError for it.
        raise InitCfgTypeError([TypeProblem(p.path, p.message) for p in error.problems]) from None


def run_init_weights(module: nn.Module) -> InitReport | None:
    """``BaseModule.init_weights`` of ``module`` (not yet initialized); the report when it
    ran as a plan of its own, None when it ran as part of a running one."""
    # Called from a user init_weights inside a running plan (its super().init_weights()),
    # the outer plan reports and lints the whole model: this part only runs.
    nested, where = running(), path_in_run(module)
    if nested and run_nested(module):  # compiled with the running plan, and still valid
        return None
    try:
        plan = compile_init_weights(module, log=not nested, lint=not nested, where=where)
    except InitCfgError as error:
        if not where:
            raise
        # Paths from the model's root, like the lints the outer plan logged for them.
        raise InitCfgError(
            [type(p)(join_path(where, p.path), p.message) for p in error.problems]
        ) from None
    report = plan.execute()
    return None if nested else report


def plan_own_init_weights(cls: type, done: Done | None = None) -> None:
    """Wrap the ``init_weights`` that ``cls`` itself defines, if any (once): called from
    outside a plan, it runs as the plan of ``init_weights()`` (one opaque call plus what
    its ``super().init_weights()`` writes), so provenance, lints and the log cover the
    whole call, as MMEngine's log does; ``done`` then gets the report."""
    own = cls.__dict__.get("init_weights")
    if callable(own) and not hasattr(own, "__wrapped_init_weights__"):
        cls.init_weights = _planned(own, done)  # type: ignore[attr-defined]


def _planned(user_init_weights: Callable[..., None], done: Done | None) -> Callable[..., None]:
    @functools.wraps(user_init_weights)
    def init_weights(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        if running() or args or kwargs:
            user_init_weights(self, *args, **kwargs)
            return
        report = compile_plan(self).execute()
        if done is not None:
            done(self, report)

    init_weights.__wrapped_init_weights__ = user_init_weights  # type: ignore[attr-defined]
    return init_weights


class BaseModule(nn.Module):
    """An ``nn.Module`` with an ``init_cfg``, validated when the module is built.

    ``init_cfg`` keeps the value given (a deep copy), as MMEngine does, so code that
    reads or replaces it keeps working; it is parsed again when a plan is compiled.

    A subclass that overrides ``init_weights`` owns its ``init_cfg``: it may give it a
    meaning of its own, or never call ``super().init_weights()``, so problems in it are
    logged as lints when it is built and raised only if ``super().init_weights()`` runs
    with it. Calling such an ``init_weights`` from outside a plan runs it inside one
    (the subclass's method is wrapped when the class is created), so that the report
    covers what the user code writes too.
    """

    _initschema_base_module = True
    """The marker by which the compiler, which does not import this module, knows one."""

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__()
        check_init_cfg(self, init_cfg)
        self._is_init = False
        self.init_cfg = copy.deepcopy(init_cfg)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plan_own_init_weights(cls)

    @property
    def is_init(self) -> bool:
        """Whether ``init_weights`` has run (it does nothing more once it has)."""
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        object.__setattr__(self, "_is_init", value)  # a bool: nn.Module's checks are moot

    def init_weights(self) -> None:
        """Initialize the weights from the ``init_cfg`` of this module and its descendants.

        Raises :class:`~initschema.InitCfgError` before any write when a rule is bad (with
        :func:`initschema.strict`, also when a warning-level lint fires).
        """
        if self._is_init:
            warnings.warn(
                f"init_weights of {type(self).__name__} has been called more than once; "
                f"it does nothing now (set is_init = False to run it again).",
                stacklevel=2,
            )
            return
        run_init_weights(self)

    init_weights._initschema_base_init_weights = True  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.init_cfg:
            text += f"\ninit_cfg={self.init_cfg}"
        return text


class Sequential(BaseModule, nn.Sequential):
    """``nn.Sequential`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(self, *args: nn.Module, init_cfg: Any = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.Sequential.__init__(self, *args)


class ModuleList(BaseModule, nn.ModuleList):
    """``nn.ModuleList`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(self, modules: Iterable[nn.Module] | None = None, init_cfg: Any = None) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleList.__init__(self, modules)


class ModuleDict(BaseModule, nn.ModuleDict):
    """``nn.ModuleDict`` whose ``init_weights`` reaches its children and has an ``init_cfg``."""

    def __init__(
        self, modules: Mapping[str, nn.Module] | None = None, init_cfg: Any = None
    ) -> None:
        BaseModule.__init__(self, init_cfg)
        nn.ModuleDict.__init__(self, modules)


def initialize(module: nn.Module, init_cfg: Any) -> None:
    """Apply ``init_cfg`` to ``module`` as MMEngine's ``initialize`` does (list order,
    each rule's overrides right after it), after validating all of it."""
    if init_cfg is None:
        raise TypeError("initialize() needs an init_cfg (a dict, a list or named rules), got None")
    _parse(init_cfg, "init_cfg")
    compile_plan(module, init_cfg).execute()


class _Engine:
    """What the lower layers call through :mod:`initschema._runtime`."""

    def apply(self, init: Initializer, module: nn.Module) -> None:
        compile_plan(module, init).execute()

    def execute(self, plan: InitPlan, seed: int | None, device: str) -> InitReport:
        return execute(plan, seed=seed, device=device)


_runtime.register(_Engine())
