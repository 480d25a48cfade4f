"""Seeded values addressable by element: the same weights at any world size.

Stream ``tiles-v1``: the flattened *logical* (unsharded) tensor is cut into tiles of
:data:`TILE` elements. Tile ``t`` of the tensor at canonical path ``p`` holds what the
initializer's elementwise formula draws into a fresh tile of that length from a
``torch.Generator`` seeded with ``sha256(seed, p, t)``. A rank holding a shard (any
``Shard``/``Replicate`` placement on a 1-D or 2-D mesh, uneven splits included) draws
only the tiles its elements fall in and keeps its elements: its values are bitwise a
slice of the single-process result, with no communication.

Costs: a shard that is one contiguous range of the flattened tensor (``Shard(0)``, what
FSDP2 does) draws its own elements plus at most two partial tiles; ``Shard(d>0)``
draws every tile its rows cross, up to the whole tensor. Memory stays one tile beyond
the shard. An initializer that is not elementwise (Orthogonal, Dirac, Eye, any with
``splits``, a user one without :meth:`~initschema.WeightInit.init_values`) computes the
whole logical tensor from one generator and keeps its slice.

Fans always come from the logical shape. Low-precision floats (float16, bfloat16) are
drawn in float32 and rounded; float64 tensors are drawn in float64.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..cfg.weight_init import WeightInit
from ..kernels.builtin import FILLS, kernel_for, sampler_of
from .placement import PLAIN, Box, local_box

__all__ = ["STREAM", "TILE", "elementwise", "fill_box", "fill_seeded", "seed_for"]

STREAM = "tiles-v1"
"""The version of the seeded streams: values are reproducible from (seed, stream, path)."""

TILE = 1 << 16
"""Elements per tile. Part of the stream: changing it changes every value."""


def seed_for(seed: int, path: str, tile: int | None = None) -> int:
    """A 63-bit seed derived from ``(seed, path)`` (and a tile index), the same on every
    run and machine."""
    text = f"{seed}:{path}" if tile is None else f"{seed}:{path}:{tile}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


Sampler = Callable[[Any, Tensor, torch.Generator, tuple[int, ...]], None]
"""Fills a flat tile with an initializer's values for a tensor of the given logical shape."""


def elementwise(init: WeightInit) -> bool:
    """Whether ``init``'s seeded values are drawn element by element (so a shard is drawn
    alone), rather than computed over the whole tensor."""
    return _sampler(init) is not None


def fill_seeded(init: WeightInit, name: str, tensor: Tensor, seed: int, path: str) -> None:
    """Write ``tensor`` (plain, or this process's shard of a DTensor) as ``init`` says, from
    the stream of ``(seed, path)``. Under ``torch.no_grad()``."""
    if type(tensor) in PLAIN:
        if name != "weight":
            tensor.fill_(init.bias_value)
            return
        sampler = _sampler(init)
        if (
            sampler is not None
            and sampler not in FILLS
            and 0 < tensor.numel() <= TILE
            and tensor.dtype in _DRAWN
            and tensor.is_contiguous()
        ):  # one tile, drawn in place: what _tiles does, without its bookkeeping
            generator = torch.Generator(device=tensor.device)
            generator.manual_seed(seed_for(seed, path, 0))
            sampler(init, tensor.view(-1), generator, tuple(tensor.shape))
            return
    local, shape, box = local_box(tensor, path)
    fill_box(init, name, local, shape, box, seed, path)


def fill_box(
    init: WeightInit,
    name: str,
    local: Tensor,
    shape: tuple[int, ...],
    box: Box,
    seed: int,
    path: str,
) -> None:
    """Write ``local``, the ``box`` of a logical tensor of ``shape``, from the stream."""
    if name != "weight":
        local.fill_(init.bias_value)
        return
    sampler = _sampler(init)
    if sampler is None:  # position-dependent (Dirac, Eye) or drawn whole (Orthogonal)
        _whole(init, local, shape, box, seed, path)
        return
    if sampler in FILLS:  # a constant: the same wherever an element sits
        kernel_for(init)(init, local, None)
        return
    if local.numel() == 0:
        return
    _tiles(lambda values, g: sampler(init, values, g, shape), local, shape, box, seed, path)


def _whole(
    init: WeightInit, local: Tensor, shape: tuple[int, ...], box: Box, seed: int, path: str
) -> None:
    """Not elementwise: the whole logical tensor from one generator; this shard's part."""
    generator = torch.Generator(device=local.device)
    generator.manual_seed(seed_for(seed, path))
    if tuple(local.shape) == shape:
        kernel_for(init)(init, local, generator)
        return
    full = torch.empty(shape, dtype=local.dtype, device=local.device)
    kernel_for(init)(init, full, generator)
    local.copy_(full[tuple(slice(o, o + n) for o, n in box)])


_DRAWN = (torch.float32, torch.float64)
"""Dtypes drawn in; the others are drawn in float32 and rounded."""


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in _DRAWN else torch.float32


def _tiles(
    draw: Callable[[Tensor, torch.Generator], None],
    local: Tensor,
    shape: tuple[int, ...],
    box: Box,
    seed: int,
    path: str,
) -> None:
    """Fill ``local`` (the box of the logical tensor) tile by tile."""
    total = math.prod(shape)
    dtype = _compute_dtype(local.dtype)
    out = local if local.is_contiguous() and local.dtype == dtype else None
    flat = (out if out is not None else torch.empty(local.shape, dtype=dtype,
                                                    device=local.device)).view(-1)  # fmt: skip
    starts, length = _runs(shape, box)
    generator = torch.Generator(device=local.device)
    scratch: Tensor | None = None
    for tile in _tiles_crossed(starts, length):
        low, high = tile * TILE, min(total, (tile + 1) * TILE)
        generator.manual_seed(seed_for(seed, path, tile))
        # Runs crossing [low, high): from the first ending after low to the last starting
        # before high.
        begin = bisect.bisect_right(starts, low - length)
        end = bisect.bisect_left(starts, high)
        if end - begin == 1 and starts[begin] <= low and starts[begin] + length >= high:
            at = begin * length + low - starts[begin]
            draw(flat[at : at + high - low], generator)  # the whole tile is ours: in place
            continue
        if scratch is None or scratch.numel() != high - low:
            scratch = torch.empty(high - low, dtype=dtype, device=local.device)
        draw(scratch, generator)
        _scatter(scratch, flat, starts, length, begin, end, low, high)
    if out is None:
        local.copy_(flat.view(local.shape))


def _tiles_crossed(starts: list[int], length: int) -> list[int]:
    """The tiles the runs cross, ascending (tiles in the gaps between runs are not drawn)."""
    if len(starts) == 1:
        return list(range(starts[0] // TILE, (starts[0] + length - 1) // TILE + 1))
    tiles: list[int] = []
    for start in starts:
        first = start // TILE
        if tiles and tiles[-1] >= first:
            first = tiles[-1] + 1
        tiles.extend(range(first, (start + length - 1) // TILE + 1))
    return tiles


def _scatter(
    tile: Tensor,
    flat: Tensor,
    starts: list[int],
    length: int,
    begin: int,
    end: int,
    low: int,
    high: int,
) -> None:
    """Copy the elements of runs ``begin..end`` that lie in the tile ``[low, high)``."""

    def cut(run: int) -> bool:
        return starts[run] < low or starts[run] + length > high

    def copy_part(run: int) -> None:
        start = starts[run]
        a, b = max(start, low), min(start + length, high)
        at = run * length + a - start
        flat[at : at + b - a].copy_(tile[a - low : b - low])

    first_cut = cut(begin)
    last_cut = end - 1 > begin and cut(end - 1)
    if first_cut:
        copy_part(begin)
    if last_cut:
        copy_part(end - 1)
    inner_begin, inner_end = begin + first_cut, end - last_cut
    if inner_end - inner_begin <= 0:
        return
    if inner_end - inner_begin <= 4:
        for run in range(inner_begin, inner_end):
            at, start = run * length, starts[run] - low
            flat[at : at + length].copy_(tile[start : start + length])
        return
    first = torch.tensor(starts[inner_begin:inner_end], device=tile.device) - low
    index = (first[:, None] + torch.arange(length, device=tile.device)).view(-1)
    flat[inner_begin * length : inner_end * length].copy_(tile[index])


def _runs(shape: tuple[int, ...], box: Box) -> tuple[list[int], int]:
    """The box as runs of consecutive flat indices: every run's start (ascending), and
    the run length. The last dimensions the box spans whole make one run."""
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    cut = len(shape) - 1
    while cut >= 0 and box[cut] == (0, shape[cut]):
        cut -= 1
    if cut < 0:
        return [0], math.prod(shape)
    length = box[cut][1] * strides[cut]
    starts = [box[cut][0] * strides[cut]]
    for dim in range(cut - 1, -1, -1):
        offset, count = box[dim]
        starts = [(offset + i) * strides[dim] + s for i in range(count) for s in starts]
    return starts, length


def _own_values(init: Any, values: Tensor, g: torch.Generator, shape: tuple[int, ...]) -> None:
    init.init_values(values, g, shape)


def _sampler(init: WeightInit) -> Sampler | None:
    """How ``init`` draws elementwise: a user initializer's own ``init_values``, or the
    built-in formula of its class (when it does not replace ``init_weight``); None for
    one computed whole, and for any written piece by piece (``splits``)."""
    if getattr(init, "splits", None) is not None:
        return None
    cls = type(init)
    if cls not in _SAMPLER_OF:
        if cls.init_values is not WeightInit.init_values:
            _SAMPLER_OF[cls] = _own_values
        elif cls.init_weight is not WeightInit.init_weight:
            _SAMPLER_OF[cls] = None
        else:
            _SAMPLER_OF[cls] = sampler_of(cls)
    return _SAMPLER_OF[cls]


_SAMPLER_OF: dict[type, Sampler | None] = {}
