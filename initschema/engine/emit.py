"""Emitting one rule's actions: the modules and tensors it selects (``layer``, with
``match``; ``params`` patterns; override names, paths and patterns), each write checked
(:mod:`~initschema.engine.checks`), and the actions themselves. The
:class:`Emitter` holds what one compile gathers (actions, problems, the rules' uses);
the compiler decides in which order rules are emitted."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from ..cfg.builtin import CallInit, PretrainedInit
from ..cfg.init_cfg import Rule
from ..cfg.initializer import Initializer
from ..cfg.opaque import OpaqueInit
from ..cfg.weight_init import WeightInit
from ..checkpoints.pretrained import match_keys, open_checkpoint, policy_problems
from ..errors import InitCfgError, Problem, join_path
from .checks import call_problem, signature, tensor_problems, write_problems
from .plan import Action, RuleUse
from .select import select_modules, select_tensors
from .walk import Tree

__all__ = ["Emitter"]


class Emitter:
    """What one compile gathers as it emits rules, and how each rule adds to it."""

    def __init__(self, tree: Tree, where: str = "") -> None:
        self.tree = tree
        self.where = where
        """The root's own path in the model, when it is a nested part (messages only)."""
        self.actions: list[Action] = []
        self.problems: list[Problem] = []
        self.rule_uses: list[RuleUse] = []
        self.speculative = 0
        """How deep compilation is inside the ``super().init_weights()`` of a user
        ``init_weights``, which may never run: its checkpoints are not opened then."""
        self.unopened = 0
        """Pretrained rules a speculative compile left unchecked (then it is no sub-plan)."""
        self.tensor_paths = tree.tensor_paths
        self.matches: dict[tuple[int, type], bool] = {}
        self.selections: dict[int, Initializer] = {}
        self.checked: set[tuple[Any, ...]] = set()
        """Writes known to have no problem, by (rule, class, dtypes, shapes)."""

    def inherited(self, init: Initializer) -> Initializer:
        """What an override with only a name applies: its rule's arguments (made once)."""
        if id(init) not in self.selections:
            self.selections[id(init)] = init.without_selection()
        return self.selections[id(init)]

    def full_path(self, path: str) -> str:
        return join_path(self.where, path) if path else self.where

    def canonical(self, tensor: Tensor, alias: str) -> str:
        return self.tensor_paths.get(id(tensor), alias)

    def emit_rule(self, module: nn.Module, path: str, rule: Rule) -> None:
        init = rule.init
        unmatched: list[tuple[str, str]] = []
        use: RuleUse | None = None
        if isinstance(init, PretrainedInit):
            self.emit_load(module, path, init, rule.source)
        elif isinstance(init, WeightInit):
            # Within one rule: the modules `layer` matches, then the tensors `params`
            # selects, then the overrides (each writes over what came before).
            types: set[type] = set()
            if init.layer:
                for sub_path, sub in self.tree.subtree(module, path):
                    cls = type(sub)
                    types.add(cls)
                    key = (id(init), cls)
                    if key not in self.matches:
                        self.matches[key] = init.matches(sub)
                    if self.matches[key]:
                        self.emit_write(sub, sub_path, init, rule.source)
            if init.params:
                unmatched += self.emit_params(module, path, init, rule.source)
            classes = frozenset(n for c in types for n in _class_names(c, init.match))
            use = RuleUse(rule.source, path, init.layer, bool(init.override), classes,
                          bool(init.params))  # fmt: skip
        elif isinstance(init, CallInit):
            types = set()
            for sub_path, sub in self.tree.subtree(module, path):
                types.add(type(sub))
                if init.matches(sub):
                    self.emit_method(sub, sub_path, init, rule.source)
            classes = frozenset(n for c in types for n in _class_names(c, "bases"))
            use = RuleUse(rule.source, path, init.layer, bool(init.override), classes)
        elif isinstance(init, OpaqueInit):
            self.emit_opaque(module, path, init, rule.source)
        else:
            self.problems.append(Problem(rule.source, _unsupported(init)))
            return
        for override, source in zip(init.override, rule.override_sources, strict=True):
            targets = select_modules(self.tree, module, path, override.name, self.full_path(path))
            if isinstance(targets, str):
                self.problems.append(Problem(join_path(source, "name"), targets))
                continue
            if not targets:
                unmatched.append((join_path(source, "name"), override.name))
            sub_init = override.init or self.inherited(init)
            for target_path, target in targets:
                self.emit_override(target, target_path, sub_init, source)
        if use is not None:
            self.rule_uses.append(replace(use, unmatched=tuple(unmatched)))

    def emit_override(
        self, target: nn.Module, target_path: str, init: Initializer, source: str
    ) -> None:
        if isinstance(init, PretrainedInit):
            self.emit_load(target, target_path, init, source)
        elif isinstance(init, WeightInit):
            for sub_path, sub in self.tree.subtree(target, target_path):
                self.emit_write(sub, sub_path, init, source)
        elif isinstance(init, CallInit):
            self.emit_method(target, target_path, init, source)
        elif isinstance(init, OpaqueInit):
            self.emit_opaque(target, target_path, init.as_override(), source)
        else:
            self.problems.append(Problem(source, _unsupported(init)))

    def emit_params(
        self, module: nn.Module, path: str, init: WeightInit, source: str
    ) -> list[tuple[str, str]]:
        """Writes of the tensors a rule's ``params`` selects (its formula for each), one
        action per owning module; the patterns that matched nothing."""
        assert init.params is not None
        groups, unmatched = select_tensors(self.tree, module, path, init.params)
        for owner_path, owner, names in groups:
            resolved = self.resolved(init, owner_path, source)
            if resolved is None:
                continue
            problems = tensor_problems(resolved, owner, names)
            for message in problems:
                full = self.full_path(owner_path)
                self.problems.append(Problem(source, f"at module '{full or '(root)'}': {message}."))
            if problems:
                continue
            params = tuple(
                self.canonical(getattr(owner, name), join_path(owner_path, name)) for name in names
            )
            self.actions.append(
                Action(
                    "write",
                    owner_path,
                    source,
                    params,
                    resolved,
                    tuple(names),
                    target=owner,
                    formula=True,
                )
            )
        return [(join_path(source, "params"), pattern) for pattern in unmatched]

    def resolved(self, init: WeightInit, path: str, source: str) -> WeightInit | None:
        """``init`` as it applies to the module at ``path`` (depth scaling), or None with a
        problem recorded."""
        try:
            return init.for_module(self.full_path(path))
        except ValueError as error:
            full = self.full_path(path)
            self.problems.append(Problem(source, f"at module '{full or '(root)'}': {error}"))
            return None

    def emit_method(self, module: nn.Module, path: str, init: CallInit, source: str) -> None:
        """A Call rule on one module: opaque, it may write any tensor of the subtree.
        Checked here: that the method exists, is no ``nn.Module`` method, and takes no
        argument (a Call that fails when it runs leaves earlier writes behind)."""
        if problem := call_problem(module, init.method):
            full = self.full_path(path)
            self.problems.append(
                Problem(
                    join_path(source, "method"),
                    f"module '{full or '(root)'}' ({type(module).__name__}) {problem}",
                )
            )
            return
        params = self.subtree_tensors(module, path, buffers=True)
        self.actions.append(Action("method", path, source, params, init=init, target=module))

    def emit_opaque(self, module: nn.Module, path: str, init: OpaqueInit, source: str) -> None:
        """Code of an initializer's own, run on one module: it may write any tensor below."""
        params = self.subtree_tensors(module, path, buffers=True)
        self.actions.append(Action("method", path, source, params, init=init, target=module))

    def subtree_tensors(self, module: nn.Module, path: str, *, buffers: bool) -> tuple[str, ...]:
        """The canonical paths of the parameters (and buffers) of the subtree at ``path``,
        each tensor once: what opaque code run on ``module`` may write."""
        found: dict[int, str] = {}
        for sub_path, sub in self.tree.subtree(module, path):
            for table in (sub._parameters, sub._buffers) if buffers else (sub._parameters,):
                for name, tensor in table.items():
                    if tensor is not None and id(tensor) not in found:
                        found[id(tensor)] = self.canonical(tensor, join_path(sub_path, name))
        return tuple(found.values())

    def emit_write(self, module: nn.Module, path: str, init: WeightInit, source: str) -> None:
        if type(init).for_module is not WeightInit.for_module:  # it may depend on the path
            resolved = self.resolved(init, path, source)
            if resolved is None:
                return
            init = resolved
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        key = (init, type(module), *signature(weight), *signature(bias))
        if key not in self.checked:
            problems = write_problems(init, module)
            for message in problems:
                full = self.full_path(path)
                self.problems.append(Problem(source, f"at module '{full or '(root)'}': {message}."))
            if not problems:
                self.checked.add(key)
        names: tuple[str, ...]
        params: tuple[str, ...]
        paths = self.tensor_paths
        if isinstance(weight, Tensor):
            if isinstance(bias, Tensor):
                names = ("weight", "bias")
                params = (
                    paths.get(id(weight)) or join_path(path, "weight"),
                    paths.get(id(bias)) or join_path(path, "bias"),
                )
            else:
                names, params = ("weight",), (paths.get(id(weight)) or join_path(path, "weight"),)
        elif isinstance(bias, Tensor):
            names, params = ("bias",), (paths.get(id(bias)) or join_path(path, "bias"),)
        else:
            return
        self.actions.append(Action("write", path, source, params, init, names, target=module))

    def emit_load(self, module: nn.Module, path: str, init: PretrainedInit, source: str) -> None:
        if self.speculative:
            self.unopened += 1
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
                match,
                hooked="unchecked" if match.unchecked else "checked" if match.hooks else "",
                notes=notes,
            )
        )


@functools.cache
def _class_names(cls: type, match: str) -> tuple[str, ...]:
    """The class names a ``layer`` can name to match ``cls``."""
    classes = cls.__mro__ if match == "mro" else (cls, *cls.__bases__)
    return tuple(c.__name__ for c in classes)


def _unsupported(init: Initializer) -> str:
    return (
        f"{type(init).__qualname__} is neither a WeightInit, a PretrainedInit, a CallInit nor "
        f"an OpaqueInit, so it cannot be planned; subclass one of them."
    )
