"""Compiling init rules against a model into an :class:`~initschema.engine.plan.InitPlan`.

``compile_plan(module)`` plans exactly what ``module.init_weights()`` does in
MMEngine (own non-Pretrained rules, then each child, then Pretrained rules;
deeper rules therefore win); ``compile_plan(module, init_cfg)`` plans exactly
what ``initialize(module, init_cfg)`` does. Every check against the model
happens here, so a failing compile leaves every weight as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from torch import nn

from .._runtime import paused_gc
from ..cfg.init_cfg import MAX_DEPTH, Rule, parse_init_cfg
from ..cfg.initializer import Initializer
from ..errors import InitCfgError, InitUsageError, Problem, join_path
from .emit import Emitter
from .lints import Lint, deferred_lints, find_lints
from .plan import Action, InitPlan, SubPlan
from .walk import Tree, children

__all__ = [
    "MODEL_WRAPPERS",
    "compile_init_weights",
    "compile_plan",
    "has_own_init_weights",
    "is_base_module",
    "strict",
]

_STRICT: ContextVar[bool] = ContextVar("initschema_strict", default=False)


@contextmanager
def strict(enabled: bool = True) -> Iterator[None]:
    """Make every plan compiled inside the block strict, ``model.init_weights()`` included
    (MMEngine's ``init_weights`` takes no argument): warning-level lints become errors.

    >>> with ins.strict():
    ...     model.init_weights()
    """
    token = _STRICT.set(enabled)
    try:
        yield
    finally:
        _STRICT.reset(token)


def is_base_module(module: object) -> bool:
    """Whether ``module`` is an :class:`initschema.BaseModule` (it carries the marker its
    class sets; the compiler does not import the module layer above it)."""
    return getattr(type(module), "_initschema_base_module", False) is True


def has_own_init_weights(module: object) -> bool:
    """Whether ``module``'s ``init_weights`` is user code rather than BaseModule's (one
    assigned on the instance counts: calling ``module.init_weights()`` runs it)."""
    if "init_weights" in getattr(module, "__dict__", {}):
        return True
    method = getattr(type(module), "init_weights", None)
    return method is not None and not getattr(method, "_initschema_base_init_weights", False)


MODEL_WRAPPERS: list[Callable[[nn.Module], bool]] = []
"""Tests for model wrappers (MMEngine's ``is_model_wrapper``, added by
:mod:`initschema.mmengine`): ``init_weights`` descends into the ``module`` of a child
that one accepts and that has no ``init_weights`` of its own, as MMEngine's does."""


def _unwrapped(name: str, child: nn.Module) -> tuple[str, nn.Module]:
    if not hasattr(child, "init_weights") and any(test(child) for test in MODEL_WRAPPERS):
        inner = getattr(child, "module", None)
        if isinstance(inner, nn.Module):
            return f"{name}.module", inner
    return name, child


def compile_plan(
    module: nn.Module,
    init_cfg: Any = None,
    *,
    path: str = "init_cfg",
    strict: bool | None = None,
    log: bool = True,
) -> InitPlan:
    """Validate rules against ``module`` and plan every write; nothing is written.

    With ``init_cfg=None`` and a :class:`~initschema.BaseModule` root, plans
    ``module.init_weights()``; with an ``init_cfg``, plans
    ``initialize(module, init_cfg)`` (``path`` names that config in errors).
    Raises :class:`InitCfgError` listing every problem found; with ``strict`` (by
    default: inside :func:`initschema.strict`), warning-level lints (a ``layer`` that
    matches nothing, an unreachable ``init_cfg``, checkpoint keys that do not fit, …)
    are problems too. Lints are logged on the ``initschema`` logger unless ``log`` is
    False.
    """
    with paused_gc():
        return _compile_plan(module, init_cfg, path, strict, log)


def _compile_plan(
    module: nn.Module, init_cfg: Any, path: str, strict: bool | None, log: bool
) -> InitPlan:
    compiler = _Compiler(module)
    if init_cfg is not None:
        for rule in compiler.parse(init_cfg, path):
            compiler.emitter.emit_rule(module, "", rule)
    elif is_base_module(module):
        if has_own_init_weights(module):
            compiler.user_init_weights(module, "")  # user code runs whatever is_init says
        elif module.is_init:
            compiler.already_initialized = True
        else:
            compiler.compile_init_weights(module, "")
    else:
        raise InitUsageError(
            f"compile_plan(module) plans module.init_weights(), which needs an "
            f"initschema.BaseModule, got {type(module).__name__}; pass init_cfg=... to plan "
            f"initialize(module, init_cfg) instead."
        )
    return compiler.finish(init_weights_mode=init_cfg is None, strict=strict, log=log)


def compile_init_weights(
    module: nn.Module,
    *,
    log: bool = True,
    lint: bool = True,
    strict: bool | None = None,
    where: str = "",
) -> InitPlan:
    """The plan of ``BaseModule.init_weights`` itself for ``module``, even when a subclass
    overrides ``init_weights`` (this is what its ``super().init_weights()`` runs).
    ``log=False`` keeps its lints off the log; ``lint=False`` computes none (a nested
    ``super().init_weights()``: the outer plan lints the whole model); ``where`` is the
    module's path in that model, for messages."""
    with paused_gc():
        compiler = _Compiler(module, where)
        compiler.compile_init_weights(module, "")
        return compiler.finish(init_weights_mode=True, log=log, lint=lint, strict=strict)


class _Compiler:
    """MMEngine's order over one model: a module's own rules, then each child's
    ``init_weights`` (a user one opaque, its ``super()`` part compiled speculatively), then
    its Pretrained rules. The :class:`Emitter` turns each rule into actions."""

    def __init__(self, root: nn.Module, where: str = "") -> None:
        self.root = root
        self.tree = Tree(root)
        self.emitter = Emitter(self.tree, where)
        self.initialized: set[int] = set()
        self.deferred: list[Lint] = []
        self.subplans: dict[int, SubPlan] = {}
        self.already_initialized = False
        self.parsed: dict[Any, tuple[str, tuple[Rule, ...]]] = {}

    def parse(self, init_cfg: Any, path: str) -> tuple[Rule, ...]:
        """The rules of ``init_cfg``; a config equal to one parsed before in this compile
        (every block of a model has the same) reuses its typed rules, at this path."""
        key = _frozen(init_cfg) if path else None
        try:
            hash(key)
        except TypeError:  # a typed rule with an unhashable field: parse it every time
            key = None
        if key is not None and key in self.parsed:
            base, rules = self.parsed[key]
            return tuple(_rebased(rule, base, path) for rule in rules)
        try:
            rules = parse_init_cfg(init_cfg, path).rules
        except InitCfgError as error:
            self.emitter.problems.extend(error.problems)
            return ()
        if key is not None:
            self.parsed[key] = (path, rules)
        return rules

    def compile_init_weights(self, module: nn.Module, path: str) -> None:
        emitter, actions = self.emitter, self.emitter.actions
        # A class may skip BaseModule.__init__ (no init_cfg set): no rules of its own.
        init_cfg = getattr(module, "init_cfg", None)
        rules = self.parse(init_cfg, join_path(path, "init_cfg")) if init_cfg else ()
        for rule in rules:
            if not rule.is_pretrained:
                emitter.emit_rule(module, path, rule)
        for name, child in (_unwrapped(*item) for item in children(module)):
            if not hasattr(child, "init_weights") or getattr(child, "is_init", False):
                continue
            if id(child) in self.initialized:
                continue
            child_path = f"{path}.{name}" if path else name
            guarded = hasattr(child, "is_init")
            guard = len(actions)
            if guarded:
                actions.append(_NO_ACTION)  # replaced once the child's length is known
            if has_own_init_weights(child):
                self.user_init_weights(child, child_path)
            else:
                self.compile_init_weights(child, child_path)
            if guarded:
                skip = len(actions)
                actions[guard] = Action("guard", child_path, "is_init", target=child, skip=skip)
        for rule in rules:
            if rule.is_pretrained:
                emitter.emit_rule(module, path, rule)
        self.initialized.add(id(module))
        actions.append(Action("mark", path, f"{type(module).__name__}.init_weights", target=module))

    def user_init_weights(self, module: nn.Module, path: str) -> None:
        """An opaque user ``init_weights``. What its ``super().init_weights()`` would run is
        compiled too, and dropped: its problems become deferred lints, raised as errors
        only if that ``super().init_weights()`` runs."""
        if is_base_module(module):
            self.speculate(module, path)
        params = self.emitter.subtree_tensors(module, path, buffers=False)
        self.emitter.actions.append(
            Action("call", path, f"{type(module).__name__}.init_weights", params, target=module)
        )

    def speculate(self, module: nn.Module, path: str) -> None:
        # Its rules' layer lints stay (true whether or not it runs); its actions go.
        emitter = self.emitter
        actions, problems, unopened = (
            len(emitter.actions),
            len(emitter.problems),
            emitter.unopened,
        )
        initialized = set(self.initialized)
        emitter.speculative += 1
        try:
            self.compile_init_weights(module, path)
        finally:
            emitter.speculative -= 1
        deferred = emitter.problems[problems:]
        if not deferred and emitter.unopened == unopened:
            part = tuple(emitter.actions[actions:])
            marked = [a.target for a in part if a.kind == "mark" and a.target is not None]
            try:
                init_cfgs = tuple((m, copy.deepcopy(m.init_cfg)) for m in marked)
            except Exception:  # something in one cannot be copied: compile it when it runs
                init_cfgs = None
            if init_cfgs is not None:
                subtree = self.tree.subtree(module, path)
                children = {id(m): (m, tuple(map(id, m._modules.values()))) for _, m in subtree}
                self.subplans[id(module)] = SubPlan(part, init_cfgs, tuple(children.values()))
        del emitter.actions[actions:], emitter.problems[problems:]
        self.initialized = initialized
        self.deferred.extend(deferred_lints(type(module).__name__, deferred))

    def finish(
        self,
        *,
        init_weights_mode: bool,
        strict: bool | None = None,
        log: bool = True,
        lint: bool = True,
    ) -> InitPlan:
        emitter = self.emitter
        if emitter.problems:
            raise InitCfgError(emitter.problems)
        strict = _STRICT.get() if strict is None else strict
        parameters = tuple((p, tuple(t.shape)) for p, t in self.tree.parameters)
        plan = InitPlan(
            tuple(emitter.actions),
            (),
            parameters,
            self.root,
            tuple(emitter.rule_uses),
            self.tree.modules,
            dict(self.tree.parameters + self.tree.buffers),
            self.subplans,
            self.tree.stream_keys(self.root),
        )
        if not lint:
            return plan
        lints = find_lints(
            plan,
            init_weights_mode=init_weights_mode,
            already_initialized=self.already_initialized,
            deferred=self.deferred,
            log=log and not strict,
        )
        if strict and (errors := [lint for lint in lints if lint.level == "warning"]):
            raise InitCfgError(
                [Problem(lint.path, f"{lint.message} (strict: {lint.kind})") for lint in errors]
            )
        return replace(plan, lints=tuple(lints))


def _frozen(value: Any, depth: int = 0) -> Any:
    """A hashable copy of a plain config (dicts, lists, scalars, typed rules), or None
    when it holds anything else, or nests deeper than parsing allows (then parsing says
    so). Scalars keep their type: ``True`` is not ``1`` here."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return (kind, value)
    if depth > MAX_DEPTH:
        return None
    if kind is dict or isinstance(value, Mapping):
        items = [(k, _frozen(v, depth + 1)) for k, v in value.items()]
        ok = all(isinstance(k, str) and v is not None for k, v in items)
        return ("dict", tuple(items)) if ok else None
    if isinstance(value, list | tuple):
        items = [_frozen(v, depth + 1) for v in value]
        return ("list", tuple(items)) if all(v is not None for v in items) else None
    if isinstance(value, Initializer | type):
        return (kind, value)
    return None


def _rebased(rule: Rule, base: str, path: str) -> Rule:
    """``rule``, parsed at config path ``base``, as if parsed at ``path``."""
    overrides = rule.override_paths
    return Rule(
        path + rule.source[len(base) :],
        rule.init,
        rule.name,
        None if overrides is None else tuple(path + p[len(base) :] for p in overrides),
    )


_NO_ACTION = Action("mark", "", "")
"""A placeholder in the action list, never left in a plan."""
