"""``Pretrained`` rules: opening a checkpoint, mapping its keys, matching them to a module.

Everything up to :func:`load_into` runs at compile time and reads headers and
metadata only: a checkpoint that cannot be read, a prefix that selects nothing,
a shape mismatch under ``on_mismatch: error`` or a missing key under
``strict: true`` is an :class:`InitCfgError` before any write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._progress import ProgressBar
from ..cfg.builtin import PretrainedInit
from ..cfg.patterns import substitute
from ..errors import InitCfgError, Problem, join_path, redact
from ..sharding.placement import is_sharded, local_box
from .download import resolve_checkpoint
from .formats import Reader, open_reader
from .load_hooks import checkpoint_state, dry_run, hooked_modules

__all__ = [
    "Checkpoint",
    "KeyMatch",
    "check_map_location",
    "load_into",
    "match_keys",
    "open_checkpoint",
    "read_state",
]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """What a Pretrained rule loads: a reader and the final key mapping."""

    reader: Reader
    keys: dict[str, str]
    """Model key (relative to the module the rule loads into) → checkpoint key."""
    name: str
    """The rule's ``checkpoint``, credentials hidden."""
    metadata: Any = None
    """The state dict's ``_metadata`` (module versions), where MMEngine passes it on: when
    loading without a prefix."""


@dataclass(frozen=True)
class KeyMatch:
    """How a checkpoint's keys meet a module's ``state_dict`` keys."""

    loaded: tuple[str, ...]
    mismatched: tuple[tuple[str, str], ...]
    """(model key, why) for keys in both whose shapes differ or whose value is no tensor."""
    converted: tuple[tuple[str, str], ...]
    """(model key, 'float16 → float32') for entries whose dtype is converted on load."""
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    hooks: tuple[str, ...] = ()
    """Modules whose own load code the checkpoint goes through (then the rest is what
    that code made of it)."""
    renamed: tuple[tuple[str, str], ...] = ()
    """(model key, checkpoint key) of entries the load code renamed."""
    adapted: tuple[tuple[str, str], ...] = ()
    """(model key, '(1, 197, 8) → (1, 577, 8)') of entries the load code reshaped."""
    unchecked: str = ""
    """Why the load code could not be dry-run (then every key may be written)."""


def open_checkpoint(init: PretrainedInit, source: str) -> Checkpoint:
    """Open the rule's checkpoint (downloading it first when it is an address) and map its
    keys: ``prefix`` selects and strips, then ``revise_keys`` rewrite, as MMEngine does."""
    where = join_path(source, "checkpoint")
    check_map_location(init.map_location, join_path(source, "map_location"))
    reader = open_reader(
        resolve_checkpoint(init.checkpoint, where), where, init.map_location, init.allow_pickle
    )
    names = reader.keys()
    if init.prefix is not None:
        prefix = init.prefix if init.prefix.endswith(".") else init.prefix + "."
        keys = {k[len(prefix) :]: k for k in names if k.startswith(prefix)}
        if not keys:
            heads = sorted({k.split(".", 1)[0] + "." for k in names})
            raise InitCfgError.single(
                join_path(source, "prefix"),
                f"prefix {init.prefix!r} matches no key of checkpoint {redact(init.checkpoint)!r}; "
                f"its keys start with {', '.join(heads[:10]) or 'nothing (it is empty)'}.",
            )
    else:
        keys = {k: k for k in names}
    # MMEngine revises keys only when it loads without a prefix; so do we, unless asked.
    if init.prefix is None or "revise_keys" in init.model_fields_set:
        for pattern, replacement in init.revise_keys:
            keys = {substitute(pattern, replacement, k): v for k, v in keys.items()}
    return Checkpoint(
        reader, keys, redact(init.checkpoint), reader.metadata if init.prefix is None else None
    )


def check_map_location(map_location: str | None, where: str) -> None:
    """Refuse a ``map_location`` this machine cannot read tensors to, whatever the format:
    an unknown device, one it lacks (``cuda`` without a GPU, ``cuda:99``), or ``meta``."""
    if map_location is None:
        return
    fix = "use 'cpu' (tensors are copied to the model's device anyway)"
    try:
        device = torch.device(map_location)
    except (RuntimeError, ValueError):
        raise InitCfgError.single(
            where, f"map_location {map_location!r} is not a device; {fix}."
        ) from None
    if device.type == "cpu":
        return
    if device.type == "meta":
        raise InitCfgError.single(
            where,
            f"map_location 'meta' reads no values, so nothing could be loaded; {fix}; a model "
            f"on the meta device is materialized from the checkpoint's values.",
        )
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    count = torch.accelerator.device_count() if accelerator is not None else 0
    if accelerator is None or accelerator.type != device.type:
        have = f"cpu and {count} {accelerator.type} device(s)" if accelerator else "only cpu"
        raise InitCfgError.single(
            where,
            f"map_location {map_location!r} names a device this machine lacks (it has {have}); "
            f"{fix}.",
        )
    if device.index is not None and device.index >= count:
        raise InitCfgError.single(
            where,
            f"map_location {map_location!r} names {device.type} device {device.index}, but "
            f"this machine has {count} ({device.type}:0 to {device.type}:{count - 1}); {fix}.",
        )


def match_keys(module: nn.Module, checkpoint: Checkpoint) -> KeyMatch:
    """Which entries load into ``module``; which are skipped, converted, missing, unexpected.

    When a module of the subtree has load code of its own, its effect is part of the
    answer (learnt from a dry run; see :mod:`initschema.checkpoints.load_hooks`)."""
    if hooks := hooked_modules(module):
        return _match_through_hooks(module, checkpoint, tuple(hooks))
    own = module.state_dict(keep_vars=True)
    loaded, mismatched, converted = [], [], []
    for key, target in own.items():
        if key not in checkpoint.keys:
            continue
        entry = checkpoint.reader.entry(checkpoint.keys[key])
        if not entry.is_tensor:
            mismatched.append((key, f"checkpoint value is a {entry.dtype}, not a tensor"))
        elif entry.shape != tuple(target.shape):
            mismatched.append(
                (key, f"shape {entry.shape} in checkpoint, {tuple(target.shape)} in model")
            )
        else:
            loaded.append(key)
            if entry.dtype != target.dtype:
                converted.append((key, f"{entry.dtype} → {target.dtype}".replace("torch.", "")))
    missing = [k for k in own if k not in checkpoint.keys and "num_batches_tracked" not in k]
    unexpected = [k for k in checkpoint.keys if k not in own]
    return KeyMatch(tuple(loaded), tuple(mismatched), tuple(converted), tuple(missing),
                    tuple(unexpected))  # fmt: skip


def _match_through_hooks(
    module: nn.Module, checkpoint: Checkpoint, hooks: tuple[str, ...]
) -> KeyMatch:
    own = module.state_dict(keep_vars=True)
    state = read_state(checkpoint)
    try:
        run = dry_run(module, state)
    except Exception as error:  # user code, which may not work on meta tensors
        return KeyMatch(
            tuple(own), (), (), (), (), hooks, unchecked=f"{type(error).__name__}: {error}"
        )
    loaded = tuple(k for k in own if k in run.loaded)
    converted, adapted = [], []
    for key in loaded:
        value, original = run.loaded[key], state.get(run.renamed.get(key, key))
        if value.dtype != own[key].dtype:
            converted.append((key, f"{value.dtype} → {own[key].dtype}".replace("torch.", "")))
        if isinstance(original, Tensor) and original.shape != own[key].shape:
            adapted.append((key, f"{tuple(original.shape)} → {tuple(own[key].shape)}"))
    renamed = tuple(
        (k, checkpoint.keys.get(run.renamed[k], run.renamed[k])) for k in loaded if k in run.renamed
    )
    return KeyMatch(loaded, tuple(run.mismatched()), tuple(converted), tuple(run.missing),
                    tuple(run.unexpected), hooks, renamed, tuple(adapted))  # fmt: skip


def read_state(checkpoint: Checkpoint) -> OrderedDict[str, Any]:
    """Every entry the rule maps, as the state dict MMEngine would hand the model."""
    return checkpoint_state(checkpoint.reader, checkpoint.keys, checkpoint.metadata)


def policy_problems(init: PretrainedInit, source: str, match: KeyMatch) -> list[Problem]:
    """The rule's ``on_mismatch: error`` and ``strict: true`` turned into problems."""
    problems = []
    if init.on_mismatch == "error":
        problems += [
            Problem(source, f"{key}: {why}; set on_mismatch: skip to keep the model's value.")
            for key, why in match.mismatched
        ]
    if init.strict:
        for kind, keys in (("missing from", match.missing), ("unexpected in", match.unexpected)):
            if keys:
                shown = ", ".join(keys[:5]) + (
                    f", and {len(keys) - 5} more" if len(keys) > 5 else ""
                )
                problems.append(
                    Problem(source, f"strict: {len(keys)} keys {kind} the checkpoint: {shown}.")
                )
    return problems


def load_into(
    module: nn.Module,
    checkpoint: Checkpoint,
    keys: Iterable[str],
    device: torch.device | str = "cpu",
) -> None:
    """Copy the checkpoint entries for ``keys`` into ``module``, one owning submodule at a
    time (through its ``load_state_dict``, so its hooks run). A tensor still on the meta
    device is materialized from the entry itself (``assign=True``), cast to its dtype."""
    keys = _load_shards(module, checkpoint, list(keys))
    owners: dict[str, list[str]] = {}
    for key in keys:
        owner_path, _, name = key.rpartition(".")
        owners.setdefault(owner_path, []).append(name)
    entries = [checkpoint.reader.entry(checkpoint.keys[k]) for k in keys]
    with ProgressBar(f"loading {checkpoint.name}", sum(e.nbytes for e in entries)) as advance:
        for owner_path, names in owners.items():
            owner: nn.Module = module.get_submodule(owner_path)
            own = owner.state_dict(keep_vars=True)
            for assign in (False, True):
                chosen = [n for n in names if own[n].is_meta == assign]
                if not chosen:
                    continue
                subset: dict[str, Any] = {}
                for name in chosen:
                    value = checkpoint.reader.read(checkpoint.keys[join_path(owner_path, name)])
                    if assign:
                        value = value.to(device=device, dtype=own[name].dtype)
                    subset[name] = value
                    advance(value.nelement() * value.element_size())
                owner.load_state_dict(subset, strict=False, assign=assign)
                del subset  # entries are released owner by owner: one copy at most in memory


def _load_shards(module: nn.Module, checkpoint: Checkpoint, keys: list[str]) -> list[str]:
    """Copy into each sharded (DTensor) tensor its slice of the entry, read alone (the
    readers slice lazily: an mmap'd torch file or a safetensors slice); the other keys
    are returned."""
    rest = []
    for key in keys:
        owner, _, name = key.rpartition(".")
        tensor = getattr(module.get_submodule(owner), name)
        if not is_sharded(tensor):
            rest.append(key)
            continue
        local, _, box = local_box(tensor, key)
        if local.numel():
            part = checkpoint.reader.read_slice(checkpoint.keys[key], box)
            with torch.no_grad():
                local.copy_(part)
    return rest
