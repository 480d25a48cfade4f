"""Checkpoint readers: torch files (mmap), safetensors, sharded indexes, directories.

A reader knows the keys and the shape and dtype of every entry without reading
tensor data (safetensors by header, torch files through ``mmap=True``), and
reads one entry at a time, so that loading keeps about one copy of the model in
memory and a ``prefix`` reads only the entries under it.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import InitCfgError

__all__ = ["Entry", "Reader", "open_reader", "resolve_path"]

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
    "F8_E5M2": getattr(torch, "float8_e5m2", None),
}  # fmt: skip
_DIRECTORY_NAMES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
_SUFFIXES = (".safetensors.index.json", ".bin.index.json", ".safetensors", ".pth", ".pt", ".bin")
_SNIFF = 512
"""Bytes read from the start of a file that fails to load, to say what it is."""
_OBJECTS = re.compile(r"global|can only build|unrecognized function|unsupported class", re.I)
"""torch's weights-only refusals of an object a pickle names (not of a damaged pickle)."""
_DAMAGED = re.compile(r"PytorchStreamReader|truncated|corrupt|EOF", re.I)
_FOREIGN = re.compile(r"pickle protocol|magic number", re.I)
_BOILERPLATE = re.compile(
    r"Weights only load failed|\(\d\)|Please file an issue|Check the documentation|This file can"
)


@dataclass(frozen=True)
class Entry:
    """What a checkpoint holds under a key: a tensor's shape and dtype, or another value."""

    shape: tuple[int, ...] | None
    dtype: torch.dtype | str | None
    nbytes: int = 0

    @property
    def is_tensor(self) -> bool:
        return self.shape is not None


class Reader:
    """Entries of one checkpoint (one file, or the shards of an index)."""

    def __init__(self, path: str, where: str) -> None:
        self.path = path
        self.where = where
        self.metadata: Any = None

    def keys(self) -> list[str]:
        raise NotImplementedError

    def entry(self, key: str) -> Entry:
        raise NotImplementedError

    def read(self, key: str) -> Any:
        """The value under ``key`` (a tensor for tensor entries), read now."""
        raise NotImplementedError

    def read_slice(self, key: str, box: tuple[tuple[int, int], ...]) -> Tensor:
        """The rectangle ``box`` ((offset, length) per dimension) of the tensor entry
        ``key``; readers that can read it alone do."""
        value: Tensor = self.read(key)
        return value[_slices(box)]

    def fail(self, message: str) -> InitCfgError:
        return InitCfgError.single(self.where, message)


class TorchReader(Reader):
    """A ``torch.save`` file, loaded with ``mmap=True`` so tensor data stays on disk."""

    def __init__(self, path: str, where: str, map_location: str | None, allow_pickle: bool) -> None:
        super().__init__(path, where)
        if (what := _not_a_torch_file(path)) is not None:
            raise self.fail(f"checkpoint {path!r} could not be read: {what}.")
        try:
            raw = _torch_load(path, map_location, allow_pickle)
        except Exception as error:  # torch raises many types for a file it cannot read
            text, reason = str(error), _torch_reason(error)
            if isinstance(error, pickle.UnpicklingError) and _OBJECTS.search(text):
                raise self.fail(
                    f"checkpoint {path!r} holds pickled objects that weights_only=True refuses "
                    f"to load ({reason}). If you trust this file, set allow_pickle: true in the "
                    f"rule (it can run arbitrary code); better, re-save it as a plain state_dict."
                ) from None
            if isinstance(error, EOFError) or _DAMAGED.search(text):
                reason = f"it is a torch file cut short or damaged ({reason})"
            elif isinstance(error, pickle.UnpicklingError) or _FOREIGN.search(text):
                reason = f"it is not what torch.save writes, or it is damaged ({reason})"
            raise self.fail(f"checkpoint {path!r} could not be read: {reason}.") from None
        state = raw["state_dict"] if isinstance(raw, Mapping) and "state_dict" in raw else raw
        if not isinstance(state, Mapping):
            raise self.fail(
                f"checkpoint {path!r} holds a {type(state).__name__}, not a state dict."
            )
        self.state = state
        self.metadata = getattr(state, "_metadata", None)

    def keys(self) -> list[str]:
        return [str(k) for k in self.state]

    def entry(self, key: str) -> Entry:
        value = self.state[key]
        if isinstance(value, Tensor):
            return Entry(tuple(value.shape), value.dtype, value.nelement() * value.element_size())
        return Entry(None, type(value).__name__)

    def read(self, key: str) -> Any:
        return self.state[key]


def _torch_reason(error: BaseException) -> str:
    """The sentence of torch's error that says what went wrong (not its advice)."""
    for line in str(error).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not _BOILERPLATE.match(line):
            return line.split(". ")[0].rstrip(".")
    return type(error).__name__


def _what_it_is(path: str) -> str | None:
    """Why the file at ``path`` cannot be any checkpoint (empty, a web page), if it cannot."""
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes); the download or copy that made it failed"
    with open(path, "rb") as file:
        head = file.read(_SNIFF).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return (
            "it is an HTML page, not a checkpoint (a login or error page saved in its place?); "
            "fetch the file itself"
        )
    return None


def _not_a_torch_file(path: str) -> str | None:
    """Why the file at ``path`` is no ``torch.save`` output, if it is not. A torch file is a
    zip archive (since torch 1.6) or, in the legacy format, starts with a pickle header."""
    if (what := _what_it_is(path)) is not None:
        return what
    with open(path, "rb") as file:
        head = file.read(_SNIFF)
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return None
    if len(head) < 2:
        return f"it is {len(head)} byte long, too short for a torch file (truncated?)"
    return (
        f"it is not a torch file (it starts with {head[:8]!r}, where a torch file starts with a "
        f"zip or pickle header)"
    )


def _torch_load(path: str, map_location: str | None, allow_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=not allow_pickle, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        # The legacy (pre-zip) format cannot be memory-mapped: read it whole.
        return torch.load(path, map_location=map_location, weights_only=not allow_pickle)


class SafetensorsReader(Reader):
    """A ``.safetensors`` file: header parsed now, each tensor read on demand."""

    def __init__(self, path: str, where: str, map_location: str | None) -> None:
        super().__init__(path, where)
        from safetensors import SafetensorError, safe_open

        device = "cpu" if map_location in (None, "cpu") else map_location
        try:
            self.file = safe_open(path, framework="pt", device=device)
            self._keys = list(self.file.keys())  # type: ignore[no-untyped-call]
        except (SafetensorError, OSError) as error:
            reason = _what_it_is(path) or str(error)
            raise self.fail(
                f"checkpoint {path!r} is not a readable safetensors file: {reason}."
            ) from None

    def keys(self) -> list[str]:
        return self._keys

    def entry(self, key: str) -> Entry:
        view = self.file.get_slice(key)  # type: ignore[no-untyped-call]
        shape = tuple(view.get_shape())
        code = view.get_dtype()
        dtype = _SAFETENSORS_DTYPES.get(code) or code
        size = torch.empty((), dtype=dtype).element_size() if isinstance(dtype, torch.dtype) else 0
        return Entry(shape, dtype, size * _numel(shape))

    def read(self, key: str) -> Tensor:
        return self.file.get_tensor(key)  # type: ignore[no-any-return, no-untyped-call]

    def read_slice(self, key: str, box: tuple[tuple[int, int], ...]) -> Tensor:
        view = self.file.get_slice(key)  # type: ignore[no-untyped-call]
        return view[_slices(box)]  # type: ignore[no-any-return]


def _slices(box: tuple[tuple[int, int], ...]) -> tuple[slice, ...]:
    return tuple(slice(offset, offset + length) for offset, length in box)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


class ShardedReader(Reader):
    """An index file (``*.safetensors.index.json`` / ``*.bin.index.json``) and its shards;
    a shard is opened only when one of its keys is asked for."""

    def __init__(self, path: str, where: str, map_location: str | None, allow_pickle: bool) -> None:
        super().__init__(path, where)
        self.options = (map_location, allow_pickle)
        try:
            with open(path, encoding="utf-8") as file:
                index = json.load(file)
            weight_map = index["weight_map"]
            assert isinstance(weight_map, dict)
        except RecursionError:
            raise self.fail(
                f"index {path!r} is not a checkpoint index (its JSON nests deeper than Python's "
                f"recursion limit of {sys.getrecursionlimit()}; an index is two levels deep)."
            ) from None
        except (OSError, ValueError, KeyError, TypeError, AssertionError) as error:
            raise self.fail(f"index {path!r} is not a checkpoint index ({error!r}).") from None
        self.weight_map = self._shard_files(weight_map)
        missing = sorted({f for f in self.weight_map.values() if not os.path.isfile(f)})
        if missing:
            raise self.fail(
                f"index {path!r} names shards that do not exist: {', '.join(missing)}; download "
                f"every shard next to the index."
            )
        self.shards: dict[str, Reader] = {}

    def _shard_files(self, weight_map: dict[Any, Any]) -> dict[str, str]:
        """Key → shard file, each shard checked to lie inside the index's folder (after
        symlinks; the folder the index itself resolves to counts too, as the Hugging Face
        cache links every file of a snapshot into its ``blobs/``) and to be no index."""
        folder = os.path.dirname(self.path)
        homes = {os.path.realpath(folder), os.path.dirname(os.path.realpath(self.path))}
        files: dict[str, str] = {}
        checked: dict[str, str] = {}
        for key, name in weight_map.items():
            if name not in checked:
                checked[name] = self._shard_file(folder, homes, str(key), name)
            files[str(key)] = checked[name]
        return files

    def _shard_file(self, folder: str, homes: set[str], key: str, name: Any) -> str:
        entry = f"index {self.path!r} maps {key!r} to {name!r}"
        if not isinstance(name, str) or not name or "\0" in name:
            raise self.fail(f"{entry}, which is not a file name.")
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise self.fail(
                f"{entry}: shards must be named relative to the index's folder, without '..'; "
                f"put the shard next to the index."
            )
        file = os.path.join(folder, name)
        real = os.path.realpath(file)
        if not any(os.path.commonpath([home, real]) == home for home in homes):
            raise self.fail(
                f"{entry}, a link to {real!r} outside the index's folder; copy the shard into "
                f"the folder instead of linking it."
            )
        if name.endswith(".json"):
            raise self.fail(f"{entry}, which is an index itself; a shard must be a weights file.")
        return file

    def _shard(self, key: str) -> Reader:
        file = self.weight_map[key]
        if file not in self.shards:
            self.shards[file] = _open_file(file, self.where, *self.options)
        return self.shards[file]

    def read_slice(self, key: str, box: tuple[tuple[int, int], ...]) -> Tensor:
        return self._shard(key).read_slice(key, box)

    def keys(self) -> list[str]:
        return list(self.weight_map)

    def entry(self, key: str) -> Entry:
        shard = self._shard(key)
        if key not in shard.keys():
            raise self.fail(f"index {self.path!r} puts {key!r} in {shard.path!r}, which lacks it.")
        return shard.entry(key)

    def read(self, key: str) -> Any:
        return self._shard(key).read(key)


def _open_file(path: str, where: str, map_location: str | None, allow_pickle: bool) -> Reader:
    if path.endswith(".index.json"):
        return ShardedReader(path, where, map_location, allow_pickle)
    if path.endswith(".safetensors"):
        return SafetensorsReader(path, where, map_location)
    return TorchReader(path, where, map_location, allow_pickle)


def resolve_path(path: str, where: str) -> str:
    """The checkpoint file for ``path``: the file itself, or the one file a directory holds."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise InitCfgError.single(
            where,
            f"checkpoint {path!r} does not exist (looked for {os.path.abspath(path)}); fix the "
            f"path or put the file there.",
        )
    for name in _DIRECTORY_NAMES:
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    found = sorted(n for n in os.listdir(path) if n.endswith(_SUFFIXES))
    indexes = [n for n in found if n.endswith(".index.json")]
    candidates = indexes or found
    if len(candidates) == 1:
        return os.path.join(path, candidates[0])
    listing = ", ".join(found) or "none"
    raise InitCfgError.single(
        where,
        f"directory {path!r} holds {len(candidates) or 'no'} checkpoint files ({listing}); name "
        f"the file in the rule.",
    )


def open_reader(path: str, where: str, map_location: str | None, allow_pickle: bool) -> Reader:
    """A reader for a checkpoint file, index or directory; errors name ``where``."""
    return _open_file(resolve_path(path, where), where, map_location, allow_pickle)
