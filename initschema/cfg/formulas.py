"""The bases of the built-in formula initializers: what every formula can do beyond
MMEngine's.

- :class:`FormulaInit`: ``splits`` writes a fused tensor (QKV) piece by piece;
- :class:`FanInit`: fans from explicit ``fan_axes`` (:class:`FanAxes`) for tensors not
  laid out ``[out, in, *kernel]``;
- :class:`DepthScaledInit`: a std scaled by depth, resolved per module at compile time.

Config language: pydantic only, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import shown
from .initializer import shown_argument
from .patterns import compile_user_regex
from .weight_init import WeightInit

__all__ = ["DepthScaledInit", "FanAxes", "FanInit", "FormulaInit", "integer_only"]


def integer_only(value: Any, info: ValidationInfo) -> Any:
    """An int field given a float or a bool says so (pydantic would say "finite number")."""
    if isinstance(value, bool | float):
        raise ValueError(f"{info.field_name} must be an integer, got {shown(value)}.")
    return value


def _axis(axis: int, ndim: int) -> int | None:
    """``axis`` counted from the front (negative ones from the back), or None when a tensor
    of ``ndim`` dimensions has no such axis."""
    return axis + ndim if -ndim <= axis < 0 else axis if 0 <= axis < ndim else None


class FormulaInit(WeightInit):
    """Base of the built-in formula initializers: ``splits`` writes a fused tensor (QKV)
    piece by piece, each piece by the formula with fans from its own shape.

    A subclass says what its formula cannot write in :meth:`formula_problem`.
    """

    splits: tuple[Annotated[int, Field(strict=True, ge=1)], ...] | None = Field(
        default=None,
        min_length=1,
        description="Sizes of the pieces of a fused tensor along `split_dim` (QKV: [d, d, "
        "d]); each piece gets the formula on its own, with fans from its own shape. They "
        "must sum to the size of that dimension.",
    )
    split_dim: Annotated[int, Field(strict=True)] = Field(
        default=0, description="The dimension `splits` cuts (negative counts from the end)."
    )

    shown_if_set: ClassVar[dict[str, Any]] = {"splits": None, "split_dim": 0}
    """Arguments shown by :meth:`describe` only when they differ from these values (they
    switch something on that a reader of the plan must see)."""

    @field_validator("splits", mode="before")
    @classmethod
    def _splits_form(cls, value: Any) -> Any:
        if isinstance(value, int | str):
            raise ValueError(
                f"splits must be a list of piece sizes (e.g. [768, 768, 768]), got {shown(value)}."
            )
        return value

    @model_validator(mode="after")
    def _split_dim_needs_splits(self) -> FormulaInit:
        if self.splits is None and self.split_dim != 0:
            raise ValueError(
                f"split_dim={self.split_dim} without splits cuts nothing; give splits "
                f"(the piece sizes along that dimension), or drop split_dim."
            )
        return self

    def arguments(self) -> dict[str, Any]:
        """The arguments, those of :attr:`shown_if_set` last and only when switched on."""
        args = super().arguments()
        shown = {k: v for k, v in args.items() if k not in self.shown_if_set}
        for key, off in self.shown_if_set.items():
            if key in args and args[key] != off:
                shown[key] = list(args[key]) if isinstance(args[key], tuple) else args[key]
        return shown

    def pieces(self, shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        """The shape of each piece ``splits`` cuts ``shape`` into (``shape`` itself without
        ``splits``)."""
        if self.splits is None:
            yield shape
            return
        dim = _axis(self.split_dim, len(shape))
        assert dim is not None
        for size in self.splits:
            yield (*shape[:dim], size, *shape[dim + 1 :])

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        if self.splits is not None:
            dim = _axis(self.split_dim, len(shape))
            if dim is None:
                return f"split_dim={self.split_dim} is not a dimension of a tensor of shape {shape}"
            if sum(self.splits) != shape[dim]:
                return (
                    f"splits {shown(list(self.splits))} sum to {sum(self.splits)}, but dimension "
                    f"{dim} of shape {shape} has {shape[dim]}; make the pieces sum to "
                    f"{shape[dim]}"
                )
        for piece in self.pieces(shape):
            if problem := self.formula_problem(piece):
                return problem if self.splits is None else f"{problem} (a piece of {shape})"
        return None

    def formula_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why the formula cannot write a tensor (or piece) of ``shape``, or None."""
        return super().shape_problem(shape)


class FanAxes(BaseModel):
    """Which axes of a tensor hold its inputs and outputs, for tensors not laid out
    ``[out, in, *kernel]``: ``fan_in = shape[in]·r`` and ``fan_out = shape[out]·r``, with
    ``r`` the product of the axes that are neither ``in``, ``out`` nor ``batch`` (JAX's
    ``in_axis``/``out_axis``/``batch_axis``)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, serialize_by_alias=True
    )

    in_: Annotated[int, Field(strict=True)] = Field(
        alias="in", description="The input axis (negative counts from the end)."
    )
    out: Annotated[int, Field(strict=True)] = Field(description="The output axis.")
    batch: tuple[Annotated[int, Field(strict=True)], ...] = Field(
        default=(),
        description="Axes of independent matrices (grouped experts' E): in neither fan.",
    )

    def fans(self, shape: tuple[int, ...]) -> tuple[int, int] | str:
        """``(fan_in, fan_out)`` of a tensor of ``shape``, or why it has none."""
        ndim = len(shape)
        axes = [_axis(a, ndim) for a in (self.in_, self.out, *self.batch)]
        if any(a is None for a in axes):
            return f"fan_axes {self.describe()} name an axis a tensor of shape {shape} lacks"
        if len(set(axes)) != len(axes):
            return f"fan_axes {self.describe()} name one axis of shape {shape} twice"
        receptive = math.prod(n for i, n in enumerate(shape) if i not in axes)
        return shape[axes[0]] * receptive, shape[axes[1]] * receptive  # type: ignore[index]

    def describe(self) -> str:
        """``{in: 1, out: 2, batch: [0]}``, as a config writes it."""
        batch = f", batch: {list(self.batch)}" if self.batch else ""
        return f"{{in: {self.in_}, out: {self.out}{batch}}}"

    def __repr__(self) -> str:
        return self.describe()


class FanInit(FormulaInit):
    """Base of the fan-based initializers: fans from torch's layout ``[out, in, *kernel]``
    (``fan_in = in·receptive``, ``fan_out = out·receptive``) unless ``fan_axes`` says
    otherwise."""

    fan_based: ClassVar[bool] = True
    fan_axes: FanAxes | None = Field(
        default=None,
        description="Input/output (and batch) axes for a tensor not laid out [out, in, "
        "*kernel], e.g. grouped experts [E, in, out]: {in: 1, out: 2, batch: [0]}. The "
        "receptive field is the product of the other axes. None: torch's layout.",
    )

    shown_if_set: ClassVar[dict[str, Any]] = {**FormulaInit.shown_if_set, "fan_axes": None}

    @field_validator("fan_axes", mode="before")
    @classmethod
    def _fan_axes_form(cls, value: Any) -> Any:
        if value is None or isinstance(value, FanAxes):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                f"fan_axes must be a mapping like {{in: 1, out: 2, batch: [0]}}, "
                f"got {shown(value)}."
            )
        unknown = sorted(set(map(str, value)) - {"in", "out", "batch"})
        if unknown:
            raise ValueError(
                f"fan_axes has unknown keys {unknown}; it takes in, out and batch "
                f"(e.g. {{in: 1, out: 2, batch: [0]}})."
            )
        try:
            return FanAxes.model_validate(value)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"fan_axes.{where}: {first['msg'].lower()}, got {shown(first.get('input'))}; "
                f"axes are integers, e.g. {{in: 1, out: 2, batch: [0]}}."
            ) from None

    def fans(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """``(fan_in, fan_out)`` of a tensor (or piece) of ``shape`` (checked at compile
        time by :meth:`shape_problem`)."""
        if self.fan_axes is not None:
            found = self.fan_axes.fans(shape)
            if isinstance(found, str):
                raise ValueError(found)
            return found
        if len(shape) < 2:
            raise ValueError(
                "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
            )
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive

    def formula_problem(self, shape: tuple[int, ...]) -> str | None:
        if self.fan_axes is not None:
            found = self.fan_axes.fans(shape)
            return f"{self.type_name}: {found}" if isinstance(found, str) else None
        return super().formula_problem(shape)


class DepthScaledInit(FormulaInit):
    """Base of Normal and TruncNormal: ``std`` scaled by depth, resolved per module at
    compile time (:meth:`for_module`)."""

    if TYPE_CHECKING:
        std: float
    layer_id_regex: str | None = Field(
        default=None,
        description="Depth scaling (torchtitan's depth_init): a regex with one group that "
        "captures the layer index from the written module's path (searched in the path "
        r"followed by a dot, e.g. 'blocks\.(\d+)\.'); std becomes std/√(2·(layer_id+1)). "
        "A written module whose path it does not match is a compile-time error.",
    )
    n_layers: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        default=None,
        description="Depth scaling of residual projections (GPT-2, Megatron): std becomes "
        "std/√(2·n_layers).",
    )

    shown_if_set: ClassVar[dict[str, Any]] = {
        **FormulaInit.shown_if_set,
        "layer_id_regex": None,
        "n_layers": None,
    }
    _scaled: tuple[str, int | None] | None = PrivateAttr(default=None)
    """Once resolved: the std's formula and the layer index (what :meth:`describe` shows)."""

    _n_layers_integer = field_validator("n_layers", mode="before")(integer_only)

    @field_validator("layer_id_regex")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        groups = compile_user_regex(value).groups
        if groups != 1:
            raise ValueError(
                f"layer_id_regex {shown(value)} has {groups} groups; it needs exactly one, the "
                rf"layer index (e.g. 'blocks\.(\d+)\.'; use (?:...) for other groups)."
            )
        return value

    @model_validator(mode="after")
    def _one_depth_scaling(self) -> DepthScaledInit:
        if self.layer_id_regex is not None and self.n_layers is not None:
            raise ValueError(
                f"{self.type_name or type(self).__name__} takes layer_id_regex (std/√(2·"
                f"(layer_id+1))) or n_layers (std/√(2·n_layers)), not both; keep one."
            )
        return self

    @property
    def scaled_std(self) -> float:
        """The std the formula draws with: ``std``, scaled by ``n_layers`` when given."""
        if self.layer_id_regex is not None:
            raise ValueError(
                f"{self.describe()} scales its std by the layer index in a module's path; "
                f"apply it through a plan (compile_plan, initialize), which resolves it per "
                f"module, or call for_module(path) first."
            )
        if self.n_layers is not None:
            return self.std / math.sqrt(2 * self.n_layers)
        return self.std

    def for_module(self, path: str) -> DepthScaledInit:
        """This initializer at the module at ``path``: depth scaling resolved into ``std``
        (a ValueError saying why when ``layer_id_regex`` does not match ``path``)."""
        if self.n_layers is not None:
            formula, layer_id = f"{shown_argument(self.std)}/√(2·{self.n_layers})", None
            std = self.std / math.sqrt(2 * self.n_layers)
        elif self.layer_id_regex is not None:
            found = compile_user_regex(self.layer_id_regex).search(f"{path}.")
            digits = found.group(1) if found is not None else None
            if digits is None or not digits.isdecimal() or len(digits) > 9:
                what = "does not match" if found is None else "captures no layer index from"
                raise ValueError(
                    f"layer_id_regex '{self.layer_id_regex}' {what} the module path "
                    f"'{path}' (searched in '{path}.'), so {self.type_name} cannot scale its "
                    f"std by depth there; select only the layers' modules, or fix the regex."
                )
            layer_id = int(digits)
            formula = f"{shown_argument(self.std)}/√(2·({layer_id}+1))"
            std = self.std / math.sqrt(2 * (layer_id + 1))
        else:
            return self
        resolved = self.model_copy(update={"std": std, "layer_id_regex": None, "n_layers": None})
        resolved._scaled = (formula, layer_id)
        return resolved

    def describe(self) -> str:
        """As :meth:`WeightInit.describe`; a resolved std shows its formula and layer."""
        if self._scaled is None:
            return super().describe()
        formula, layer_id = self._scaled
        shown = []
        for key, value in self.arguments().items():
            if key == "std":
                shown.append(f"std={formula}={self.std:.6g}")
                if layer_id is not None:
                    shown.append(f"layer_id={layer_id}")
            elif key not in ("bias", "bias_prob"):
                shown.append(f"{key}={shown_argument(value)}")
        return f"{self.type_name}({', '.join(shown)})"
