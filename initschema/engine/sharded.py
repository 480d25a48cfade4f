"""What cannot run on sharded (DTensor) parameters, refused before anything is written:
faithful mode, opaque user code not declared shard-safe, loads through load hooks, and
placements whose elements are not one box of the logical tensor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..cfg.builtin import CallInit
from ..cfg.opaque import OpaqueInit
from ..errors import InitUsageError
from ..sharding.placement import is_sharded, local_box
from .plan import InitPlan

__all__ = ["check_sharded", "shard_safe"]

_F = TypeVar("_F", bound=Callable[..., Any])


def shard_safe(init_weights: _F) -> _F:
    """Declare that a user ``init_weights`` gives the right values on sharded (DTensor)
    parameters (it writes each rank's part, drawing from no global RNG), so that seeded
    execution may run it on a sharded model::

        class Block(ins.BaseModule):
            @ins.shard_safe
            def init_weights(self) -> None: ...
    """
    init_weights._initschema_shard_safe = True  # type: ignore[attr-defined]
    return init_weights


def check_sharded(plan: InitPlan, seed: int | None, *, allocated: bool = True) -> None:
    """Refuse, before anything is written, what cannot run on sharded (DTensor) parameters:
    faithful mode, opaque user code not declared shard-safe, loads through hooks (and,
    when ``allocated``, sharded parameters still on the meta device)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return  # no process group: no DTensor either
    sharded = {
        id(tensor): path for path, tensor in plan.module.named_parameters() if is_sharded(tensor)
    }
    if not sharded:
        return
    for path, tensor in plan.module.named_parameters():
        if id(tensor) in sharded:
            local_box(tensor, path)  # placements this engine cannot address are refused now
    example = next(iter(sharded.values()))
    if seed is None:
        raise InitUsageError(
            f"{len(sharded)} parameters are sharded (DTensor), e.g. {example!r}: faithful mode "
            f"(seed=None) replays MMEngine's global-RNG draws over whole tensors, which no "
            f"rank holds. Pass seed=... (plan.execute(seed=s), ins.materialize(..., seed=s)): "
            f"seeded values are the same at every world size."
        )
    for action in plan.actions:
        if action.kind not in ("call", "method", "load") or action.target is None:
            continue
        held = [sharded[id(t)] for t in action.target.parameters() if id(t) in sharded]
        if not held:
            continue
        where = f"'{action.module or '(root)'}' ({type(action.target).__name__})"
        if action.kind == "call" and not getattr(
            getattr(type(action.target), "init_weights", None), "_initschema_shard_safe", False
        ):
            raise InitUsageError(
                f"{where} has a user-defined init_weights, which would run on sharded (DTensor) "
                f"parameters such as {held[0]!r}: what it draws from the global RNG would "
                f"differ by world size. Write its init as init_cfg rules (seeded values are "
                f"shard-invariant), or mark the method @initschema.shard_safe if it writes "
                f"each rank's part correctly."
            )
        if (
            action.kind == "method"
            and isinstance(action.init, CallInit)
            and not action.init.shard_safe
        ):
            raise InitUsageError(
                f"{action.source}: the Call rule would run {action.init.method}() of {where} on "
                f"sharded (DTensor) parameters such as {held[0]!r}; set shard_safe: true in the "
                f"rule if that method writes each rank's part correctly."
            )
        if action.kind == "method" and isinstance(action.init, OpaqueInit):
            raise InitUsageError(
                f"{action.source}: {action.init.origin} would run on {where}, which holds "
                f"sharded (DTensor) parameters such as {held[0]!r}; initializers registered "
                f"in MMEngine need whole tensors. Initialize before sharding."
            )
        if action.kind == "load" and action.hooked:
            raise InitUsageError(
                f"{action.source}: {where} loads the checkpoint through its own load code "
                f"(hooks), which needs whole tensors, but {held[0]!r} is sharded (DTensor). "
                f"Load before sharding, or drop the hooks."
            )
    meta = [path for path, t in plan.module.named_parameters() if id(t) in sharded and t.is_meta]
    if meta and allocated:
        raise InitUsageError(
            f"{len(meta)} sharded (DTensor) parameters are still on the meta device, e.g. "
            f"{meta[0]!r}: allocate them with ins.materialize(model, device, seed=...)."
        )
