"""``Pretrained`` rules: opening a checkpoint, mapping its keys, matching them to a module.

Everything up to :func:`load_into` runs at compile time and reads headers and
metadata only: a checkpoint that cannot be read, a prefix that selects nothing,
a shape mismatch under ``on_mismatch: error`` or a missing key under
``strict: true`` is an :class:`InitCfgError` before any write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .download import ProgressBar, resolve_checkpoint
from .errors import InitCfgError, Problem, join_path
from .formats import Reader, open_reader
from .initializers import PretrainedInit

__all__ = ["Checkpoint", "KeyMatch", "load_into", "match_keys", "open_checkpoint"]


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """What a Pretrained rule loads: a reader and the final key mapping."""

    reader: Reader
    keys: dict[str, str]
    """Model key (relative to the module the rule loads into) → checkpoint key."""
    name: str


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


def open_checkpoint(init: PretrainedInit, source: str) -> Checkpoint:
    """Open the rule's checkpoint (downloading it first when it is an address) and map its
    keys: ``prefix`` selects and strips, then ``revise_keys`` rewrite, as MMEngine does."""
    where = join_path(source, "checkpoint")
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
                f"prefix {init.prefix!r} matches no key of checkpoint {init.checkpoint!r}; "
                f"its keys start with {', '.join(heads[:10]) or 'nothing (it is empty)'}.",
            )
    else:
        keys = {k: k for k in names}
    # MMEngine revises keys only when it loads without a prefix; so do we, unless asked.
    if init.prefix is None or "revise_keys" in init.model_fields_set:
        for pattern, replacement in init.revise_keys:
            keys = {re.sub(pattern, replacement, k): v for k, v in keys.items()}
    return Checkpoint(reader, keys, init.checkpoint)


def match_keys(module: nn.Module, checkpoint: Checkpoint) -> KeyMatch:
    """Which entries load into ``module``; which are skipped, converted, missing, unexpected."""
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
