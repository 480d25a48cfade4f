"""Lints: what a plan does that is legal but probably not what its author meant.

MMEngine keeps these behaviours silent (a ``layer`` that matches nothing, a
BaseModule inside a plain ``nn.Sequential`` whose ``init_cfg`` never runs);
initschema keeps the behaviour and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..cfg.opaque import OpaqueInit
from ..cfg.weight_init import WeightInit
from ..errors import Problem, did_you_mean, join_path, redact
from ..kernels.builtin import runs_user_code
from .plan import SHOWN, InitPlan, Lint, listed, more
from .tensor_lints import default_lints, meta_lints, sharded_lints

if TYPE_CHECKING:
    from ..checkpoints.pretrained import KeyMatch

__all__ = ["Lint", "deferred_lints", "find_lints"]

logger = logging.getLogger("initschema")


def load_lints(source: str, checkpoint: str, path: str, match: KeyMatch) -> list[Lint]:
    """The lints of one checkpoint load: load code, mismatched, missing, converted and
    unexpected entries."""
    where = f"module '{path}'" if path else "the model"
    found = []
    if match.unchecked:
        found.append(
            Lint(
                "load-hooks-unchecked",
                source,
                f"the load code of {listed(match.hooks)} failed on a dry run over meta "
                f"tensors ({match.unchecked}), so the keys and shapes of {checkpoint!r} are "
                f"checked only as it loads, and the plan assumes it may write every tensor "
                f"of {where}.",
            )
        )
    elif match.hooks:
        changes = [f"{key} from {old!r}" for key, old in match.renamed]
        changes += [f"{key} {how}" for key, how in match.adapted]
        found.append(
            Lint(
                "load-hooks",
                source,
                f"{checkpoint!r} loads through the load code of {listed(match.hooks)}, as "
                f"in MMEngine; "
                + (
                    f"it renamed or reshaped {len(changes)} entries: {listed(changes)}."
                    if changes
                    else "it changed no key or shape."
                ),
                level="info",
            )
        )
    if match.mismatched:
        detail = "; ".join(f"{k}: {why}" for k, why in match.mismatched[:SHOWN])
        found.append(
            Lint(
                "checkpoint-mismatch",
                source,
                f"{len(match.mismatched)} entries of {checkpoint!r} do not fit "
                f"{where} and are skipped ({detail}{more(match.mismatched)}).",
            )
        )
    if match.missing:
        found.append(
            Lint(
                "checkpoint-missing",
                source,
                f"{len(match.missing)} keys of {where} are not in {checkpoint!r} "
                f"and keep their values: {listed(match.missing)}.",
            )
        )
    if match.converted:
        found.append(
            Lint(
                "checkpoint-dtype",
                source,
                f"{len(match.converted)} entries of {checkpoint!r} are converted to the "
                f"model's dtype: "
                f"{listed([f'{k} ({how})' for k, how in match.converted])}.",
                level="info",
            )
        )
    if match.unexpected:
        found.append(
            Lint(
                "checkpoint-unexpected",
                source,
                f"{len(match.unexpected)} keys of {checkpoint!r} match nothing in "
                f"{where}: {listed(match.unexpected)}.",
            )
        )
    return found


def deferred_lints(owner: str, problems: Sequence[Problem]) -> list[Lint]:
    """Problems of an ``init_cfg`` that only a user ``init_weights`` may use, as lints."""
    return [
        Lint(
            "deferred-init-cfg",
            problem.path,
            f"{problem.message} {owner} overrides init_weights, so this is an error only if "
            f"its code calls super().init_weights() with this init_cfg.",
            level="info",
        )
        for problem in problems
    ]


def find_lints(
    plan: InitPlan,
    *,
    init_weights_mode: bool,
    already_initialized: bool = False,
    deferred: Sequence[Lint] = (),
    log: bool = True,
) -> list[Lint]:
    """All lints of a plan, from its public data (plus what only the compiler knew: that the
    root was already initialized, and the problems it deferred), logged on the
    ``initschema`` logger unless ``log`` is False."""
    lints: list[Lint] = []
    if already_initialized:
        lints.append(
            Lint(
                "already-initialized",
                "",
                f"{type(plan.module).__name__} is already initialized (is_init is True); "
                f"init_weights() does nothing.",
            )
        )
    lints += deferred
    lints += _layer_lints(plan)
    if init_weights_mode:
        lints += _unreachable_lints(plan)
    for action in plan.actions:
        if action.kind == "load" and action.match is not None and action.init is not None:
            checkpoint = redact(getattr(action.init, "checkpoint", ""))
            lints += load_lints(action.source, checkpoint, action.module, action.match)
    lints += _shadowed_lints(plan)
    lints += _hidden_builtin_lints(plan)
    lints += sharded_lints(plan)
    lints += default_lints(plan)
    lints += meta_lints(plan)
    for lint in lints if log else ():
        logger.log(logging.WARNING if lint.level == "warning" else logging.INFO, "%s", lint)
    return lints


def _layer_lints(plan: InitPlan) -> list[Lint]:
    lints: list[Lint] = []
    seen: set[tuple[str, str]] = set()
    for rule in plan.rules:
        layer, path = rule.layer, rule.module
        where = f"module '{path}'" if path else "the model"
        for source, pattern in rule.unmatched:
            lints.append(
                Lint(
                    "unmatched-pattern",
                    source,
                    f"{pattern!r} matches nothing under {where}, so it selects nothing "
                    f"(patterns are relative to the module the rule is attached to).",
                )
            )
        if not layer:
            if not (rule.has_override or rule.has_params) and (rule.source, "") not in seen:
                seen.add((rule.source, ""))
                lints.append(
                    Lint(
                        "no-layer",
                        rule.source,
                        "the rule has no `layer`, `params` or `override`, so it writes "
                        "nothing; add layer=[...] naming the classes to initialize.",
                    )
                )
            continue
        classes = rule.classes
        unmatched = [name for name in layer if name not in classes]
        if not unmatched or (rule.source, "") in seen:
            continue
        seen.add((rule.source, ""))
        shown = sorted(c for c in classes if c not in ("Module", "object"))
        names = ", ".join(map(repr, unmatched))
        if len(unmatched) == len(layer):
            lints.append(
                Lint(
                    "unmatched-layer",
                    join_path(rule.source, "layer"),
                    f"{names} {'matches' if len(layer) == 1 else 'match'} no module under "
                    f"{where}, so the rule writes nothing"
                    f"{did_you_mean(unmatched[0], shown) or ';'} classes there: "
                    f"{', '.join(shown)}.",
                )
            )
        else:
            lints.append(
                Lint(
                    "unmatched-layer-name",
                    join_path(rule.source, "layer"),
                    f"{names} of layer match no module under {where} (the others do)"
                    f"{did_you_mean(unmatched[0], shown) or '.'}",
                    level="info",
                )
            )
    return lints


def _under(path: str, roots: list[str]) -> bool:
    return any(root == "" or path == root or path.startswith(root + ".") for root in roots)


def _unreachable_lints(plan: InitPlan) -> list[Lint]:
    reached = {a.module for a in plan.actions if a.kind in ("mark", "call")}
    opaque = [a.module for a in plan.actions if a.kind == "call"]
    lints = []
    modules = plan.modules
    for path, module in modules.items():
        base = getattr(type(module), "_initschema_base_module", False)
        if not base or not getattr(module, "init_cfg", None):
            continue
        if path in reached or getattr(module, "is_init", False) or _under(path, opaque):
            continue
        parent_path = path
        while "." in parent_path:
            parent_path = parent_path.rsplit(".", 1)[0]
            if not hasattr(modules[parent_path], "init_weights"):
                break
        else:
            parent_path = ""
        parent = modules[parent_path]
        lints.append(
            Lint(
                "unreachable-init-cfg",
                join_path(path, "init_cfg"),
                f"the init_cfg of '{path}' ({type(module).__name__}) never runs: "
                f"'{parent_path or '(root)'}' is a plain {type(parent).__name__} without "
                f"init_weights, so init_weights() stops there; use initschema.Sequential / "
                f"ModuleList / ModuleDict (or a BaseModule) for that container.",
            )
        )
    return lints


def _shadowed_lints(plan: InitPlan) -> list[Lint]:
    last = plan.last_writers()
    by_source: dict[str, list[int]] = {}
    for index, action in enumerate(plan.actions):
        if action.kind in ("write", "load"):
            by_source.setdefault(action.source, []).append(index)
    lints = []
    for source, indices in by_source.items():
        params = [p for i in indices for p in plan.actions[i].params]
        winners = {plan.actions[last[p]].source for p in params}
        # A user initializer's init_weight may read what it overwrites (weight *= 2).
        readers = any(
            isinstance(init := plan.actions[last[p]].init, WeightInit) and runs_user_code(init)
            for p in params
        )
        if params and source not in winners and not readers:
            lints.append(
                Lint(
                    "shadowed-rule",
                    source,
                    f"every tensor it writes ({len(params)}) is written again later, "
                    f"by {', '.join(sorted(winners))}; its writes still happen (and use the RNG) "
                    f"but none survives.",
                    level="info",
                )
            )
    return lints


def _hidden_builtin_lints(plan: InitPlan) -> list[Lint]:
    """A rule whose type names a project's own initializer (in MMEngine's registry) that
    hides initschema's built-in of the same name: the project's meaning, as in MMEngine."""
    lints: dict[str, Lint] = {}
    for action in plan.actions:
        init = action.init
        if isinstance(init, OpaqueInit) and init.shadows and action.source not in lints:
            lints[action.source] = Lint(
                "shadowed-builtin",
                action.source,
                f"type {init.type_name!r} is {init.origin}, registered in MMEngine's "
                f"registry, which hides initschema's built-in {init.shadows}: the project's "
                f"class runs, as in MMEngine (rename it to use the built-in).",
                level="info",
            )
    return list(lints.values())
