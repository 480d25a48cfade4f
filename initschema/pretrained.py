"""Reading torch checkpoints for ``Pretrained`` rules and matching their keys to a module.

Everything here runs at compile time: a checkpoint that cannot be read, or a
prefix that selects nothing, is an :class:`InitCfgError` before any write.
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InitCfgError, join_path
from .initializers import PretrainedInit

__all__ = ["KeyMatch", "LoadedCheckpoint", "match_keys", "read_checkpoint"]

_DDP_PREFIX = re.compile(r"^module\.")


@dataclass(frozen=True)
class LoadedCheckpoint:
    """The state dict a ``Pretrained`` rule loads: keys already unwrapped, prefixed or revised."""

    state: OrderedDict[str, Any]
    file: str


@dataclass(frozen=True)
class KeyMatch:
    """How a checkpoint's keys meet a module's ``state_dict`` keys."""

    loaded: tuple[str, ...]
    mismatched: tuple[tuple[str, str], ...]
    """(key, why) for keys in both whose shapes differ or whose value is not a tensor."""
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def read_checkpoint(init: PretrainedInit, source: str) -> LoadedCheckpoint:
    """Load ``init.checkpoint`` (``weights_only=True``) and select its keys as MMEngine does.

    Unwraps a ``state_dict`` entry; with ``prefix``, keeps the keys under it with the
    prefix removed; without, strips a leading ``module.`` (DDP) from every key.
    """
    path = os.path.expanduser(init.checkpoint)
    where = join_path(source, "checkpoint")
    if not os.path.isfile(path):
        raise InitCfgError.single(
            where,
            f"checkpoint file {init.checkpoint!r} does not exist (looked for "
            f"{os.path.abspath(path)}); fix the path or put the file there.",
        )
    try:
        raw = torch.load(path, map_location=init.map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InitCfgError.single(
            where,
            f"checkpoint {init.checkpoint!r} holds pickled objects that weights_only=True "
            f"refuses to load ({first}); re-save it as a plain state_dict with "
            f"torch.save(model.state_dict(), path).",
        ) from None
    except Exception as error:  # torch raises many types for a corrupt file
        raise InitCfgError.single(
            where, f"checkpoint {init.checkpoint!r} could not be read: {error}"
        ) from None
    state = raw["state_dict"] if isinstance(raw, Mapping) and "state_dict" in raw else raw
    if not isinstance(state, Mapping):
        raise InitCfgError.single(
            where,
            f"checkpoint {init.checkpoint!r} holds a {type(state).__name__}, not a state dict.",
        )
    if init.prefix is not None:
        return LoadedCheckpoint(_under_prefix(state, init, source), path)
    selected: OrderedDict[str, Any] = OrderedDict(
        (_DDP_PREFIX.sub("", key), value) for key, value in state.items()
    )
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        selected._metadata = metadata  # type: ignore[attr-defined]
    return LoadedCheckpoint(selected, path)


def _under_prefix(
    state: Mapping[str, Any], init: PretrainedInit, source: str
) -> OrderedDict[str, Any]:
    prefix = init.prefix or ""
    if not prefix.endswith("."):
        prefix += "."
    selected = OrderedDict(
        (key[len(prefix) :], value) for key, value in state.items() if key.startswith(prefix)
    )
    if not selected:
        heads = sorted({key.split(".", 1)[0] + "." for key in state})
        raise InitCfgError.single(
            join_path(source, "prefix"),
            f"prefix {init.prefix!r} matches no key of checkpoint {init.checkpoint!r}; "
            f"its keys start with {', '.join(heads[:10]) or 'nothing (it is empty)'}.",
        )
    return selected


def match_keys(module: nn.Module, state: Mapping[str, Any]) -> KeyMatch:
    """Which checkpoint keys load into ``module``, and which are skipped, missing or unexpected."""
    own = module.state_dict(keep_vars=True)
    loaded, mismatched = [], []
    for key, target in own.items():
        if key not in state:
            continue
        value = state[key]
        if not isinstance(value, Tensor):
            mismatched.append((key, f"checkpoint value is a {type(value).__name__}, not a tensor"))
        elif value.shape != target.shape:
            mismatched.append(
                (key, f"shape {tuple(value.shape)} in checkpoint, {tuple(target.shape)} in model")
            )
        else:
            loaded.append(key)
    missing = [k for k in own if k not in state and "num_batches_tracked" not in k]
    unexpected = [k for k in state if k not in own]
    return KeyMatch(tuple(loaded), tuple(mismatched), tuple(missing), tuple(unexpected))


def load_into(module: nn.Module, checkpoint: LoadedCheckpoint, keys: tuple[str, ...]) -> None:
    """Copy ``keys`` of the checkpoint into ``module`` (``strict=False``, as MMEngine)."""
    subset: OrderedDict[str, Any] = OrderedDict((k, checkpoint.state[k]) for k in keys)
    metadata = getattr(checkpoint.state, "_metadata", None)
    if metadata is not None:
        subset._metadata = metadata  # type: ignore[attr-defined]
    module.load_state_dict(subset, strict=False)
