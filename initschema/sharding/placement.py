"""Where a tensor's elements sit: the box a DTensor shard holds in its logical tensor, and
the canonical path of a tensor (wrapper names dropped), which seeded streams are keyed by.

A shard's box follows ``torch.chunk``'s rules placement by placement (``Shard(d)`` on each
mesh dimension in order, ``Replicate`` keeps the extent); ``_StridedShard`` (FSDP2 over a
tensor-parallel mesh) interleaves rows and is refused, as is ``Partial``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InitUsageError

__all__ = ["PLAIN", "Box", "canonical_path", "dtensor_type", "is_sharded", "local_box"]

Box = tuple[tuple[int, int], ...]
"""A rectangle of a logical tensor: (offset, length) per dimension."""

_WRAPPERS = ("_orig_mod", "_checkpoint_wrapped_module", "_fsdp_wrapped_module")
"""Attribute names that wrappers (torch.compile, activation checkpointing, FSDP1) insert."""


def canonical_path(path: str) -> str:
    """``path`` without the names wrappers insert: ``_orig_mod`` (``torch.compile``),
    activation-checkpoint and FSDP1 wrappers anywhere, and a leading ``module``
    (DistributedDataParallel, DataParallel)."""
    if "_orig_mod" not in path and "_wrapped_module" not in path and path[:7] != "module.":
        return path
    parts = [part for part in path.split(".") if part not in _WRAPPERS]
    if len(parts) > 1 and parts[0] == "module":
        parts = parts[1:]
    return ".".join(parts)


@functools.cache
def dtensor_type() -> type | None:
    """``torch.distributed.tensor.DTensor``, or None where torch has no public one."""
    if not torch.distributed.is_available():
        return None
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch < 2.5: a private module, not supported
        return None
    return DTensor


PLAIN = (Tensor, nn.Parameter)
"""Tensor types that are never sharded (checked by exact type: fast)."""
_SHARDING_TORCH = torch.torch_version.TorchVersion(torch.__version__) >= "2.6"
"""Public ``torch.distributed.tensor`` and ``fully_shard`` (torch >= 2.6)."""


def is_sharded(tensor: Any) -> bool:
    """Whether ``tensor`` is a distributed tensor (a DTensor, or one torch keeps private)."""
    if type(tensor) in PLAIN:
        return False
    cls = dtensor_type()
    if cls is not None and isinstance(tensor, cls):
        return True
    return type(tensor).__name__ == "DTensor"


def local_box(tensor: Tensor, where: str) -> tuple[Tensor, tuple[int, ...], Box]:
    """The tensor this process holds, the logical shape, and where the first sits in the
    second. A plain tensor is its own whole box."""
    if not is_sharded(tensor):
        return tensor, tuple(tensor.shape), tuple((0, n) for n in tensor.shape)
    if not _SHARDING_TORCH or dtensor_type() is None:
        raise InitUsageError(
            f"{where}: initializing sharded (DTensor) parameters needs torch >= 2.6 (public "
            f"torch.distributed.tensor and fully_shard); this is torch {torch.__version__}."
        )
    shape = tuple(tensor.shape)
    offsets, lengths = [0] * len(shape), list(shape)
    mesh = tensor.device_mesh  # type: ignore[attr-defined]
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        raise InitUsageError(f"{where}: this process is not part of the tensor's device mesh.")
    for mesh_dim, placement in enumerate(tensor.placements):  # type: ignore[attr-defined]
        kind = type(placement).__name__
        if kind == "_StridedShard":
            raise InitUsageError(
                f"{where}: placement {placement} (_StridedShard, from FSDP2 over a "
                f"tensor-parallel mesh) is not supported: its rows are interleaved, so "
                f"its global offsets are not one rectangle. Shard the parameter with "
                f"Shard/Replicate placements, or initialize before that sharding."
            )
        if placement.is_shard():
            dim = placement.dim % len(shape)
            count, index = mesh.size(mesh_dim), coordinate[mesh_dim]
            size = lengths[dim]
            chunk = -(-size // count) if size else 0  # torch.chunk: ceil, the rest short
            start = min(index * chunk, size)
            offsets[dim] += start
            lengths[dim] = min(start + chunk, size) - start
        elif not placement.is_replicate():
            raise InitUsageError(
                f"{where}: placement {placement} is not supported for initialization (only "
                f"Shard and Replicate: a parameter's value is not a pending sum)."
            )
    local: Tensor = tensor.to_local()  # type: ignore[attr-defined]
    if tuple(local.shape) != tuple(lengths):
        raise InitUsageError(
            f"{where}: the local shard has shape {tuple(local.shape)}, but torch.chunk's "
            f"rules give {tuple(lengths)} for placements {tensor.placements} of "  # type: ignore[attr-defined]
            f"{shape}: a placement this version does not understand."
        )
    return local, shape, tuple(zip(offsets, lengths, strict=True))
