"""The kernels: what each built-in initializer writes into a tensor, with the same tensor
operations ``torch.nn.init`` makes (so the same bits), and what an overwritten write must
still draw. MMEngine's module-level functions (``kaiming_init(module, ...)``) live in
:mod:`initschema.kernels.functions` and are re-exported here."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..cfg.builtin import (
    Caffe2XavierInit,
    ConstantInit,
    KaimingInit,
    NormalInit,
    TruncNormalInit,
    UniformInit,
    XavierInit,
)
from ..cfg.formulas import FanInit, FormulaInit
from ..cfg.initializer import KERNELS, WeightInit
from ..cfg.modern import (
    TRUNCATED_NORMAL_STD,
    DiracInit,
    EyeInit,
    LecunNormalInit,
    LecunUniformInit,
    OnesInit,
    OrthogonalInit,
    SmallInit,
    VarianceScalingBase,
    VarianceScalingInit,
    WangInit,
    ZerosInit,
)
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
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "draw_tensor",
    "draws_nothing",
    "kaiming_init",
    "kaiming_std",
    "kernel_for",
    "normal_init",
    "pieces",
    "runs_user_code",
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


Kernel = Callable[[Any, Tensor, "torch.Generator | None"], None]
_KERNEL_OF: dict[type, Kernel] = {}


def kernel_for(init: WeightInit) -> Kernel:
    """The function that writes ``init``'s weights, to be called under ``torch.no_grad()``:
    the built-in kernel of its class (piece by piece with ``splits``), or its own
    ``init_weight`` (a user initializer)."""
    cls = type(init)
    if cls not in _KERNEL_OF:
        kernel = None
        if cls.init_weight is WeightInit.init_weight:
            kernel = next((_SPLIT[c] for c in cls.__mro__ if c in _SPLIT), None)
        _KERNEL_OF[cls] = kernel or _own_init_weight
    return _KERNEL_OF[cls]


def _own_init_weight(init: WeightInit, weight: Tensor, generator: torch.Generator | None) -> None:
    init.init_weight(weight, generator)


def runs_user_code(init: WeightInit) -> bool:
    """Whether writing ``init``'s weights runs a user initializer's own ``init_weight``
    (which may read the tensor, or anything else)."""
    return kernel_for(init) is _own_init_weight


def pieces(init: WeightInit, tensor: Tensor) -> tuple[Tensor, ...]:
    """The views of ``tensor`` that ``init``'s ``splits`` cut it into (itself without)."""
    splits = getattr(init, "splits", None)
    if splits is None:
        return (tensor,)
    assert isinstance(init, FormulaInit)
    return torch.split(tensor, list(splits), dim=init.split_dim)


def draws_nothing(init: WeightInit, name: str) -> bool:
    """Whether writing tensor ``name`` as ``init`` says uses no random numbers."""
    return name != "weight" or _DRAWS.get(type(init)) is _draw_nothing


def draw_tensor(init: WeightInit, name: str, tensor: Tensor) -> None:
    """What a write that a later one overwrites must still do: draw the random numbers the
    full write draws (the global RNG then advances exactly as MMEngine's does), and nothing
    else. Biases and constants draw nothing; user initializers are written in full."""
    if name != "weight":
        return
    cls = type(init)
    draw = _DRAWS.get(cls) if cls.init_weight is WeightInit.init_weight else None
    if draw is None or tensor.numel() == 0:
        kernel_for(init)(init, tensor, None)
    else:
        for piece in pieces(init, tensor):
            draw(init, piece)


# The built-in initializers' formulas, by class. Called under torch.no_grad() (the
# executor runs under it; ``init_weight`` calls them through _guarded), with the same
# tensor operations torch.nn.init makes, so the same bits.


def _constant(init: ConstantInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.fill_(init.val)


def spread(weight: Tensor, generator: torch.Generator | None, std: float, uniform: bool) -> None:
    """torch.nn.init's draw for a std: ``U(±√3·std)`` or ``N(0, std²)``."""
    if uniform:
        bound = math.sqrt(3.0) * std
        weight.uniform_(-bound, bound, generator=generator)
    else:
        weight.normal_(0.0, std, generator=generator)


def _xavier(init: XavierInit, weight: Tensor, generator: torch.Generator | None) -> None:
    uniform = init.distribution == "uniform"
    if init.fan_axes is None:  # torch's own function: MMEngine's bits
        xavier = nn.init.xavier_uniform_ if uniform else nn.init.xavier_normal_
        xavier(weight, gain=init.gain, generator=generator)
    elif weight.numel():
        fan_in, fan_out = init.fans(tuple(weight.shape))
        spread(weight, generator, init.gain * math.sqrt(2.0 / float(fan_in + fan_out)), uniform)


def _normal(init: NormalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.normal_(init.mean, init.scaled_std, generator=generator)


def _trunc_normal(init: TruncNormalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    if init.bounds == "std":  # timm's trunc_normal_tf_: N(0, 1) on [a, b], then ·std + mean
        trunc_normal_(weight, 0.0, 1.0, init.a, init.b, generator=generator)
        weight.mul_(init.scaled_std).add_(init.mean)
    else:
        trunc_normal_(weight, init.mean, init.scaled_std, init.a, init.b, generator=generator)


def _uniform(init: UniformInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.uniform_(init.a, init.b, generator=generator)


def kaiming_std(
    init: FanInit, shape: tuple[int, ...], a: float, mode: str, nonlinearity: str
) -> float:
    """torch.nn.init's Kaiming std ``gain(nonlinearity, a)/√fan`` with ``init``'s fans."""
    fan_in, fan_out = init.fans(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = nn.init.calculate_gain(nonlinearity, a)  # type: ignore[arg-type]
    return gain / math.sqrt(fan) if fan else math.inf


def _kaiming(init: KaimingInit, weight: Tensor, generator: torch.Generator | None) -> None:
    uniform = init.distribution == "uniform"
    if init.fan_axes is None:  # torch's own function: MMEngine's bits
        kaiming = nn.init.kaiming_uniform_ if uniform else nn.init.kaiming_normal_
        kaiming(
            weight, a=init.a, mode=init.mode, nonlinearity=init.nonlinearity, generator=generator
        )
    elif weight.numel():
        std = kaiming_std(init, tuple(weight.shape), init.a, init.mode, init.nonlinearity)
        spread(weight, generator, std, uniform)


def _caffe2_xavier(
    init: Caffe2XavierInit, weight: Tensor, generator: torch.Generator | None
) -> None:
    if init.fan_axes is None:
        nn.init.kaiming_uniform_(
            weight, a=1, mode="fan_in", nonlinearity="leaky_relu", generator=generator
        )
    elif weight.numel():
        std = kaiming_std(init, tuple(weight.shape), 1, "fan_in", "leaky_relu")
        spread(weight, generator, std, True)


def _zeros(init: ZerosInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.zero_()


def _ones(init: OnesInit, weight: Tensor, generator: torch.Generator | None) -> None:
    weight.fill_(1)


_QR_DTYPES = (torch.float32, torch.float64)
"""Dtypes torch's CPU QR takes; orthogonal matrices of others are computed in float32."""


def _orthogonal(init: OrthogonalInit, weight: Tensor, generator: torch.Generator | None) -> None:
    if weight.dtype in _QR_DTYPES or weight.is_meta:
        nn.init.orthogonal_(weight, init.gain, generator=generator)
    else:  # torch's QR has no half kernels: the same draws and matrix in float32
        full = torch.empty(weight.shape, dtype=torch.float32, device=weight.device)
        nn.init.orthogonal_(full, init.gain, generator=generator)
        weight.copy_(full)


def _dirac(init: DiracInit, weight: Tensor, generator: torch.Generator | None) -> None:
    nn.init.dirac_(weight, init.groups)


def _eye(init: EyeInit, weight: Tensor, generator: torch.Generator | None) -> None:
    nn.init.eye_(weight)


def _variance_scaling(
    init: VarianceScalingBase, weight: Tensor, generator: torch.Generator | None
) -> None:
    if not weight.numel():
        return
    std = init.sample_std(tuple(weight.shape))
    distribution = init.scaling()[2]
    if distribution == "truncated_normal":  # JAX: truncated_normal(-2, 2) · std/0.8796…
        trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0, generator=generator)
        weight.mul_(std / TRUNCATED_NORMAL_STD)
    else:
        spread(weight, generator, std, distribution == "uniform")


def _normal_of_std(
    init: SmallInit | WangInit, weight: Tensor, generator: torch.Generator | None
) -> None:
    weight.normal_(0.0, init.std, generator=generator)


def _guarded(kernel: Kernel) -> Kernel:
    """``kernel`` under ``torch.no_grad()``: what ``init_weight`` runs when called directly."""

    def init_weight(init: Any, weight: Tensor, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            kernel(init, weight, generator)

    return init_weight


def _in_pieces(kernel: Kernel) -> Kernel:
    """``kernel`` applied to each piece ``splits`` cuts a tensor into, in order, from one
    generator (to the whole tensor without ``splits``)."""

    def write(init: Any, weight: Tensor, generator: torch.Generator | None) -> None:
        if init.splits is None:
            kernel(init, weight, generator)
            return
        for piece in pieces(init, weight):
            kernel(init, piece, generator)

    return write


def _draw_trunc_normal(init: WeightInit, weight: Tensor) -> None:
    # The uniform draw of trunc_normal_; erfinv, scaling and clamping only transform it.
    weight.uniform_(-1.0, 1.0)


def _draw_uniform(init: WeightInit, weight: Tensor) -> None:
    weight.uniform_()


def _draw_normal(init: WeightInit, weight: Tensor) -> None:
    weight.normal_()


def _draw_nothing(init: WeightInit, weight: Tensor) -> None:
    pass


def _draw_by_distribution(init: XavierInit | KaimingInit, weight: Tensor) -> None:
    if init.distribution == "uniform":
        weight.uniform_()
    else:
        weight.normal_()


def _draw_variance_scaling(init: VarianceScalingBase, weight: Tensor) -> None:
    {"truncated_normal": _draw_trunc_normal, "normal": _draw_normal,
     "uniform": _draw_uniform}[init.scaling()[2]](init, weight)  # fmt: skip


def _draw_orthogonal(init: OrthogonalInit, weight: Tensor) -> None:
    # orthogonal_ draws a (rows, numel/rows) standard normal matrix, fresh and contiguous,
    # in the dtype it computes in; QR and the sign fix draw nothing.
    rows = weight.shape[0]
    dtype = weight.dtype if weight.dtype in _QR_DTYPES else torch.float32
    torch.empty((rows, weight.numel() // rows), dtype=dtype, device=weight.device).normal_()


# How many numbers each draws, and from which distribution, never depends on its
# arguments (bounds, std, fans): only on the tensor (and, for VarianceScaling, which
# distribution). So drawing with defaults advances the generator exactly as the full
# write does.
_DRAWS: dict[type, Callable[[Any, Tensor], None]] = {
    ConstantInit: _draw_nothing,
    XavierInit: _draw_by_distribution,
    NormalInit: _draw_normal,
    TruncNormalInit: _draw_trunc_normal,
    UniformInit: _draw_uniform,
    KaimingInit: _draw_by_distribution,
    Caffe2XavierInit: _draw_uniform,
    ZerosInit: _draw_nothing,
    OnesInit: _draw_nothing,
    OrthogonalInit: _draw_orthogonal,
    DiracInit: _draw_nothing,
    EyeInit: _draw_nothing,
    VarianceScalingInit: _draw_variance_scaling,
    LecunNormalInit: _draw_variance_scaling,
    LecunUniformInit: _draw_variance_scaling,
    SmallInit: _draw_normal,
    WangInit: _draw_normal,
}

_RAW: dict[type, Kernel] = {
    ConstantInit: _constant,
    XavierInit: _xavier,
    NormalInit: _normal,
    TruncNormalInit: _trunc_normal,
    UniformInit: _uniform,
    KaimingInit: _kaiming,
    Caffe2XavierInit: _caffe2_xavier,
    ZerosInit: _zeros,
    OnesInit: _ones,
    OrthogonalInit: _orthogonal,
    DiracInit: _dirac,
    EyeInit: _eye,
    VarianceScalingBase: _variance_scaling,
    SmallInit: _normal_of_std,
    WangInit: _normal_of_std,
}
"""The formula of each class for one tensor (or one piece of a split one)."""

_SPLIT: dict[type, Kernel] = {cls: _in_pieces(kernel) for cls, kernel in _RAW.items()}
KERNELS.update({cls: _guarded(kernel) for cls, kernel in _SPLIT.items()})
