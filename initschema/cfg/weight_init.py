"""``WeightInit``: the base of initializers that write ``weight`` by a formula and fill
``bias`` with a constant (every built-in but Pretrained and Call): how a rule selects
modules (``layer``, ``match``, ``params``), the bias it writes, and what the engine asks
of a formula (its kernel, the shapes it can write, the constants that must fit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from .. import _runtime
from .initializer import Initializer, Number, shown_argument
from .patterns import compile_path_pattern

__all__ = ["KERNELS", "WeightInit", "layer_matches", "parse_layer", "prior_bias"]

KERNELS: dict[type, Callable[[Any, Any, Any], None]] = {}
"""``init_weight`` of the built-in initializers, by class: filled when each registers its
torch side in :mod:`initschema.kernels` (the torch layer), on import."""


def prior_bias(prior_prob: float) -> float:
    """The bias ``-log((1-p)/p)`` making a sigmoid output ``p`` (focal loss, Lin et al. 2017).

    numpy's log, as MMEngine computes it: ``math.log`` differs by one ulp for some priors
    (numpy's is SIMD code), and float64 models would then differ in the last bit.
    """
    if not 0 < prior_prob < 1:
        raise ValueError(f"prior_prob must be in (0, 1), got {prior_prob!r}")
    return float(-np.log((1 - prior_prob) / prior_prob))


def parse_layer(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def layer_matches(layer: tuple[str, ...] | None, module: object, match: str = "bases") -> bool:
    """MMEngine's ``layer`` test: the module's class name or a direct base's is listed
    (``match='mro'``: any class the module's class inherits from)."""
    if not layer:
        return False
    cls = type(module)
    classes = cls.__mro__ if match == "mro" else (cls, *cls.__bases__)
    return any(c.__name__ in layer for c in classes)


class WeightInit(Initializer):
    """Base of initializers that write ``weight`` by a formula and fill ``bias`` with a constant.

    Subclass it, implement :meth:`init_weight`, and register the class with
    :func:`initschema.register_initializer` to add an initializer of your own.
    """

    fan_based: ClassVar[bool] = False
    """True when the formula needs fan-in/fan-out (a weight of two or more dimensions)."""

    layer: tuple[str, ...] | None = Field(
        default=None,
        description="Class names of the submodules to write (a module matches its own class "
        "name or the name of one of its class's direct bases; with match: mro, any class it "
        "inherits from). None matches nothing.",
    )
    match: Literal["bases", "mro"] = Field(
        default="bases",
        description="How `layer` matches a module's class: its own name or a direct base's "
        "(bases, MMEngine's rule), or any class in its method resolution order (mro).",
    )
    params: tuple[str, ...] | None = Field(
        default=None,
        description="Patterns over the paths of parameters and buffers below the module the "
        "rule is attached to (relative to it), each anchored on the whole path: `*` matches "
        "within one name, `**` any number of names (`blocks.*.attn.proj.weight`, `*.bias`, "
        "`**.pos_embed`); `re:` starts a regular expression (RE2 syntax, matched against the "
        "whole path). Every matched tensor gets the initializer's formula.",
    )
    bias: Number = Field(default=0, description="Value to fill every written bias with.")
    bias_prob: Annotated[float, Field(strict=True, gt=0, lt=1)] | None = Field(
        default=None,
        description="Prior probability p: fill biases with -log((1-p)/p) instead of `bias`.",
    )

    _layer_forms = field_validator("layer", mode="before")(parse_layer)
    _params_forms = field_validator("params", mode="before")(parse_layer)

    @field_validator("params")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            compile_path_pattern(pattern)  # its ValueError says what is wrong
        return value

    @property
    def bias_value(self) -> float:
        """The bias actually written: from ``bias_prob`` when it is given, else ``bias``."""
        return prior_bias(self.bias_prob) if self.bias_prob is not None else self.bias

    def describe(self) -> str:
        """The weight's formula: every argument but the bias ones (see
        :meth:`describe_tensor`)."""
        args = self.arguments()
        shown = ", ".join(
            f"{k}={shown_argument(v)}" for k, v in args.items() if k not in ("bias", "bias_prob")
        )
        return f"{self.type_name}({shown})"

    def describe_tensor(self, name: str) -> str:
        """What this rule writes into the tensor ``name``: ``'weight'`` by its formula,
        ``'bias'`` its constant, e.g. ``0 (bias of the Kaiming rule)``."""
        if name == "bias":
            prob = self.bias_prob
            given = f", from bias_prob={shown_argument(prob)}" if prob is not None else ""
            return f"{self.bias_value:g} (bias of the {self.type_name} rule{given})"
        return self.describe()

    def init_weight(self, weight: Any, generator: Any = None) -> None:
        """Write the tensor ``weight`` in place (from ``generator``, a ``torch.Generator``,
        when given). Subclasses implement this; the built-ins' kernels live in
        :mod:`initschema.kernels`."""
        for cls in type(self).__mro__:
            if kernel := KERNELS.get(cls):
                kernel(self, weight, generator)
                return
        if not KERNELS:  # the torch layer is not loaded yet: it registers the kernels
            _runtime.engine()
            return self.init_weight(weight, generator)
        raise NotImplementedError(f"{type(self).__qualname__} must implement init_weight")

    def init_values(self, values: Any, generator: Any, shape: tuple[int, ...]) -> None:
        """Seeded mode, for an initializer whose elements are drawn independently: fill the
        flat tensor ``values`` (a run of elements of a tensor of logical ``shape``; compute
        fans from ``shape``) from ``generator``, the same way whatever its length.

        Implementing it makes a sharded tensor draw only its own elements; without it,
        seeded mode runs :meth:`init_weight` on the whole logical tensor and keeps the
        shard's slice."""
        raise NotImplementedError

    def matches(self, module: object) -> bool:
        """Whether ``layer`` names ``module``'s class or one of its class's direct bases
        (any class of its MRO with ``match: mro``)."""
        return layer_matches(self.layer, module, self.match)

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why this initializer's formula cannot write a tensor of ``shape`` (checked at
        compile time, before any write), or None. Subclasses add their own checks."""
        if self.fan_based and len(shape) < 2:
            return (
                f"{self.type_name} needs fan-in/fan-out, which a tensor of shape {shape} does "
                f"not have"
            )
        return None

    def for_module(self, path: str) -> WeightInit:
        """This initializer as it applies to the module at ``path`` (model-relative):
        itself, unless an argument depends on where the module sits (depth scaling)."""
        return self

    def constants(self, name: str) -> list[tuple[str, float]]:
        """The numbers written into tensor ``name`` that must fit its dtype (its range is
        checked at compile time); subclasses add their own."""
        return [("bias", self.bias_value)] if name == "bias" else []
