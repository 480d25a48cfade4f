"""What initialization actually wrote: per-parameter statistics beside what each
initializer's formula predicts, and the findings that only running can tell.

>>> plan = ins.compile_plan(model)
>>> report = plan.execute(seed=0)
>>> stats = measure(plan, report)
>>> for finding in findings(plan, stats): print(finding)

Nothing here writes or runs anything: it reads a plan, its execution report and the
model afterwards. The tolerance of a check comes from the tensor's size: a sample std
of ``n`` values from a normal distribution has standard error ``σ·√(1/(2(n−1)))`` and a
sample mean ``σ/√n`` (uniform and truncated normals have lighter tails, so smaller
errors: the normal's is the conservative bound). A check fails beyond
``SIGMAS`` standard errors plus ``RELATIVE_FLOOR``·σ plus what the dtype can resolve
(``eps·(|μ|+3σ)``): an honest initialization does not flag (6 standard errors: about
one chance in 10⁹ per check), a wrong std, gain or fan mode does. Tensors with fewer
than ``MIN_NUMEL`` values get no statistical check; constants are checked exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from rich.markup import escape
from torch import Tensor, nn

from ..cfg.weight_init import WeightInit
from ..engine.execute import init_cfg_ignored
from ..engine.plan import Action, InitPlan, brief
from ..engine.report import InitReport, Provenance
from ..engine.tables import new_table, render, shape_text
from ..engine.walk import possibly_uninitialized
from ..kernels.builtin import moments_of, runs_user_code
from ._moments import (
    HUGE,
    MIN_NUMEL,
    RELATIVE_FLOOR,
    SIGMAS,
    Finding,
    Moments,
    cast_to,
)

__all__ = [
    "HUGE",
    "MIN_NUMEL",
    "RELATIVE_FLOOR",
    "SIGMAS",
    "Finding",
    "TensorStats",
    "expected_moments",
    "findings",
    "ignored_init_cfgs",
    "measure",
    "render_stats",
]
Writer = Literal["write", "load", "call", "method", "none"]


@dataclass(frozen=True)
class TensorStats:
    """One parameter after initialization: what wrote it, what its formula predicts
    (None: nothing to predict, e.g. a checkpoint or user code), what it holds (over its
    finite values; None when it has none), and its findings."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    writer: Writer
    """The kind of the action that wrote it last (``none``: nothing did)."""
    initializer: str
    family: str
    """What groups it in pictures: the initializer's type (``Kaiming``, …), ``constant``,
    ``Pretrained``, ``user init_weights`` or ``unchanged``."""
    expected_mean: float | None
    expected_std: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    flags: tuple[Finding, ...] = ()
    brief: str = ""
    """What a table shows of ``initializer``: the arguments its rule sets (empty: all)."""

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "writer": self.writer,
            "initializer": self.initializer,
            "family": self.family,
            "expected": {"mean": self.expected_mean, "std": self.expected_std},
            "measured": {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max},
            "flags": [{"kind": f.kind, "message": f.message} for f in self.flags],
        }


def expected_moments(
    init: WeightInit, name: str, shape: Sequence[int]
) -> tuple[float, float] | None:
    """``(mean, std)`` that ``init`` gives tensor ``name`` (``'weight'``/``'bias'``) of
    ``shape``, from the formulas of ``torch.nn.init``; None for a user initializer's own
    ``init_weight``, a fan-based one on fewer than two dimensions, a formula with fans
    written piece by piece (``splits``), Dirac and Eye."""
    if name != "weight":
        return init.bias_value, 0.0
    if runs_user_code(init):
        return None
    return moments_of(init, tuple(shape))


def measure(plan: InitPlan, report: InitReport) -> tuple[TensorStats, ...]:
    """Statistics of every parameter of ``plan.module`` after ``report = plan.execute(...)``,
    in ``named_parameters`` order, each with its findings (:data:`SIGMAS` and friends say
    how far is too far)."""
    writes = _write_actions(plan)
    stats = []
    for row in report.rows:
        tensor = plan.module.get_parameter(row.path)
        stats.append(_measure_one(plan.module, row.path, tensor, row.provenance, writes))
    return tuple(stats)


def findings(plan: InitPlan, stats: Sequence[TensorStats]) -> tuple[Finding, ...]:
    """Every parameter's findings, then every ``init_cfg`` that execution ignored."""
    return (*(flag for row in stats for flag in row.flags), *ignored_init_cfgs(plan))


def ignored_init_cfgs(plan: InitPlan) -> tuple[Finding, ...]:
    """BaseModules whose own ``init_weights`` ran, with an ``init_cfg``, and never called
    ``super().init_weights()`` (their ``is_init`` is still False): known only after running."""
    by_id = {id(module): module for module in plan.modules.values()}
    actions = list(plan.actions)
    for key, subplan in plan.subplans.items():  # the super() calls that did run
        if getattr(by_id.get(key), "is_init", False):
            actions.extend(subplan.actions)
    found: dict[int, Finding] = {}
    for action in actions:
        module = action.target
        if action.kind != "call" or module is None or id(module) in found:
            continue
        if init_cfg_ignored(module):
            init_cfg, name = module.init_cfg, type(module).__name__
            found[id(module)] = Finding(
                action.module,
                "init-cfg-ignored",
                f"{name}.init_weights never called super().init_weights(), so its init_cfg "
                f"{init_cfg!r} was ignored; call super().init_weights() in it, or remove the "
                f"init_cfg.",
            )
    return tuple(found.values())


def _write_actions(plan: InitPlan) -> dict[tuple[str, str], list[Action]]:
    """Every write and Call-rule action of the plan and of its nested ``super()`` plans, by
    (module, source): how a report's provenance finds its initializer."""
    actions = [*plan.actions, *(a for sub in plan.subplans.values() for a in sub.actions)]
    found: dict[tuple[str, str], list[Action]] = {}
    for action in actions:
        if action.kind == "method" or (
            action.kind == "write" and isinstance(action.init, WeightInit)
        ):
            found.setdefault((action.module, action.source), []).append(action)
    return found


def _writer_init(
    path: str, provenance: Provenance, writes: dict[tuple[str, str], list[Action]]
) -> tuple[WeightInit, str] | None:
    """The initializer that wrote the tensor at ``path``, and how (``'weight'``: its
    formula; ``'bias'``: its constant)."""
    name = path.rpartition(".")[2]
    for action in writes.get((provenance.module, provenance.source), ()):
        init = action.init
        if (
            isinstance(init, WeightInit)
            and name in action.tensors
            and init.describe_tensor(action.role(name)) == provenance.initializer
        ):
            return init, action.role(name)
    return None  # a nested plan compiled anew while running: measured only


def _measure_one(
    model: nn.Module,
    path: str,
    tensor: Tensor,
    provenance: Provenance | None,
    writes: dict[tuple[str, str], list[Action]],
) -> TensorStats:
    shape = tuple(tensor.shape)
    expected: tuple[float, float] | None = None
    shown = ""
    owner = model.get_submodule(path.rpartition(".")[0])
    writer: Writer = "none" if provenance is None else cast(Writer, provenance.kind)
    if provenance is None:
        family = "unchanged"
        uninitialized = possibly_uninitialized(owner)
        initializer = "not written" if uninitialized else "PyTorch default (unchanged)"
    else:
        initializer, uninitialized = provenance.initializer, False
        family = {"load": "Pretrained", "call": "user init_weights", "method": "Call"}.get(
            writer, ""
        )
        found = _writer_init(path, provenance, writes) if writer == "write" else None
        calls = writes.get((provenance.module, provenance.source), ()) if writer == "method" else ()
        shown = next((brief(a.init) for a in calls if a.init), "")
        init = found[0] if found else None
        if found is not None:
            expected = expected_moments(found[0], found[1], shape)
            shown = brief(found[0]) if found[1] == "weight" else f"{found[0].bias_value:g} (bias)"
        if writer == "write":
            constant = expected is not None and expected[1] == 0
            family = "constant" if constant else init.type_name if init else "rule"
    moments = Moments.of(tensor)
    flags = [
        flag
        for flag in moments.problems(path, check_denormals=writer != "load")
        if not (uninitialized and flag.kind == "uninitialized")  # said once, below
    ]
    if uninitialized:
        flags.append(
            Finding(
                path,
                "uninitialized",
                f"nothing wrote it, and {type(owner).__name__} is no torch module and has "
                f"no reset_parameters, so it may hold uninitialized memory (torch.empty); "
                f"give it a rule in an init_cfg, or fill it in {type(owner).__name__}.__init__.",
            )
        )
    if expected is not None and moments.count:
        flags.extend(moments.deviations(path, expected, initializer, tensor.dtype))
    return TensorStats(
        path,
        shape,
        str(tensor.dtype).removeprefix("torch."),
        writer,
        initializer,
        family,
        None if expected is None else cast_to(expected[0], tensor.dtype),
        None if expected is None else expected[1],
        moments.mean,
        moments.std,
        moments.min,
        moments.max,
        tuple(flags),
        shown,
    )


def render_stats(
    stats: Sequence[TensorStats], found: Sequence[Finding] = (), lints: Sequence[Any] = ()
) -> str:
    """A table: per parameter, what wrote it, expected and measured std, mean, min, max
    and its flags; then every finding in full (the plan's ``lints`` are counted first)."""
    table = new_table(
        "parameter", "shape", "initializer", numbers=("expected std", "std", "mean", "min", "max")
    )
    table.add_column("flag")
    for row in stats:
        expected = "" if row.expected_std is None else _number(row.expected_std)
        table.add_row(
            row.path,
            shape_text(row.shape),
            escape(row.brief or row.initializer),
            expected,
            *(_number(v) for v in (row.std, row.mean, row.min, row.max)),
            ", ".join(dict.fromkeys(flag.kind for flag in row.flags)),
        )
    flagged = len({f.path for f in found})
    text = f"{_count(len(stats), 'parameter')}, {_count(len(found), 'finding')}"
    text += f" at {_count(flagged, 'path')}" if found else ""
    if warnings := sum(1 for lint in lints if lint.level == "warning"):
        text += f", {_count(warnings, 'lint warning')} (below)"
    text += f"\n{render(table)}"
    if found:
        text += "\nFindings:\n" + "\n".join(f"  {finding}" for finding in found)
    return text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
