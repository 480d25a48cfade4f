"""Running a compiled plan: faithful (global RNG, MMEngine's order) or seeded per parameter.

Faithful mode makes every write MMEngine makes, in the same order, overwritten
ones included (they advance the RNG), so the same ``torch.manual_seed`` gives
the same bits. Seeded mode writes each tensor once, with its final
initializer, from a generator derived from ``(seed, tensor path)``: values do
not depend on module order or on what else the model holds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from .errors import join_path
from .functional import write_tensor
from .initializers import WeightInit
from .load_hooks import load_through_hooks
from .plan import Action, InitPlan
from .pretrained import load_into, read_state
from .report import InitReport, Provenance

__all__ = ["execute", "path_in_run", "running", "seed_for"]

logger = logging.getLogger("initschema")

_RECORDER: ContextVar[_Recorder | None] = ContextVar("initschema_recorder", default=None)


def seed_for(seed: int, path: str) -> int:
    """A 63-bit seed derived from ``(seed, path)``, the same on every run and machine."""
    digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class _Recorder:
    """Provenance of one top-level execution, shared with nested ``init_weights`` runs."""

    root: nn.Module
    device: torch.device

    def __post_init__(self) -> None:
        self.module_paths = {id(m): p for p, m in self.root.named_modules()}
        self.entries: dict[str, Provenance] = {}
        self.versions: dict[str, int] = {}
        self.prints: dict[str, int] = {}
        """Fingerprints of tensors a running user ``init_weights`` may write."""
        self.opaque = 0
        """How many user ``init_weights`` calls are running (nested ones included)."""

    def materialize(self, module: nn.Module, name: str) -> Tensor:
        """Replace the meta tensor ``module.<name>`` by an empty one on the device, in every
        module that shares it (tied weights stay tied)."""
        old = getattr(module, name)
        new: Tensor = torch.empty_like(old, device=self.device)
        if isinstance(old, nn.Parameter):
            new = nn.Parameter(new, requires_grad=old.requires_grad)
        for table, key in self._holders().pop(id(old), []):
            table[key] = new
        if getattr(module, name) is not new:  # a plain tensor attribute
            setattr(module, name, new)
        return new

    def _holders(self) -> dict[int, list[tuple[dict[str, Any], str]]]:
        """Where each meta tensor is held (parameter and buffer tables), found once."""
        if not hasattr(self, "holders"):
            self.holders: dict[int, list[tuple[dict[str, Any], str]]] = {}
            for owner in self.root.modules():
                for table in (owner._parameters, owner._buffers):
                    for key, value in table.items():
                        if value is not None and value.is_meta:
                            self.holders.setdefault(id(value), []).append((table, key))
        return self.holders

    def record(self, path: str, tensor: Tensor, entry: Provenance) -> None:
        self.entries[path] = entry
        self.versions[path] = tensor._version
        if self.opaque and path in self.prints:
            # Written by a rule inside a user init_weights: a later write through .data
            # must show against this value, not the one before the call.
            self.prints[path] = fingerprint(tensor)


def running() -> bool:
    """Whether a plan is executing (so an ``init_weights`` call now is nested in it)."""
    return _RECORDER.get() is not None


def path_in_run(module: nn.Module) -> str:
    """The path of ``module`` in the model whose plan is running ('' for its root, or when
    none runs or the module is not part of it)."""
    recorder = _RECORDER.get()
    return recorder.module_paths.get(id(module), "") if recorder else ""


def execute(plan: InitPlan, seed: int | None = None, device: str = "cpu") -> InitReport:
    """Write the weights as ``plan`` says, under ``torch.no_grad()``, and report provenance.

    A tensor still on the meta device is materialized on ``device`` when the plan first
    writes it (a Pretrained entry becomes the tensor itself, without a copy in between).
    Called inside a user-defined ``init_weights`` that a running plan invoked (its
    ``super().init_weights()``), the writes are recorded in that outer run's report.
    """
    outer = _RECORDER.get()
    recorder = outer or _Recorder(plan.module, torch.device(device))
    prefix = recorder.module_paths.get(id(plan.module), "") if outer else ""
    token = _RECORDER.set(recorder)
    try:
        with torch.no_grad():
            _run(plan, recorder, prefix, seed)
    finally:
        _RECORDER.reset(token)
    report = InitReport.collect(plan.module, recorder.entries, prefix)
    if outer is None:
        report.log(logger)
    return report


def _run(plan: InitPlan, recorder: _Recorder, prefix: str, seed: int | None) -> None:
    actions = plan.actions
    skipped = {i for i, a in enumerate(actions) if a.kind == "guard" and _initialized(a)}
    last = _last_writers(actions, skipped) if seed is not None else {}
    index = 0
    while index < len(actions):
        action = actions[index]
        target = action.target
        assert target is not None
        if action.kind == "guard":
            # MMEngine reads a child's is_init when its loop reaches it: user code that ran
            # since (a shared module initialized through another parent) decides.
            if _initialized(action):
                if seed is not None and index not in skipped:
                    skipped.add(index)
                    last = _last_writers(actions, skipped)
                index = action.skip
            else:
                index += 1
            continue
        index += 1
        if action.kind == "mark":
            target.is_init = True  # type: ignore[assignment]
            continue
        entry = Provenance(
            kind=action.kind,
            module=join_path(prefix, action.module),
            initializer=action.describe(),
            source=action.source if action.kind == "call" else join_path(prefix, action.source),
        )
        if action.kind == "write":
            _write(action, index - 1, entry, recorder, prefix, seed, last)
        elif action.kind == "load" and action.hooked:
            _load_hooked(action, entry, recorder, prefix)
        elif action.kind == "load":
            assert action.checkpoint is not None
            _keep_ties(target, action.tensors, recorder)
            load_into(target, action.checkpoint, action.tensors, recorder.device)
            own = target.state_dict(keep_vars=True)
            for name, path in zip(action.tensors, action.params, strict=True):
                what = replace(entry, initializer=action.describe_param(path))
                recorder.record(join_path(prefix, path), own[name], what)
        else:
            _call(target, join_path(prefix, action.module), entry, recorder, seed)


def _initialized(guard: Action) -> bool:
    return bool(getattr(guard.target, "is_init", False))


def _last_writers(actions: tuple[Action, ...], skipped: set[int]) -> dict[str, int]:
    """The last writer of each tensor among the actions that run: those inside a guard
    that skips are left out."""
    live = list(enumerate(actions))
    for index in sorted(skipped):
        live = [(i, a) for i, a in live if not index <= i < actions[index].skip]
    return {path: i for i, a in live if a.kind in ("write", "load") for path in a.params}


def _load_hooked(action: Action, entry: Provenance, recorder: _Recorder, prefix: str) -> None:
    """A load through the model's load code: the whole mapped state dict, MMEngine's
    recursion, copies into the model's tensors (meta ones are allocated first)."""
    target, checkpoint = action.target, action.checkpoint
    assert target is not None and checkpoint is not None
    for key in action.tensors:
        owner, _, name = key.rpartition(".")
        if getattr(target.get_submodule(owner), name).is_meta:
            recorder.materialize(target.get_submodule(owner), name)
    own = target.state_dict(keep_vars=True)
    versions = {key: tensor._version for key, tensor in own.items()}
    run = load_through_hooks(target, read_state(checkpoint))
    if action.hooked == "unchecked":  # nothing was said at compile time
        for message in run.errors:
            logger.warning("loading %s into %s: %s", checkpoint.name, action.module, message)
    own = target.state_dict(keep_vars=True)
    for key, path in zip(action.tensors, action.params, strict=True):
        if own[key]._version != versions[key]:
            what = replace(entry, initializer=action.describe_param(path))
            recorder.record(join_path(prefix, path), own[key], what)


def _keep_ties(module: nn.Module, keys: tuple[str, ...], recorder: _Recorder) -> None:
    """Materialize shared meta tensors before a load: assigning the entry to one holder
    would leave the others on the meta device (and untie them)."""
    for key, tensor in module.state_dict(keep_vars=True).items():
        if key in keys and tensor.is_meta and len(recorder._holders().get(id(tensor), ())) > 1:
            owner, _, name = key.rpartition(".")
            recorder.materialize(module.get_submodule(owner), name)


def _write(
    action: Action,
    index: int,
    entry: Provenance,
    recorder: _Recorder,
    prefix: str,
    seed: int | None,
    last: dict[str, int],
) -> None:
    init = action.init
    assert isinstance(init, WeightInit) and action.target is not None
    for name, path in zip(action.tensors, action.params, strict=True):
        tensor = getattr(action.target, name)
        full = join_path(prefix, path)
        if tensor.is_meta and (seed is None or last.get(path) == index):
            tensor = recorder.materialize(action.target, name)
        if seed is None:
            write_tensor(init, name, tensor)
        elif last.get(path) == index:
            generator = torch.Generator(device=tensor.device)
            generator.manual_seed(seed_for(seed, full))
            write_tensor(init, name, tensor, generator)
        else:
            continue
        recorder.record(full, tensor, replace(entry, initializer=init.describe_tensor(name)))


def _call(
    module: nn.Module, path: str, entry: Provenance, recorder: _Recorder, seed: int | None
) -> None:
    """Run a user ``init_weights``; what it wrote itself is read off tensor version counters,
    and off fingerprints for writes through ``.data``, which counters do not see."""
    tensors = {join_path(path, n): t for n, t in module.named_parameters()}
    for full, tensor in tensors.items():
        recorder.versions[full] = tensor._version
        if not tensor.is_meta:
            recorder.prints[full] = fingerprint(tensor)
    init_weights: Callable[[], None] = getattr(module, "init_weights")  # noqa: B009
    recorder.opaque += 1
    try:
        if seed is None:
            init_weights()
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed_for(seed, path))
                init_weights()
    finally:
        recorder.opaque -= 1
    hidden = replace(entry, initializer=_HIDDEN_WRITE)
    for full, tensor in tensors.items():
        if tensor._version != recorder.versions[full]:
            recorder.record(full, tensor, entry)
        elif full in recorder.prints and fingerprint(tensor) != recorder.prints[full]:
            recorder.record(full, tensor, hidden)


_HIDDEN_WRITE = "changed by user code (not seen by version counters)"


def fingerprint(tensor: Tensor) -> int:
    """A checksum of the tensor's bytes: an in-place write through ``.data`` leaves the
    version counter alone but (almost surely) changes this sum."""
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    words = raw.view(torch.int64) if raw.numel() % 8 == 0 else raw.to(torch.int64)
    return int(words.sum()) ^ raw.numel()
