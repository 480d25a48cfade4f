"""Compiling init rules against a model into an :class:`InitPlan`, before any write.

``compile_plan(module)`` plans exactly what ``module.init_weights()`` does in
MMEngine (own non-Pretrained rules, then each child, then Pretrained rules;
deeper rules therefore win); ``compile_plan(module, init_cfg)`` plans exactly
what ``initialize(module, init_cfg)`` does. Every check against the model
happens here, so a failing compile leaves every weight as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from torch import Tensor, nn

from .cfg import Rule, parse_init_cfg
from .errors import InitCfgError, InitUsageError, Problem, did_you_mean, join_path
from .initializers import Initializer, PretrainedInit, WeightInit
from .lints import Lint, deferred_lints, find_lints, last_writers
from .pretrained import Checkpoint, match_keys, open_checkpoint, policy_problems

if TYPE_CHECKING:
    from .report import InitReport

__all__ = ["Action", "InitPlan", "compile_plan", "strict"]

ActionKind = Literal["write", "load", "call", "guard", "mark"]

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


@dataclass(frozen=True)
class Action:
    """One step of a plan.

    ``write``: an initializer writes ``tensors`` (``weight``/``bias``) of one module.
    ``load``: a Pretrained rule copies checkpoint entries into a module's subtree.
    ``call``: a user-defined ``init_weights`` runs (opaque; ``params`` is what it *may* write).
    ``guard``: MMEngine's ``if not child.is_init`` before a child's ``init_weights``, read
    when the plan runs: when the child is initialized by then, execution jumps to ``skip``.
    ``mark``: a BaseModule's ``is_init`` is set.
    """

    kind: ActionKind
    module: str
    source: str
    params: tuple[str, ...] = ()
    init: Initializer | None = None
    tensors: tuple[str, ...] = ()
    keys: tuple[tuple[str, str], ...] = ()
    """For ``load``: (model key, checkpoint key) of every entry loaded."""
    target: nn.Module | None = field(default=None, repr=False, compare=False)
    checkpoint: Checkpoint | None = field(default=None, repr=False, compare=False)
    skip: int = 0
    """For ``guard``: the index of the first action after the guarded child."""
    hooked: Literal["", "checked", "unchecked"] = ""
    """For ``load`` through the model's own load code (hooks): ``checked`` when a dry run
    told what it writes, ``unchecked`` when that failed (then ``params`` is what it may
    write)."""
    notes: tuple[tuple[str, str], ...] = ()
    """For ``load``: (model key, what the load code did to its entry)."""

    def describe(self) -> str:
        """The initializer and its arguments, or what the opaque step is."""
        if self.kind == "call":
            cfg = getattr(self.target, "init_cfg", None)
            return f"user-defined {self.source}" + (" (given its init_cfg)" if cfg else "")
        if self.kind == "mark":
            return "set is_init"
        if self.kind == "guard":
            return "skip the child when it is already initialized"
        assert self.init is not None
        return self.init.describe()

    def describe_param(self, path: str) -> str:
        """What this action writes into the tensor at ``path`` (one of ``params``)."""
        if self.kind == "write" and isinstance(self.init, WeightInit):
            return self.init.describe_tensor(self.tensors[self.params.index(path)])
        if self.kind == "load" and isinstance(self.init, PretrainedInit):
            index = self.params.index(path)
            text = f"load {self.keys[index][1]!r} from {self.init.checkpoint}"
            notes = [note for key, note in self.notes if key == self.tensors[index]]
            return text + "".join(f" ({note})" for note in notes)
        return self.describe()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "module": self.module, "source": self.source}
        if self.init is not None:
            data["init"] = self.init.to_cfg()
        if self.params:
            data["params"] = list(self.params)
        if self.keys:
            data["keys"] = {model: ckpt for model, ckpt in self.keys}
        return data


@dataclass(frozen=True)
class InitPlan:
    """A frozen, ordered list of actions plus lints; ``execute`` runs it on ``module``."""

    actions: tuple[Action, ...]
    lints: tuple[Lint, ...]
    parameters: tuple[tuple[str, tuple[int, ...]], ...]
    """Every parameter of the model: (path, shape), in ``named_parameters`` order."""
    module: nn.Module = field(repr=False, compare=False)

    def execute(self, seed: int | None = None, *, device: str = "cpu") -> InitReport:
        """Write the weights and return the report (see :func:`initschema.execute.execute`).

        Tensors on the meta device are materialized on ``device`` as they are written,
        straight from the checkpoint for Pretrained entries."""
        from .execute import execute

        return execute(self, seed=seed, device=device)

    def last_writers(self) -> dict[str, int]:
        """For each tensor the plan writes, the index of the last action writing it."""
        return last_writers(self.actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [a.to_dict() for a in self.actions if a.kind not in ("mark", "guard")],
            "lints": [lint.to_dict() for lint in self.lints],
            "parameters": [{"path": p, "shape": list(s)} for p, s in self.parameters],
        }

    def __str__(self) -> str:
        from .report import render_plan

        return render_plan(self)


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
    from .module import BaseModule

    compiler = _Compiler(module)
    if init_cfg is not None:
        for rule in compiler.parse(init_cfg, path):
            compiler.emit_rule(module, "", rule)
    elif isinstance(module, BaseModule):
        if has_own_init_weights(module):
            compiler.emit_call(module, "")  # user code runs whatever is_init says
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
    compiler = _Compiler(module, where)
    compiler.compile_init_weights(module, "")
    return compiler.finish(init_weights_mode=True, log=log, lint=lint, strict=strict)


def has_own_init_weights(module: nn.Module) -> bool:
    """Whether ``module``'s ``init_weights`` is user code rather than BaseModule's."""
    from .module import BaseModule

    return getattr(type(module), "init_weights", None) is not BaseModule.init_weights


def apply_order(module: nn.Module, path: str) -> Iterator[tuple[str, nn.Module]]:
    """(path, submodule) in ``nn.Module.apply`` order: children first, then the module."""
    for name, child in module.named_children():
        yield from apply_order(child, join_path(path, name))
    yield path, module


class _Compiler:
    def __init__(self, root: nn.Module, where: str = "") -> None:
        self.root = root
        self.where = where
        """The root's own path in the model, when it is a nested part (messages only)."""
        self.actions: list[Action] = []
        self.problems: list[Problem] = []
        self.reached: set[int] = set()
        self.initialized: set[int] = set()
        self.opaque: list[str] = []
        self.rule_uses: list[tuple[Rule, nn.Module, str]] = []
        self.load_lints: list[Lint] = []
        self.deferred: list[Lint] = []
        self.speculative = 0
        """How deep compilation is inside the ``super().init_weights()`` of a user
        ``init_weights``, which may never run: problems there are deferred lints."""
        self.already_initialized = False
        self.module_paths = {id(m): p for p, m in root.named_modules()}
        self.tensor_paths: dict[int, str] = {}
        for p, t in [*root.named_parameters(), *root.named_buffers()]:
            self.tensor_paths.setdefault(id(t), p)

    def full_path(self, path: str) -> str:
        return join_path(self.where, path) if path else self.where

    def parse(self, init_cfg: Any, path: str) -> tuple[Rule, ...]:
        try:
            return parse_init_cfg(init_cfg, path).rules
        except InitCfgError as error:
            self.problems.extend(error.problems)
            return ()

    def canonical(self, tensor: Tensor, alias: str) -> str:
        return self.tensor_paths.get(id(tensor), alias)

    def compile_init_weights(self, module: nn.Module, path: str) -> None:
        self.reached.add(id(module))
        rules = self.parse(module.init_cfg, join_path(path, "init_cfg"))
        for rule in rules:
            if not rule.is_pretrained:
                self.emit_rule(module, path, rule)
        for name, child in module.named_children():
            if not hasattr(child, "init_weights") or getattr(child, "is_init", False):
                continue
            if id(child) in self.initialized:
                continue
            child_path = join_path(path, name)
            guard = len(self.actions)
            if hasattr(child, "is_init"):
                self.actions.append(Action("guard", child_path, "is_init", target=child))
            if has_own_init_weights(child):
                self.emit_call(child, child_path)
            else:
                self.compile_init_weights(child, child_path)
            if hasattr(child, "is_init"):
                self.actions[guard] = replace(self.actions[guard], skip=len(self.actions))
        for rule in rules:
            if rule.is_pretrained:
                self.emit_rule(module, path, rule)
        self.initialized.add(id(module))
        self.actions.append(
            Action("mark", path, f"{type(module).__name__}.init_weights", target=module)
        )

    def emit_call(self, module: nn.Module, path: str) -> None:
        """An opaque user ``init_weights``. What its ``super().init_weights()`` would run is
        compiled too, and dropped: its problems become deferred lints, raised as errors
        only if that ``super().init_weights()`` runs."""
        from .module import BaseModule

        if isinstance(module, BaseModule):
            self.speculate(module, path)
        self.opaque.append(path)
        params = tuple(self.canonical(t, join_path(path, n)) for n, t in module.named_parameters())
        self.actions.append(
            Action("call", path, f"{type(module).__name__}.init_weights", params, target=module)
        )

    def speculate(self, module: nn.Module, path: str) -> None:
        # Its rules' layer lints stay (true whether or not it runs); its actions go.
        actions, problems = len(self.actions), len(self.problems)
        initialized, reached = set(self.initialized), set(self.reached)
        self.speculative += 1
        try:
            self.compile_init_weights(module, path)
        finally:
            self.speculative -= 1
        deferred = self.problems[problems:]
        del self.actions[actions:], self.problems[problems:]
        self.initialized, self.reached = initialized, reached | {id(module)}
        self.deferred.extend(deferred_lints(type(module).__name__, deferred))

    def emit_rule(self, module: nn.Module, path: str, rule: Rule) -> None:
        init = rule.init
        if isinstance(init, PretrainedInit):
            self.emit_load(module, path, init, rule.source)
        elif isinstance(init, WeightInit):
            for sub_path, sub in apply_order(module, path):
                if init.matches(sub):
                    self.emit_write(sub, sub_path, init, rule.source)
            self.rule_uses.append((rule, module, path))
        else:
            self.problems.append(Problem(rule.source, _unsupported(init)))
            return
        for override, source in zip(init.override, rule.override_sources, strict=True):
            target = self.override_target(module, path, override.name, source)
            if target is None:
                continue
            target_path = self.module_paths.get(id(target), join_path(path, override.name))
            sub_init = override.init or init.without_selection()
            if isinstance(sub_init, PretrainedInit):
                self.emit_load(target, target_path, sub_init, source)
            elif isinstance(sub_init, WeightInit):
                for sub_path, sub in apply_order(target, target_path):
                    self.emit_write(sub, sub_path, sub_init, source)
            else:
                self.problems.append(Problem(source, _unsupported(sub_init)))

    def override_target(
        self, module: nn.Module, path: str, name: str, source: str
    ) -> nn.Module | None:
        full = self.full_path(path)
        where = f"module '{full}'" if full else "the root module"
        if not hasattr(module, name):
            children = [n for n, _ in module.named_children()]
            self.problems.append(
                Problem(
                    join_path(source, "name"),
                    f"{where} ({type(module).__name__}) has no attribute {name!r}"
                    f"{did_you_mean(name, children) or ';'} its submodules are "
                    f"{', '.join(children) or 'none'}.",
                )
            )
            return None
        target = getattr(module, name)
        if not isinstance(target, nn.Module):
            self.problems.append(
                Problem(
                    join_path(source, "name"),
                    f"{name!r} of {where} is a {type(target).__name__}, not a submodule; "
                    f"an override names a submodule and initializes all of it.",
                )
            )
            return None
        return target

    def emit_write(self, module: nn.Module, path: str, init: WeightInit, source: str) -> None:
        for message in init.problems(module):
            full = self.full_path(path)
            self.problems.append(Problem(source, f"at module '{full}': {message}."))
        names = tuple(n for n in ("weight", "bias") if isinstance(getattr(module, n, None), Tensor))
        if not names:
            return
        params = tuple(self.canonical(getattr(module, n), join_path(path, n)) for n in names)
        self.actions.append(Action("write", path, source, params, init, names, target=module))

    def emit_load(self, module: nn.Module, path: str, init: PretrainedInit, source: str) -> None:
        if self.speculative:
            return  # a checkpoint user code may load itself: checked if super() runs with it
        try:
            checkpoint = open_checkpoint(init, source)
            match = match_keys(module, checkpoint)
        except InitCfgError as error:
            self.problems.extend(error.problems)
            return
        self.problems.extend(policy_problems(init, source, match))
        own = module.state_dict(keep_vars=True)
        params = tuple(self.canonical(own[k], join_path(path, k)) for k in match.loaded)
        sources = dict(match.renamed)
        keys = tuple(
            (join_path(path, k), sources.get(k) or checkpoint.keys.get(k, k)) for k in match.loaded
        )
        notes = tuple(
            [(k, f"renamed by load code from {c!r}") for k, c in match.renamed]
            + [(k, f"reshaped by load code {how}") for k, how in match.adapted]
        )
        self.load_lints.extend(Lint.for_load(source, init.checkpoint, path, match))
        self.actions.append(
            Action(
                "load",
                path,
                source,
                params,
                init,
                match.loaded,
                keys,
                module,
                checkpoint,
                hooked="unchecked" if match.unchecked else "checked" if match.hooks else "",
                notes=notes,
            )
        )

    def finish(
        self,
        *,
        init_weights_mode: bool,
        strict: bool | None = None,
        log: bool = True,
        lint: bool = True,
    ) -> InitPlan:
        if self.problems:
            raise InitCfgError(self.problems)
        strict = _STRICT.get() if strict is None else strict
        parameters = tuple((p, tuple(t.shape)) for p, t in self.root.named_parameters())
        lints = (
            find_lints(self, init_weights_mode=init_weights_mode, log=log and not strict)
            if lint
            else []
        )
        if strict and (errors := [lint for lint in lints if lint.level == "warning"]):
            raise InitCfgError(
                [Problem(lint.path, f"{lint.message} (strict: {lint.kind})") for lint in errors]
            )
        return InitPlan(tuple(self.actions), tuple(lints), parameters, self.root)


def _unsupported(init: Initializer) -> str:
    return (
        f"{type(init).__qualname__} is neither a WeightInit nor a PretrainedInit, so it cannot "
        f"be planned; subclass one of them."
    )
