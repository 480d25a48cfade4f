"""What a write must satisfy, checked at compile time before anything is written: a
rule's formula against each tensor's shape, its constants against each tensor's dtype,
and a Call rule's method against the module's class."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from ..cfg.weight_init import WeightInit
from ..errors import did_you_mean

__all__ = ["call_problem", "signature", "tensor_problems", "write_problems"]


def signature(value: object) -> tuple[Any, ...]:
    """What decides whether a write to ``value`` can fail: its type, dtype and shape (the
    pieces of ``splits`` fit one size of a dimension and not another)."""
    if isinstance(value, Tensor):
        return (Tensor, value.dtype, tuple(value.shape))
    return (type(value), None, None)


def write_problems(init: WeightInit, module: nn.Module) -> list[str]:
    """Why ``init`` could not write ``module`` (before any write): a weight or bias that is
    no tensor, a constant its dtype cannot hold, a fan-based formula on a 1-D weight."""
    found = []
    for name in ("weight", "bias"):
        value = getattr(module, name, None)
        if value is not None and not isinstance(value, Tensor):
            found.append(
                f"{type(module).__name__}.{name} is a {type(value).__name__}, not a tensor, "
                f"so {init.type_name} cannot write it"
            )
    for name in ("weight", "bias"):
        tensor = getattr(module, name, None)
        if isinstance(tensor, Tensor):
            found += _unfit_constants(init, name, tensor, f"{type(module).__name__}.{name}")
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and (problem := init.shape_problem(tuple(weight.shape))):
        found.append(
            f"{problem} ({type(module).__name__}.weight); select this module with `layer` "
            f"or give it its own override rule"
        )
    return found


def tensor_problems(init: WeightInit, owner: nn.Module, names: list[str]) -> list[str]:
    """Why ``init``'s formula could not write the tensors ``names`` of ``owner``."""
    found = []
    for name in names:
        tensor = getattr(owner, name)
        where = f"{type(owner).__name__}.{name}"
        if problem := init.shape_problem(tuple(tensor.shape)):
            found.append(f"{problem} ({where})")
        found += _unfit_constants(init, "weight", tensor, where)
    return found


def _unfit_constants(init: WeightInit, role: str, tensor: Tensor, where: str) -> list[str]:
    """The constants ``init`` writes as ``role`` (``'weight'``/``'bias'``) that ``tensor``'s
    dtype cannot hold; ``where`` names the tensor."""
    if not tensor.is_floating_point():
        return []
    info = torch.finfo(tensor.dtype)
    return [
        f"{what}={value:g} does not fit {where} ({str(tensor.dtype).removeprefix('torch.')}, "
        f"which holds magnitudes up to {info.max:g}); give a value within ±{info.max:g}"
        for what, value in init.constants(role)
        if abs(value) > info.max
    ]


def call_problem(module: nn.Module, name: str) -> str | None:
    """Why a Call rule cannot run ``module``'s method ``name``, or None. Looked up on the
    class, so that no property runs and no attribute of the instance stands in."""
    found = inspect.getattr_static(module, name, None)
    if found is None or isinstance(found, nn.Module | Tensor):
        return f"has no method {name!r}{did_you_mean(name, _methods(module)) or '.'}"
    if hasattr(nn.Module, name):  # also those the config layer's list lacks (_apply, …)
        return (
            f"has {name!r} from nn.Module itself, which is no initializer; name a method "
            f"the module's class defines, such as reset_parameters."
        )
    if not (callable(found) or isinstance(found, classmethod | staticmethod)):
        return f"has {name!r} as a {type(found).__name__}, not a method."
    try:
        signature = inspect.signature(getattr(module, name))
    except (TypeError, ValueError):  # no signature to read (a builtin): it is called as is
        return None
    try:
        signature.bind()
    except TypeError:
        return (
            f"has the method {name}{signature}, which needs arguments; a Call rule calls it "
            f"with none."
        )
    return None


def _methods(module: nn.Module) -> list[str]:
    return [
        name
        for name in dir(type(module))
        if not name.startswith("_")
        and not hasattr(nn.Module, name)
        and callable(getattr(type(module), name, None))
    ]
