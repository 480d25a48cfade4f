"""Lints about tensors: parameters nothing in a plan writes (PyTorch's default, or memory
that may be uninitialized), tensors left on the meta device, and what seeded writes cost
on sharded tensors. :mod:`~initschema.engine.lints` gathers them with the lints about
rules."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..cfg.weight_init import WeightInit
from ..errors import join_path
from ..sharding.placement import is_sharded
from ..sharding.streams import elementwise
from .plan import InitPlan, Lint, listed
from .walk import possibly_uninitialized

__all__ = ["default_lints", "meta_lints", "sharded_lints", "unwritten_meta"]


def default_lints(plan: InitPlan) -> list[Lint]:
    written = {p for a in plan.actions for p in a.params}
    canonical = {id(t): p for p, t in plan.tensors.items()}
    default: list[str] = []
    unknown: list[str] = []
    for owner_path, owner in plan.modules.items():
        for name, tensor in owner._parameters.items():
            if tensor is None:
                continue
            path = canonical.get(id(tensor), join_path(owner_path, name))
            if path in written or path != join_path(owner_path, name):
                continue
            (unknown if possibly_uninitialized(owner) else default).append(path)
    lints = []
    if unknown:
        lints.append(
            Lint(
                "possibly-uninitialized",
                "",
                f"{len(unknown)} parameters are written by nothing in the plan, and their "
                f"modules are not torch built-ins and have no reset_parameters, so they may "
                f"hold uninitialized memory (torch.empty, torch.Tensor(n)): {listed(unknown)}; "
                f"add a rule for them, or check that their constructor fills them.",
            )
        )
    if default:
        lints.append(
            Lint(
                "default-init",
                "",
                f"{len(default)} parameters keep PyTorch's default initialization: "
                f"{listed(default)}.",
                level="info",
            )
        )
    return lints


def unwritten_meta(
    plan: InitPlan,
    tensors: Mapping[str, Tensor],
    *,
    reset_norms: bool = True,
    user_code: bool = False,
) -> list[str]:
    """The paths of the tensors in ``tensors`` (path -> tensor, the model's now) that are on
    the meta device and that nothing sets: no rule, checkpoint or Call rule of the plan
    (with ``user_code``, no user ``init_weights`` that may write them either), and (with
    ``reset_norms``) not a norm layer's running statistics, which
    :func:`initschema.materialize` resets. Empty tensors need no values."""
    kinds = ("write", "load", "method", "call") if user_code else ("write", "load", "method")
    covered = {p for a in plan.actions if a.kind in kinds for p in a.params}
    reset = {
        join_path(path, name)
        for path, module in plan.modules.items()
        if reset_norms and callable(getattr(module, "reset_running_stats", None))
        for name in module._buffers
    }
    return [
        path
        for path, tensor in tensors.items()
        if tensor.is_meta and tensor.numel() and path not in covered and path not in reset
    ]


def meta_lints(plan: InitPlan) -> list[Lint]:
    left = unwritten_meta(plan, plan.tensors, reset_norms=False)
    if not left:
        return []
    refused = unwritten_meta(plan, plan.tensors)
    if not refused:
        return [
            Lint(
                "stays-on-meta",
                "",
                f"{len(left)} norm running statistics are on the meta device and no rule sets "
                f"them: {listed(left)}. ins.materialize() resets them; plan.execute() leaves "
                f"them there.",
                level="info",
            )
        ]
    reset = len(left) - len(refused)
    return [
        Lint(
            "stays-on-meta",
            "",
            f"{len(left)} tensors are on the meta device and nothing in the plan sets them: "
            f"{listed(left)}. plan.execute() leaves them there; ins.materialize() "
            + (f"resets the {reset} norm running statistics among them and " if reset else "")
            + f"refuses {'the rest' if reset else 'them'} (allow_unwritten=True leaves their "
            f"memory uninitialized). Add rules, a Pretrained entry, or a Call rule running "
            f"their module's reset method ({{type: Call, method: reset_parameters, layer: "
            f"...}}).",
        )
    ]


def sharded_lints(plan: InitPlan) -> list[Lint]:
    """What seeded execution costs on the tensors that are sharded (DTensor) now: a tensor
    whose initializer is not elementwise is computed whole on every rank; a shard that is
    not one run of the flattened tensor (``Shard(d>0)``) draws every tile its rows cross."""
    whole, strided = [], []
    final = plan.last_writers()
    for path, index in final.items():
        action = plan.actions[index]
        tensor = plan.tensors.get(path)
        if action.kind != "write" or tensor is None or not is_sharded(tensor):
            continue
        assert isinstance(action.init, WeightInit)
        if not elementwise(action.init):
            whole.append(path)
        elif any(p.is_shard() and p.dim % tensor.ndim for p in getattr(tensor, "placements", ())):
            strided.append(path)
    lints = []
    if whole:
        lints.append(
            Lint(
                "seeded-whole-tensor",
                "",
                f"seeded mode computes {len(whole)} sharded tensors whole on every rank and "
                f"keeps each rank's slice, as their initializer is not elementwise (Orthogonal, "
                f"Dirac, Eye, `splits`, a user initializer without init_values): "
                f"{listed(whole)}.",
                level="info",
            )
        )
    if strided:
        lints.append(
            Lint(
                "seeded-shard-cost",
                "",
                f"{len(strided)} tensors are sharded along a dimension other than 0, so each "
                f"rank draws every tile its rows cross (up to the whole tensor) and keeps its "
                f"elements: {listed(strided)}. Shard(0) (FSDP2's) draws only the shard.",
                level="info",
            )
        )
    return lints
