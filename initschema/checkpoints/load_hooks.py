"""Loading a checkpoint through a model's own load hooks, as MMEngine's ``load_state_dict`` does.

Model code adapts checkpoints in ``_load_from_state_dict`` overrides and load
pre-hooks (mmpretrain's ViT resizes ``pos_embed``, mmdet's AnchorFreeHead
renames legacy keys): these see the whole state dict of the module that loads
it, before any shape is checked. Where a module of the loading subtree has such
code, the checkpoint goes through MMEngine's recursion — each module's
``_load_from_state_dict`` with the dict its parent left, then post-hooks — and
nowhere else, since it reads every entry. The plan learns what the hooks do from
a dry run over meta stand-ins for the model's tensors, so keys and shapes are
still checked before the first write.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.module import _IncompatibleKeys

from ..errors import join_path

__all__ = ["HookRun", "dry_run", "hooked_modules", "load_through_hooks"]

_SIZE_MISMATCH = re.compile(r"size mismatch for (\S+): (.*)", re.DOTALL)


def hooked_modules(module: nn.Module) -> list[str]:
    """The modules under ``module`` whose code takes part in loading: load pre- or
    post-hooks, or a ``_load_from_state_dict`` of their own. torch's built-in overrides
    (BatchNorm's ``num_batches_tracked`` versions) and hooks torch itself registers
    (FSDP2's, which re-point a shard after a load) do not count: the lazy path runs them."""
    found = []
    for path, sub in module.named_modules():
        owner = next(c for c in type(sub).__mro__ if "_load_from_state_dict" in vars(c))
        if (
            _own_hooks(sub._load_state_dict_pre_hooks)
            or _own_hooks(sub._load_state_dict_post_hooks)
            or not owner.__module__.startswith("torch.")
        ):
            found.append(f"{path or '(root)'} ({type(sub).__name__})")
    return found


def _own_hooks(hooks: Mapping[Any, Any]) -> bool:
    """Whether any of ``hooks`` is the model's code, not torch's."""
    for hook in hooks.values():
        function = getattr(hook, "hook", hook)  # torch wraps pre-hooks in _WrappedHook
        if not getattr(function, "__module__", "").startswith("torch."):
            return True
    return False


@dataclass(frozen=True)
class HookRun:
    """What a load through the hooks did (or, on a dry run, would do)."""

    loaded: dict[str, Tensor]
    """Model key → the value it received (after the hooks)."""
    missing: list[str]
    unexpected: list[str]
    errors: list[str]
    renamed: dict[str, str]
    """New key → the key a hook renamed it from."""

    def mismatched(self) -> list[tuple[str, str]]:
        """(key, why) for each entry torch refused, after the hooks ran."""
        found = []
        for message in self.errors:
            match = _SIZE_MISMATCH.match(message)
            found.append((match[1], match[2].rstrip(".")) if match else ("", message))
        return found


def checkpoint_state(reader: Any, keys: dict[str, str], metadata: Any) -> OrderedDict[str, Any]:
    """Every entry the rule maps (model key → value), with MMEngine's ``_metadata``."""
    state: OrderedDict[str, Any] = OrderedDict((k, reader.read(c)) for k, c in keys.items())
    if metadata is not None:
        state._metadata = metadata  # type: ignore[attr-defined]
    return state


def _load_tree(module: nn.Module, state: OrderedDict[str, Any], *, assign: bool) -> HookRun:
    """MMEngine's ``load_state_dict`` recursion (strict=False) on ``module``."""
    metadata = getattr(state, "_metadata", None)
    missing: list[str] = []
    unexpected: list[str] = []
    errors: list[str] = []
    renamed: dict[str, str] = {}

    def load(sub: nn.Module, local: dict[str, Any], prefix: str) -> None:
        own_metadata = dict({} if metadata is None else metadata.get(prefix[:-1], {}))
        if assign:
            own_metadata["assign_to_params_buffers"] = True
        before = list(local)
        sub._load_from_state_dict(local, prefix, own_metadata, True, missing, unexpected, errors)
        gone = [k for k in before if k not in local]
        new = [k for k in local if k not in before]
        if len(gone) == len(new):
            renamed.update({n: renamed.get(g, g) for g, n in zip(gone, new, strict=True)})
        for name, child in sub._modules.items():
            if child is not None:
                child_prefix = prefix + name + "."
                load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)},
                     child_prefix)  # fmt: skip
        incompatible = _IncompatibleKeys(missing, unexpected)
        for hook in sub._load_state_dict_post_hooks.values():
            hook(sub, incompatible)

    load(module, state.copy(), "")
    missing = [k for k in missing if "num_batches_tracked" not in k]
    return HookRun({}, missing, unexpected, errors, renamed)


def _slots(module: nn.Module) -> list[tuple[str, dict[str, Any], str, Tensor]]:
    """(model key, table, name, tensor) of every parameter and buffer under ``module``."""
    return [
        (join_path(path, name), table, name, value)
        for path, sub in module.named_modules()
        for table in (sub._parameters, sub._buffers)
        for name, value in table.items()
        if value is not None
    ]


def dry_run(module: nn.Module, state: OrderedDict[str, Any]) -> HookRun:
    """Run the load on meta stand-ins of ``module``'s tensors (assigned, never copied) and
    put the real ones back: which keys load, and with what, after the hooks."""
    slots = _slots(module)
    stand_ins: dict[int, Tensor] = {}
    for _, table, name, value in slots:
        if id(value) not in stand_ins:
            fake = torch.empty_like(value, device="meta")
            stand_ins[id(value)] = (
                nn.Parameter(fake, value.requires_grad) if isinstance(value, nn.Parameter) else fake
            )
        table[name] = stand_ins[id(value)]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the real load warns, if it must
            run = _load_tree(module, state, assign=True)
        loaded = {
            key: table[name]
            for key, table, name, value in slots
            if table[name] is not stand_ins[id(value)]
        }
    finally:
        for _, table, name, value in slots:
            table[name] = value
    return HookRun(loaded, run.missing, run.unexpected, run.errors, run.renamed)


def load_through_hooks(module: nn.Module, state: OrderedDict[str, Any]) -> HookRun:
    """Load ``state`` into ``module`` (copying into its tensors) through its hooks."""
    with torch.no_grad():
        return _load_tree(module, state, assign=False)
