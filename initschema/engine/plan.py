"""The plan: a frozen, ordered list of actions and its lints, printable before any write.

:mod:`initschema.engine.compiler` makes plans; :mod:`initschema.engine.execute` runs them.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table
from torch import Tensor, nn

from .. import _runtime
from ..cfg.builtin import PretrainedInit
from ..cfg.initializer import Initializer, shown_argument
from ..cfg.weight_init import WeightInit
from ..errors import redact
from ..sharding.streams import STREAM, elementwise
from .tables import new_table, render, render_html, shape_text
from .walk import possibly_uninitialized

if TYPE_CHECKING:
    from ..checkpoints.pretrained import Checkpoint, KeyMatch
    from .report import InitReport

__all__ = [
    "Action",
    "InitPlan",
    "Lint",
    "RuleUse",
    "SubPlan",
    "Writer",
    "render_plan",
    "render_plan_html",
]

ActionKind = Literal["write", "load", "call", "method", "guard", "mark"]

SHOWN = 5
"""How many names a lint lists before it says how many more there are."""


def more(items: Sequence[Any]) -> str:
    """``', and 3 more'`` past the names a lint lists (empty when it lists them all)."""
    return f", and {len(items) - SHOWN} more" if len(items) > SHOWN else ""


def listed(items: Sequence[str]) -> str:
    """The first names of ``items``, comma-separated, and how many more there are."""
    return ", ".join(items[:SHOWN]) + more(items)


@dataclass(frozen=True)
class Lint:
    """One finding about a plan; ``level`` is ``'warning'`` or ``'info'``."""

    kind: str
    path: str
    """The config path of the rule concerned, or the module path."""
    message: str
    level: Literal["warning", "info"] = "warning"

    def __str__(self) -> str:
        return (
            f"[{self.kind}] {self.path}: {self.message}"
            if self.path
            else f"[{self.kind}] {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "level": self.level, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class RuleUse:
    """A weight rule applied to the subtree of one module."""

    source: str
    """The rule's config path."""
    module: str
    """The path of the module the rule is attached to."""
    layer: tuple[str, ...] | None
    has_override: bool
    classes: frozenset[str] = frozenset()
    """The class names ``layer`` can match under that module: each class's own name and
    the names of its direct bases (of every class of its MRO, with ``match: mro``)."""
    has_params: bool = False
    unmatched: tuple[tuple[str, str], ...] = ()
    """(config path, pattern) of each ``params`` or override-name pattern matching nothing."""


@dataclass(frozen=True)
class SubPlan:
    """The part of a plan that ``super().init_weights()`` of one module runs, compiled with
    the whole plan; valid while the subtree is as it was compiled: the same children
    everywhere in it, and the same ``init_cfg`` in each BaseModule it initializes."""

    actions: tuple[Action, ...]
    init_cfgs: tuple[tuple[nn.Module, Any], ...]
    """(BaseModule, a copy of its ``init_cfg`` when it was compiled)."""
    children: tuple[tuple[nn.Module, tuple[int, ...]], ...]
    """(module, ``id`` of each child) for every module of the subtree."""

    def still_fits(self) -> bool:
        """Whether the subtree is still as compiled (user code may change it first)."""
        return all(
            tuple(map(id, module._modules.values())) == children
            for module, children in self.children
        ) and all(module.init_cfg == init_cfg for module, init_cfg in self.init_cfgs)


@dataclass(frozen=True)
class Action:
    """One step of a plan.

    ``write``: an initializer writes ``tensors`` (``weight``/``bias``) of one module.
    ``load``: a Pretrained rule copies checkpoint entries into a module's subtree.
    ``call``: a user-defined ``init_weights`` runs (opaque; ``params`` is what it *may* write).
    ``method``: a Call rule runs a method of one module (opaque, like ``call``).
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
    match: KeyMatch | None = field(default=None, repr=False, compare=False)
    """For ``load``: how the checkpoint's keys met the module's (what the load lints read)."""
    skip: int = 0
    """For ``guard``: the index of the first action after the guarded child."""
    hooked: Literal["", "checked", "unchecked"] = ""
    """For ``load`` through the model's own load code (hooks): ``checked`` when a dry run
    told what it writes, ``unchecked`` when that failed (then ``params`` is what it may
    write)."""
    notes: tuple[tuple[str, str], ...] = ()
    """For ``load``: (model key, what the load code did to its entry)."""
    formula: bool = False
    """For ``write``: every tensor gets the initializer's formula (tensors a rule's
    ``params`` selected), not only ``weight`` (``bias`` gets the rule's constant)."""

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

    def role(self, name: str) -> str:
        """How a ``write`` treats its tensor ``name``: ``'weight'`` (the formula) or
        ``'bias'`` (the constant)."""
        return "weight" if self.formula or name == "weight" else "bias"

    def describe_param(self, path: str) -> str:
        """What this action writes into the tensor at ``path`` (one of ``params``)."""
        return self.describe_at(self.params.index(path))

    def describe_at(self, index: int) -> str:
        """What this action writes into its tensor ``params[index]``."""
        if self.kind == "write" and isinstance(self.init, WeightInit):
            return self.init.describe_tensor(self.role(self.tensors[index]))
        if self.kind == "load" and isinstance(self.init, PretrainedInit):
            text = f"load {self.keys[index][1]!r} from {redact(self.init.checkpoint)}"
            notes = self._notes_by_key.get(self.tensors[index], ())
            return text + "".join(f" ({note})" for note in notes)
        return self.describe()

    def brief(self) -> str:
        """The action's initializer in brief: its type and the arguments the rule sets away
        from their defaults (``Call(method='reset_parameters')``); else :meth:`describe`."""
        return brief(self.init) if self.init is not None else self.describe()

    def brief_param(self, path: str) -> str:
        """As :meth:`describe_param`, with only the arguments the rule sets away from their
        defaults (``Kaiming(mode='fan_in')``, ``0 (bias)``): what a table cell shows."""
        return self.brief_at(self.params.index(path))

    def brief_at(self, index: int) -> str:
        """As :meth:`describe_at`, in brief (:meth:`brief_param`)."""
        if self.kind == "write" and isinstance(self.init, WeightInit):
            if self.role(self.tensors[index]) == "weight":
                return brief(self.init)
            given = self.init.bias_prob
            why = "bias" if given is None else f"bias_prob={shown_argument(given)}"
            return f"{self.init.bias_value:g} ({why})"
        return self.describe_at(index)

    @cached_property
    def _notes_by_key(self) -> dict[str, list[str]]:
        by_key: dict[str, list[str]] = {}
        for key, note in self.notes:
            by_key.setdefault(key, []).append(note)
        return by_key

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "module": self.module, "source": self.source}
        if self.init is not None:
            data["init"] = self.init.to_cfg()
            if isinstance(self.init, PretrainedInit):
                data["init"]["checkpoint"] = redact(self.init.checkpoint)
        if self.params:
            data["params"] = list(self.params)
        if self.keys:
            data["keys"] = {model: ckpt for model, ckpt in self.keys}
        if self.kind == "write" and isinstance(self.init, WeightInit):
            # "init" is the rule as configured (what it sets); "arguments" every argument
            # it works with, defaults included, as describe() names them.
            dumped = self.init.model_dump(mode="json")
            data["arguments"] = {name: dumped[name] for name in self.init.arguments()}
            data["seeded"] = "elementwise" if elementwise(self.init) else "whole tensor"
        return data


@dataclass(frozen=True)
class Writer:
    """The action that last writes one tensor: ``action.params[position]`` is the tensor."""

    action: Action
    index: int
    """The action's index in the plan."""
    position: int

    def describe(self) -> str:
        """What the action writes into this tensor (:meth:`Action.describe_at`)."""
        return self.action.describe_at(self.position)

    def brief(self) -> str:
        """The same in brief (:meth:`Action.brief_at`)."""
        return self.action.brief_at(self.position)


@dataclass(frozen=True)
class InitPlan:
    """A frozen, ordered list of actions plus lints; ``execute`` runs it on ``module``."""

    actions: tuple[Action, ...]
    lints: tuple[Lint, ...]
    parameters: tuple[tuple[str, tuple[int, ...]], ...]
    """Every parameter of the model: (path, shape), in ``named_parameters`` order."""
    module: nn.Module = field(repr=False, compare=False)
    rules: tuple[RuleUse, ...] = ()
    """Every weight rule the plan applies, and where (what the layer lints read)."""
    modules: Mapping[str, nn.Module] = field(default_factory=dict, repr=False, compare=False)
    """Every module of the model under its first path, in ``named_modules`` order."""
    tensors: Mapping[str, Tensor] = field(default_factory=dict, repr=False, compare=False)
    """Every parameter, then every buffer, under its canonical (first) path."""
    subplans: Mapping[int, SubPlan] = field(default_factory=dict, repr=False, compare=False)
    """What BaseModule's ``init_weights`` of each module with its own ``init_weights``
    compiled to (by ``id`` of the module): run when that code calls ``super()``."""
    stream_keys: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Seeded mode: the stream key of each tensor reachable under several names (the
    smallest of them); every other tensor's key is its path without wrapper names."""
    stream: str = STREAM
    """The version of the seeded streams this plan's ``execute(seed=...)`` draws from."""

    def execute(self, seed: int | None = None, *, device: str = "cpu") -> InitReport:
        """Write the weights and return the report (see :func:`initschema.engine.execute.execute`).

        Tensors on the meta device are materialized on ``device`` as they are written,
        straight from the checkpoint for Pretrained entries."""
        report: InitReport = _runtime.engine().execute(self, seed, device)
        return report

    def last_writers(self) -> dict[str, int]:
        """For each tensor the plan writes, the index of the last action writing it."""
        return {path: writer.index for path, writer in self.writers().items()}

    def writers(self) -> Mapping[str, Writer]:
        """Who last writes each tensor (by a rule or a checkpoint), in one pass over the
        plan, computed once: the action, its index and the tensor's place in it."""
        return self._writers

    @cached_property
    def _writers(self) -> dict[str, Writer]:
        found: dict[str, Writer] = {}
        for index, action in enumerate(self.actions):
            if action.kind in ("write", "load"):
                for position, path in enumerate(action.params):
                    if path not in found or found[path].index != index:
                        found[path] = Writer(action, index, position)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [a.to_dict() for a in self.actions if a.kind not in ("mark", "guard")],
            "lints": [lint.to_dict() for lint in self.lints],
            "parameters": [{"path": p, "shape": list(s)} for p, s in self.parameters],
            "stream": self.stream,
        }

    def render(self, lints: Sequence[Lint] | None = None) -> str:
        """The plan as text: one row per parameter with what writes it last, the buffers it
        sets, then ``lints`` (default: the plan's own; ``()`` for none). ``str(plan)``."""
        return render_plan(self, lints)

    def __str__(self) -> str:
        return render_plan(self)

    def _repr_html_(self) -> str:
        """The plan in a notebook: the same table, as HTML."""
        return render_plan_html(self)


def brief(init: Initializer) -> str:
    """``Kaiming(mode='fan_in')``: the type and the formula's arguments that differ from
    their defaults (``describe()`` names every one); a depth-scaled std with its formula."""
    scaled = getattr(init, "_scaled", None)
    changed = init.model_dump(exclude_defaults=True)
    shown = []
    for name, value in init.arguments().items():
        if name == "std" and scaled is not None:
            shown.append(f"std={scaled[0]} = {value:.6g}")  # wraps in a narrow table
        elif name in changed and name not in ("bias", "bias_prob"):
            shown.append(f"{name}={shown_argument(value)}")
    return f"{init.type_name}({', '.join(shown)})"


def render_plan(plan: InitPlan, lints: Sequence[Lint] | None = None) -> str:
    """One row per parameter with the action that will write it last, then the lints
    (``lints``: these instead of the plan's)."""
    title, table = _plan_table(plan)
    text = f"{title}\n{render(table)}"
    if buffers := _buffers_set(plan):
        text += "\nBuffers set:\n" + "\n".join(f"  {line}" for line in buffers)
    shown = plan.lints if lints is None else lints
    if shown:
        text += "\nLints:\n" + "\n".join(f"  {lint}" for lint in shown)
    return text


def render_plan_html(plan: InitPlan) -> str:
    """The same, as HTML for a notebook."""
    title, table = _plan_table(plan)
    lints = "".join(f"<li>{html.escape(str(lint))}</li>" for lint in plan.lints)
    return f"<p>{html.escape(title)}</p>{render_html(table)}" + (
        f"<p>Lints:</p><ul>{lints}</ul>" if lints else ""
    )


def _buffers_set(plan: InitPlan) -> list[str]:
    """``path: what sets it [rule]`` for each buffer a rule, checkpoint or Call sets last."""
    parameters = {path for path, _ in plan.parameters}
    found: dict[str, str] = {}
    for action in plan.actions:
        if action.kind in ("write", "load", "method"):
            for path in action.params:
                if path not in parameters:
                    what = action.brief_param(path)
                    if action.kind == "method" and action.init is not None:
                        what = f"{brief(action.init)} (may write)"
                    found[path] = f"{path}: {what} [{action.source}]"
    return list(found.values())


def _plan_table(plan: InitPlan) -> tuple[str, Table]:
    writers: dict[str, list[int]] = {}
    last: dict[str, int] = {}  # each tensor's place in the action writing it last
    for index, action in enumerate(plan.actions):
        if action.kind not in ("mark", "guard"):
            for position, path in enumerate(action.params):
                indices = writers.setdefault(path, [])
                if not indices or indices[-1] != index:
                    last[path] = position
                indices.append(index)
    model = type(plan.module).__name__
    steps = sum(1 for a in plan.actions if a.kind not in ("mark", "guard"))
    title = (
        f"InitPlan for {model}: {steps} action{'s' * (steps != 1)} over "
        f"{len(plan.parameters)} parameter{'s' * (len(plan.parameters) != 1)}"
    )
    rewritten = int(any(len(indices) > 1 for indices in writers.values()))
    columns = ("parameter", "shape", "initializer", "rule", "earlier writes")[: 4 + rewritten]
    table = new_table(*columns)
    for path, shape in plan.parameters:
        indices = writers.get(path, [])
        if not indices:
            unwritten = _unwritten(plan.module, path)
            table.add_row(path, shape_text(shape), unwritten, "", *[""][:rewritten])
            continue
        action = plan.actions[indices[-1]]
        what = action.brief_at(last[path])
        if action.kind == "call":
            what = "user-defined init_weights (may write)"
        elif action.kind == "method" and action.init is not None:
            what = f"{brief(action.init)} (may write)"
        counts = Counter(plan.actions[i].source for i in indices[:-1])
        earlier = ", ".join(f"{rule} ×{n}" if n > 1 else rule for rule, n in counts.items())
        table.add_row(path, shape_text(shape), what, action.source, *[earlier][:rewritten])
    return title, table


def _unwritten(model: nn.Module, path: str) -> str:
    owner = model.get_submodule(path.rpartition(".")[0])
    if possibly_uninitialized(owner):
        return "not written: possibly uninitialized"
    return "PyTorch default (unchanged)"
