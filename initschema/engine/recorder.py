"""What one execution records: which action last wrote each tensor (as references,
formatted into provenance only when a report is read), version counters and checksums
of the tensors user code may write, and the meta tensors it materializes as it goes."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..cfg.weight_init import WeightInit
from ..errors import join_path
from ..sharding.placement import canonical_path, is_sharded
from .plan import Action, InitPlan
from .report import Provenance

__all__ = ["Record", "Recorder", "fingerprint", "kind_of", "provenance_of"]

_HIDDEN_WRITE = "changed by user code (not seen by version counters)"

Record = tuple[Action, str, str, bool]
"""(action, tensor — a name for writes, a path for loads, '' for calls —, the path prefix
of a nested plan, whether user code wrote it unseen by version counters)."""


class Recorder:
    """Provenance of one top-level execution, shared with nested ``init_weights`` runs."""

    def __init__(self, plan: InitPlan, device: torch.device) -> None:
        self.root = plan.module
        self.device = device
        self.module_paths = {id(m): p for p, m in plan.modules.items()}
        self.subplans = plan.subplans
        self.entries: dict[str, Record] = {}
        self.versions: dict[str, int] = {}
        self.prints: dict[str, int] = {}
        """Fingerprints of tensors a running user ``init_weights`` may write."""
        self.opaque = 0
        """How many user ``init_weights`` calls are running (nested ones included)."""
        self.written: list[tuple[str, Tensor]] = []
        """Tensors rules wrote inside a user ``init_weights``, to fingerprint (settle)."""
        self.holders: dict[int, list[tuple[dict[str, Any], str]]] | None = None
        self.calls: list[tuple[str, nn.Module]] = []
        """(path, module) of every user ``init_weights`` run."""
        self.progress: Callable[[int], None] | None = None
        """Advances the progress bar by a number of elements written, when one shows."""
        self.keys = plan.stream_keys

    def key(self, path: str) -> str:
        """What the seeded stream of the tensor at ``path`` is keyed by."""
        return self.keys.get(path) or canonical_path(path)

    def materialize(self, module: nn.Module, name: str) -> Tensor:
        """Replace the meta tensor ``module.<name>`` by an empty one on the device, in every
        module that shares it (tied weights stay tied)."""
        old = getattr(module, name)
        new: Tensor = torch.empty_like(old, device=self.device)
        if isinstance(old, nn.Parameter):
            new = nn.Parameter(new, requires_grad=old.requires_grad)
        for table, key in self.meta_holders().pop(id(old), []):
            table[key] = new
        if getattr(module, name) is not new:  # a plain tensor attribute
            setattr(module, name, new)
        return new

    def meta_holders(self) -> dict[int, list[tuple[dict[str, Any], str]]]:
        """Where each meta tensor is held (parameter and buffer tables), found once."""
        if self.holders is None:
            self.holders = {}
            for owner in self.root.modules():
                for table in (owner._parameters, owner._buffers):
                    for key, value in table.items():
                        if value is not None and value.is_meta:
                            self.holders.setdefault(id(value), []).append((table, key))
        return self.holders

    def record(self, path: str, tensor: Tensor, entry: Record) -> None:
        self.entries[path] = entry
        if self.opaque:
            self.versions[path] = tensor._version
            if path in self.prints:
                self.written.append((path, tensor))

    def settle(self) -> None:
        """Fingerprint what rules wrote inside a user init_weights, before its code goes
        on: a later write through .data must show against these values."""
        if self.written:
            self.prints.update((path, fingerprint(tensor)) for path, tensor in self.written)
            self.written.clear()


def provenance_of(record: Record | None) -> Provenance | None:
    if record is None:
        return None
    action, tensor, prefix, hidden = record
    module = join_path(prefix, action.module)
    if action.kind in ("call", "method"):
        what = _HIDDEN_WRITE if hidden else action.describe()
        return Provenance(action.kind, module, what, action.source)
    source = join_path(prefix, action.source)
    if action.kind == "load":
        return Provenance("load", module, action.describe_param(tensor), source)
    assert isinstance(action.init, WeightInit)
    return Provenance(action.kind, module, action.init.describe_tensor(action.role(tensor)), source)


def kind_of(record: Record | None) -> str:
    return "none" if record is None else record[0].kind


def fingerprint(tensor: Tensor) -> int:
    """A checksum (CRC-32) of the tensor's bytes: an in-place write through ``.data``
    leaves the version counter alone but (almost surely) changes this. zlib reads the
    memory in place, several times faster than a torch reduction over it."""
    data = tensor.detach()
    if is_sharded(data):
        data = data.to_local()  # type: ignore[attr-defined]
    if data.device.type != "cpu":
        return int(data.reshape(-1).view(torch.uint8).sum(dtype=torch.int64))
    if not data.is_contiguous():
        data = data.contiguous()
    try:
        return zlib.crc32(data.numpy().data)
    except TypeError:  # a dtype numpy lacks (bfloat16, float8): its bytes then
        return zlib.crc32(data.reshape(-1).view(torch.uint8).numpy().data)
