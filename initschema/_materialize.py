"""Models built without memory: allocate and initialize them in one step.

``materialize`` turns a model built on the meta device (plain, or sharded with FSDP2 /
``distribute_tensor``) into one on a real device with its plan's values: faithful
(MMEngine's bits) or seeded (the same values at any world size, each rank drawing only
its own elements). ``params_on_meta`` builds a model whose constructor cannot run on
the meta device (``.item()`` on a buffer, as timm's and mmdet's Swin do).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .engine.compiler import compile_plan, is_base_module
from .engine.plan import InitPlan
from .engine.report import InitReport
from .engine.sharded import check_sharded
from .engine.tensor_lints import unwritten_meta
from .errors import InitUsageError
from .sharding.placement import is_sharded, local_box

__all__ = ["materialize", "params_on_meta", "unwritten"]

_SHOWN = 8


def materialize(
    model: nn.Module,
    device: torch.device | str,
    *,
    seed: int | None = None,
    plan: InitPlan | None = None,
    allow_unwritten: bool = False,
) -> InitReport:
    """Allocate every meta tensor of ``model`` on ``device`` (other tensors move there) and
    initialize it as ``plan`` says; return the report.

    ``seed=None`` runs the plan faithfully (the global RNG, MMEngine's order and bits);
    an int runs it seeded: each value depends only on (seed, the tensor's canonical
    path, the element's index in the unsharded tensor), so a sharded model (DTensor
    parameters, e.g. after FSDP2's ``fully_shard``) gets on each rank exactly its slice
    of the single-process result, computing only its own elements. ``plan`` defaults
    to ``compile_plan(model)`` (a BaseModule); a plain module needs one:
    ``compile_plan(model, init_cfg)``, compiled before or after sharding. Norm layers'
    running statistics are reset (``reset_running_stats``); other buffers need a rule
    (a Call rule runs a module's own method, e.g. a rotary embedding's). A meta tensor
    nothing sets is an error naming it, unless ``allow_unwritten`` (its memory is then
    uninitialized). Anything refused is refused before any allocation, except one case
    known only after running: a user ``init_weights`` counted on to set a tensor (it may
    write its module's tensors) that left it.
    """
    if plan is None:
        if not is_base_module(model):
            raise InitUsageError(
                f"materialize(model) without plan= plans model.init_weights(), which needs "
                f"an initschema.BaseModule, got {type(model).__name__}; compile the rules "
                f"first and pass them: materialize(model, device, "
                f"plan=initschema.compile_plan(model, init_cfg))."
            )
        plan = compile_plan(model)
    elif plan.module is not model:
        raise InitUsageError(
            f"materialize: the plan was compiled for a {type(plan.module).__name__}, not for "
            f"this {type(model).__name__}; compile it on the model you materialize."
        )
    params: dict[str, Tensor] = dict(model.named_parameters())
    tensors = {**params, **dict(model.named_buffers())}
    left = unwritten_meta(plan, tensors, user_code=True)
    if left and not allow_unwritten:
        shown = ", ".join(left[:_SHOWN]) + (
            f", and {len(left) - _SHOWN} more" if left[_SHOWN:] else ""
        )
        raise InitUsageError(
            f"materialize: {len(left)} tensors on the meta device would be left with "
            f"uninitialized memory, as nothing in the plan sets them: {shown}. Add rules for "
            f"them (a Call rule runs a module's own method, e.g. {{type: Call, method: "
            f"reset_parameters, layer: ...}}), or pass allow_unwritten=True."
        )
    check_sharded(plan, seed, allocated=False)  # execute checks again once allocated
    norms = [
        module
        for module in model.modules()
        if callable(getattr(module, "reset_running_stats", None))
        and any(b is not None and b.is_meta for b in module._buffers.values())
    ]
    on_meta = {  # those this process holds elements of
        path
        for path, tensor in params.items()
        if tensor.is_meta and local_box(tensor, path)[0].numel()
    }
    by_rules = {p for a in plan.actions if a.kind in ("write", "load") for p in a.params}
    with torch.no_grad():
        _allocate(model, torch.device(device), _loaded_last(tensors, plan))
        for module in norms:
            getattr(module, "reset_running_stats")()  # noqa: B009
        for path, tensor in model.named_parameters():
            if path in on_meta and path not in by_rules and tensor.is_floating_point():
                # Only user code may set it: NaN first, so that its write always shows
                # (fresh memory may hold the very values it writes) and a miss is no garbage.
                local_box(tensor, path)[0].fill_(math.nan)
    report = plan.execute(seed, device=str(torch.device(device)))
    if not allow_unwritten and (left := [p for p in report.unchanged if p in on_meta]):
        more = f", and {len(left) - _SHOWN} more" if left[_SHOWN:] else ""
        raise InitUsageError(
            f"materialize: user code the plan counted on (a user init_weights or a Call rule "
            f"that may write them) did not write {len(left)} parameters, whose memory is "
            f"therefore "
            f"uninitialized: {', '.join(left[:_SHOWN])}{more}. Add rules for them, or pass "
            f"allow_unwritten=True."
        )
    return report


def _loaded_last(tensors: dict[str, Tensor], plan: InitPlan) -> set[int]:
    """The tensors (by ``id``; ``tensors`` maps the model's paths to them) a checkpoint entry
    sets last, entry by entry: left on the meta device, they become the entry itself (no
    allocation and copy)."""
    return {
        id(tensors[path])
        for path, index in plan.last_writers().items()
        if plan.actions[index].kind == "load"
        and not plan.actions[index].hooked
        and path in tensors
        and tensors[path].is_meta
        and not is_sharded(tensors[path])
    }


def _allocate(model: nn.Module, device: torch.device, keep: set[int]) -> None:
    """``to_empty`` for meta tensors (but those in ``keep``) and ``to`` for the others,
    keeping tied tensors tied (one new tensor per old one, in every module holding it;
    ``to_empty`` unties them)."""
    done: dict[int, Tensor] = {}
    for module in model.modules():
        tables: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
        for table in tables:
            for name, tensor in table.items():
                if tensor is None or id(tensor) in keep:
                    continue
                if id(tensor) not in done:
                    new = (
                        torch.empty_like(tensor, device=device)
                        if tensor.is_meta
                        else tensor.detach().to(device)
                    )
                    if isinstance(tensor, nn.Parameter):
                        new = nn.Parameter(new, requires_grad=tensor.requires_grad)
                    done[id(tensor)] = new
                table[name] = done[id(tensor)]


def unwritten(model: nn.Module, plan: InitPlan, *, user_code: bool = False) -> list[str]:
    """The meta tensors of ``model`` that nothing in ``plan`` is known to set: no rule,
    checkpoint or Call rule (norm layers' running statistics excepted: :func:`materialize`
    resets them). With ``user_code``, a user ``init_weights`` that may write a tensor
    counts as setting it: what :func:`materialize` refuses up front (the tensors that code
    then leaves are an error after it ran)."""
    tensors: dict[str, Tensor] = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    return unwritten_meta(plan, tensors, user_code=user_code)


@contextmanager
def params_on_meta() -> Iterator[None]:
    """Inside the block, every parameter a module registers is put on the meta device;
    buffers and plain tensors stay real. For constructors that read their own tensors
    (``[x.item() for x in torch.linspace(...)]``), which fail under
    ``torch.device('meta')``. Each parameter is created on its device first, then
    replaced (one layer's worth of memory at a time). Not thread-safe: it patches
    ``nn.Module.register_parameter`` for the duration.
    """
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: Any) -> None:
        register(module, name, param)
        value = module._parameters.get(name)
        if value is not None and not value.is_meta:
            module._parameters[name] = type(value)(
                value.detach().to("meta"), requires_grad=value.requires_grad
            )

    nn.Module.register_parameter = on_meta  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = register  # type: ignore[method-assign]
