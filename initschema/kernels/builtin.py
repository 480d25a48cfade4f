"""The built-ins' torch side at work: a tensor written as an initializer says, what a write
that a later one overwrites must still draw, whether a user's own code runs, and the
moments a weight should have. Each built-in's kernel, draw, seeded sampler and moments
live together in its family's file (``constants``, ``normals``, ``uniform``, ``fans``,
``structured``), registered with its config class; MMEngine's module-level functions
(``kaiming_init(module, ...)``) live in :mod:`initschema.kernels.functions` and are
re-exported here."""

from __future__ import annotations

import torch
from torch import Tensor

from ..cfg.weight_init import WeightInit
from . import constants, fans, normals, structured, uniform  # noqa: F401  (the built-ins)
from ._common import kaiming_std, spread
from ._side import FILLS, Kernel, Sampler, draw_nothing, pieces, side_of
from .functions import (
    bias_init_with_prob,
    caffe2_xavier_init,
    constant_init,
    kaiming_init,
    normal_init,
    trunc_normal_,
    trunc_normal_init,
    uniform_init,
    xavier_init,
)

__all__ = [
    "FILLS",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "draw_tensor",
    "draws_nothing",
    "kaiming_init",
    "kaiming_std",
    "kernel_for",
    "moments_of",
    "normal_init",
    "pieces",
    "runs_user_code",
    "sampler_of",
    "spread",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "write_tensor",
    "xavier_init",
]


def write_tensor(
    init: WeightInit, name: str, tensor: Tensor, generator: torch.Generator | None = None
) -> None:
    """Write one tensor of a module as ``init`` says (under ``torch.no_grad()``): ``'weight'``
    by its formula, ``'bias'`` with its constant."""
    with torch.no_grad():
        if name == "weight":
            kernel_for(init)(init, tensor, generator)
        else:
            tensor.fill_(init.bias_value)


_KERNEL_OF: dict[type, Kernel] = {}


def kernel_for(init: WeightInit) -> Kernel:
    """The function that writes ``init``'s weights, to be called under ``torch.no_grad()``:
    the built-in kernel of its class (piece by piece with ``splits``), or its own
    ``init_weight`` (a user initializer)."""
    cls = type(init)
    if cls not in _KERNEL_OF:
        kernel = None
        if cls.init_weight is WeightInit.init_weight and (side := side_of(cls)) is not None:
            kernel = side.split_kernel
        _KERNEL_OF[cls] = kernel or _own_init_weight
    return _KERNEL_OF[cls]


def _own_init_weight(init: WeightInit, weight: Tensor, generator: torch.Generator | None) -> None:
    init.init_weight(weight, generator)


def runs_user_code(init: WeightInit) -> bool:
    """Whether writing ``init``'s weights runs a user initializer's own ``init_weight``
    (which may read the tensor, or anything else)."""
    return kernel_for(init) is _own_init_weight


def draws_nothing(init: WeightInit, name: str) -> bool:
    """Whether writing tensor ``name`` as ``init`` says uses no random numbers."""
    if name != "weight":
        return True
    side = side_of(type(init), exact=True)
    return side is not None and side.draw is draw_nothing


def draw_tensor(init: WeightInit, name: str, tensor: Tensor) -> None:
    """What a write that a later one overwrites must still do: draw the random numbers the
    full write draws (the global RNG then advances exactly as MMEngine's does), and nothing
    else. Biases and constants draw nothing; user initializers are written in full."""
    if name != "weight":
        return
    cls = type(init)
    side = side_of(cls, exact=True) if cls.init_weight is WeightInit.init_weight else None
    if side is None or tensor.numel() == 0:
        kernel_for(init)(init, tensor, None)
    else:
        for piece in pieces(init, tensor):
            side.draw(init, piece)


def sampler_of(cls: type[WeightInit]) -> Sampler | None:
    """The built-in elementwise sampler of ``cls`` (seeded mode), None where it has none."""
    side = side_of(cls)
    return None if side is None else side.sampler


def moments_of(init: WeightInit, shape: tuple[int, ...]) -> tuple[float, float] | None:
    """``(mean, std)`` the built-in formula of ``init`` gives a weight of ``shape``; None
    where it has none (Dirac, Eye, pieces with fans of their own, a shape it refuses)."""
    side = side_of(type(init))
    return None if side is None or side.moments is None else side.moments(init, shape)
