"""Xavier, Kaiming, Caffe2Xavier and VarianceScaling (with LecunNormal, LecunUniform):
a std from the tensor's fans, drawn uniform, normal or truncated normal."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..cfg.builtin import Caffe2XavierInit, KaimingInit, XavierInit
from ..cfg.modern import (
    TRUNCATED_NORMAL_STD,
    LecunNormalInit,
    LecunUniformInit,
    VarianceScalingBase,
    VarianceScalingInit,
)
from ._common import kaiming_std, spread, truncated
from ._side import Moments, TorchSide, register
from .functions import trunc_normal_
from .normals import draw_normal, draw_trunc_normal
from .uniform import draw_uniform


def _xavier(init: XavierInit, weight: Tensor, generator: torch.Generator | None) -> None:
    uniform = init.distribution == "uniform"
    if init.fan_axes is None:  # torch's own function: MMEngine's bits
        xavier = nn.init.xavier_uniform_ if uniform else nn.init.xavier_normal_
        xavier(weight, gain=init.gain, generator=generator)
    elif weight.numel():
        fan_in, fan_out = init.fans(tuple(weight.shape))
        spread(weight, generator, init.gain * math.sqrt(2.0 / float(fan_in + fan_out)), uniform)


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


def _draw_by_distribution(init: XavierInit | KaimingInit, weight: Tensor) -> None:
    if init.distribution == "uniform":
        weight.uniform_()
    else:
        weight.normal_()


def _draw_variance_scaling(init: VarianceScalingBase, weight: Tensor) -> None:
    {"truncated_normal": draw_trunc_normal, "normal": draw_normal,
     "uniform": draw_uniform}[init.scaling()[2]](init, weight)  # fmt: skip


def _sample_xavier(
    init: XavierInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    fan_in, fan_out = init.fans(shape)
    std = init.gain * math.sqrt(2.0 / float(fan_in + fan_out))
    spread(values, g, std, init.distribution == "uniform")


def _sample_kaiming(
    init: KaimingInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    std = kaiming_std(init, shape, init.a, init.mode, init.nonlinearity)
    spread(values, g, std, init.distribution == "uniform")


def _sample_caffe2_xavier(
    init: Caffe2XavierInit, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    spread(values, g, kaiming_std(init, shape, 1, "fan_in", "leaky_relu"), True)


def _sample_variance_scaling(
    init: VarianceScalingBase, values: Tensor, g: torch.Generator, shape: tuple[int, ...]
) -> None:
    std = init.sample_std(shape)
    distribution = init.scaling()[2]
    if distribution == "truncated_normal":
        truncated(values, g, 0.0, 1.0, -2.0, 2.0)
        values.mul_(std / TRUNCATED_NORMAL_STD)
    else:
        spread(values, g, std, distribution == "uniform")


def _by_fans(std: Callable[[Any, tuple[int, ...], int, int], float]) -> Moments:
    """Moments ``(0, std)`` with the tensor's fans; None for pieces with fans of their own
    (``splits``) and for a shape the formula does not take."""

    def moments(init: Any, shape: tuple[int, ...]) -> tuple[float, float] | None:
        if init.splits is not None or isinstance(init.shape_problem(shape), str):
            return None
        fan_in, fan_out = init.fans(shape)
        return 0.0, std(init, shape, fan_in, fan_out)

    return moments


def _kaiming_std_of_fans(init: KaimingInit, shape: tuple[int, ...], fi: int, fo: int) -> float:
    gain = nn.init.calculate_gain(init.nonlinearity, init.a)
    return gain / math.sqrt(fi if init.mode == "fan_in" else fo)


register(
    XavierInit,
    TorchSide(
        _xavier,
        _draw_by_distribution,
        _by_fans(lambda init, shape, fi, fo: init.gain * math.sqrt(2.0 / (fi + fo))),
        _sample_xavier,
    ),
)
register(
    KaimingInit,
    TorchSide(_kaiming, _draw_by_distribution, _by_fans(_kaiming_std_of_fans), _sample_kaiming),
)
register(
    Caffe2XavierInit,  # Kaiming(a=1, fan_in, leaky_relu): gain 1
    TorchSide(
        _caffe2_xavier,
        draw_uniform,
        _by_fans(lambda init, shape, fi, fo: 1.0 / math.sqrt(fi)),
        _sample_caffe2_xavier,
    ),
)
for _cls in (VarianceScalingBase, VarianceScalingInit, LecunNormalInit, LecunUniformInit):
    register(
        _cls,
        TorchSide(
            _variance_scaling,
            _draw_variance_scaling,
            _by_fans(lambda init, shape, fi, fo: init.sample_std(shape)),
            _sample_variance_scaling,
        ),
    )
