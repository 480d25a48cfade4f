"""Functional kernels: same signatures, defaults and draws as MMEngine's."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
from initschema_testing.functions import NAMES


def _params(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [
        (p.name, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_mmengine(mm: Any, name: str) -> None:
    """Positional parameters and defaults are MMEngine's (generator is keyword-only extra)."""
    from mmengine.model import weight_init

    assert _params(getattr(ins, name)) == _params(getattr(weight_init, name))


CALLS: list[tuple[str, dict[str, Any]]] = [
    ("constant_init", dict(val=0.3, bias=2)),
    ("xavier_init", dict(gain=2, distribution="uniform")),
    ("xavier_init", dict()),
    ("normal_init", dict(mean=1, std=0.5, bias=0.1)),
    ("trunc_normal_init", dict(std=0.02, a=-0.1, b=0.05)),
    ("uniform_init", dict(a=-2, b=3)),
    ("kaiming_init", dict(mode="fan_in", nonlinearity="leaky_relu", a=0.2)),
    ("kaiming_init", dict(distribution="uniform")),
    ("caffe2_xavier_init", dict(bias=0.5)),
]


@pytest.mark.parametrize(("name", "kwargs"), CALLS)
def test_same_values_as_mmengine(mm: Any, name: str, kwargs: dict[str, Any]) -> None:
    """Same seed, same bits."""
    from mmengine.model import weight_init

    out = []
    for fn in (getattr(ins, name), getattr(weight_init, name)):
        conv = nn.Conv2d(4, 6, 3)
        torch.manual_seed(0)
        fn(conv, **kwargs)
        out.append((conv.weight.detach().clone(), conv.bias.detach().clone()))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


def test_bias_init_with_prob(mm: Any) -> None:
    """The focal-loss prior bias is MMEngine's value."""
    from mmengine.model import weight_init

    for p in (0.01, 0.1, 0.5, 0.999):
        assert ins.bias_init_with_prob(p) == pytest.approx(
            weight_init.bias_init_with_prob(p), abs=1e-15
        )
    with pytest.raises(ValueError, match=r"prior_prob must be in \(0, 1\)"):
        ins.bias_init_with_prob(1.0)


def test_generator_makes_draws_independent_of_global_rng() -> None:
    """With a generator, the global RNG is neither used nor advanced."""
    a, b = torch.empty(100), torch.empty(100)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    ins.trunc_normal_(a, std=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())
    ins.trunc_normal_(b, std=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.abs().max() <= 2


def test_non_tensor_weight_is_a_type_error() -> None:
    """A 'weight' that is not a tensor is refused with the module named."""
    module = nn.Module()
    module.weight = 3  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"Module\.weight is a int, not a tensor"):
        ins.normal_init(module)


def test_bad_distribution() -> None:
    """An unknown distribution is a ValueError, not an assert."""
    with pytest.raises(ValueError, match="distribution must be 'uniform' or 'normal'"):
        ins.xavier_init(nn.Linear(2, 2), distribution="gauss")
