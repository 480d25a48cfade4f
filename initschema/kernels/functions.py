"""MMEngine's initialization functions, with its signatures, defaults and RNG draws.

Module-level functions (``kaiming_init(module, ...)``) write ``module.weight``
then ``module.bias``, each only when present and not None, exactly as
``mmengine.model.weight_init`` does, so the same seed gives the same bits.
Every function takes an optional ``generator``; without one the global RNG is
used, which is what MMEngine parity needs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..cfg.weight_init import prior_bias

__all__ = [
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "kaiming_init",
    "normal_init",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "xavier_init",
]


def _tensor_attr(module: nn.Module, name: str) -> Tensor | None:
    value = getattr(module, name, None)
    if value is None or isinstance(value, Tensor):
        return value
    raise TypeError(
        f"{type(module).__name__}.{name} is a {type(value).__name__}, not a tensor; "
        f"initializers write only tensor attributes named 'weight' and 'bias'."
    )


def _write(module: nn.Module, fill_weight: Callable[[Tensor], object], bias: float) -> None:
    """MMEngine's order: ``weight`` by ``fill_weight``, then ``bias`` with the constant."""
    weight = _tensor_attr(module, "weight")
    if weight is not None:
        fill_weight(weight)
    tensor = _tensor_attr(module, "bias")
    if tensor is not None:
        nn.init.constant_(tensor, bias)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal{N}(mean, std^2)` truncated to ``[a, b]``.

    Inverse-CDF sampling: draw ``u ~ U(2·Φ(α)-1, 2·Φ(β)-1)`` with
    ``α = (a-mean)/std``, ``β = (b-mean)/std``, then ``x = mean + std·√2·erfinv(u)``,
    clamped to ``[a, b]``. One uniform draw per element, as MMEngine and timm.
    """

    def norm_cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn(
            "mean is more than 2 std from [a, b] in trunc_normal_; "
            "the distribution of values may be incorrect.",
            stacklevel=2,
        )
    with torch.no_grad():
        lower = norm_cdf((a - mean) / std)
        upper = norm_cdf((b - mean) / std)
        tensor.uniform_(2 * lower - 1, 2 * upper - 1, generator=generator)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor


def constant_init(module: nn.Module, val: float, bias: float = 0) -> None:
    """Fill ``module.weight`` with ``val`` and ``module.bias`` with ``bias``."""
    _write(module, lambda w: nn.init.constant_(w, val), bias)


def xavier_init(
    module: nn.Module,
    gain: float = 1,
    bias: float = 0,
    distribution: str = "normal",
    *,
    generator: torch.Generator | None = None,
) -> None:
    """Glorot & Bengio (2010): ``std = gain·√(2/(fan_in+fan_out))``, normal or uniform."""
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
    xavier = nn.init.xavier_uniform_ if distribution == "uniform" else nn.init.xavier_normal_
    _write(module, lambda w: xavier(w, gain=gain, generator=generator), bias)


def normal_init(
    module: nn.Module,
    mean: float = 0,
    std: float = 1,
    bias: float = 0,
    *,
    generator: torch.Generator | None = None,
) -> None:
    """Fill ``module.weight`` from ``N(mean, std²)`` and ``module.bias`` with ``bias``."""
    _write(module, lambda w: nn.init.normal_(w, mean, std, generator=generator), bias)


def trunc_normal_init(
    module: nn.Module,
    mean: float = 0,
    std: float = 1,
    a: float = -2,
    b: float = 2,
    bias: float = 0,
    *,
    generator: torch.Generator | None = None,
) -> None:
    """Fill ``module.weight`` with :func:`trunc_normal_` and ``module.bias`` with ``bias``."""
    _write(module, lambda w: trunc_normal_(w, mean, std, a, b, generator=generator), bias)


def uniform_init(
    module: nn.Module,
    a: float = 0,
    b: float = 1,
    bias: float = 0,
    *,
    generator: torch.Generator | None = None,
) -> None:
    """Fill ``module.weight`` from ``U(a, b)`` and ``module.bias`` with ``bias``."""
    _write(module, lambda w: nn.init.uniform_(w, a, b, generator=generator), bias)


def kaiming_init(
    module: nn.Module,
    a: float = 0,
    mode: str = "fan_out",
    nonlinearity: str = "relu",
    bias: float = 0,
    distribution: str = "normal",
    *,
    generator: torch.Generator | None = None,
) -> None:
    """He et al. (2015): ``std = gain(nonlinearity, a)/√fan_mode``, normal or uniform."""
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
    kaiming = nn.init.kaiming_uniform_ if distribution == "uniform" else nn.init.kaiming_normal_
    _write(
        module,
        lambda w: kaiming(w, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator),  # type: ignore[arg-type]
        bias,
    )


def caffe2_xavier_init(
    module: nn.Module, bias: float = 0, *, generator: torch.Generator | None = None
) -> None:
    """Caffe2's "Xavier": ``kaiming_uniform_(a=1, mode='fan_in', nonlinearity='leaky_relu')``."""
    kaiming_init(
        module,
        a=1,
        mode="fan_in",
        nonlinearity="leaky_relu",
        bias=bias,
        distribution="uniform",
        generator=generator,
    )


def bias_init_with_prob(prior_prob: float) -> float:
    """The bias ``-log((1-p)/p)`` making a sigmoid output ``p`` (focal loss, Lin et al. 2017),
    with numpy's log, bit for bit as MMEngine computes it."""
    return prior_bias(prior_prob)
