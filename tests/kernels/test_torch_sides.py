"""kernels/: every built-in initializer's torch side is registered with its config class."""

from __future__ import annotations

import pytest

import initschema as ins
from initschema.cfg.initializer import WEIGHT_INITIALIZERS
from initschema.cfg.weight_init import KERNELS
from initschema.kernels._side import side_of
from initschema.kernels.builtin import draws_nothing, moments_of, sampler_of

BUILT_IN = [
    cls
    for _, cls in WEIGHT_INITIALIZERS.items()
    if issubclass(cls, ins.WeightInit) and cls.__module__.startswith("initschema.cfg.")
]
WHOLE = {"Orthogonal", "Dirac", "Eye"}
CONSTANT = {"Constant", "Zeros", "Ones", "Dirac", "Eye"}
REQUIRED = {"Constant": {"val": 1}, "SmallInit": {"d": 8}, "WangInit": {"d": 8, "n_layers": 2}}


def test_every_built_in_counted() -> None:
    """The list below is the registry's: the 17 built-in formulas."""
    assert len(BUILT_IN) == 17


@pytest.mark.parametrize("cls", BUILT_IN, ids=lambda cls: cls.type_name)
def test_side_registered_with_its_class(cls: type[ins.WeightInit]) -> None:
    """Its own side (not an ancestor's), its kernel in KERNELS, a sampler unless computed
    whole, a draw only when it uses random numbers."""
    side = side_of(cls, exact=True)
    assert side is not None
    assert cls in KERNELS
    assert (sampler_of(cls) is None) == (cls.type_name in WHOLE)
    init = cls(**REQUIRED.get(cls.type_name, {}))
    assert draws_nothing(init, "weight") == (cls.type_name in CONSTANT)


def test_moments_found_through_the_side() -> None:
    """Moments come from the class's side: Dirac has none, Normal its mean and std."""
    assert moments_of(ins.DiracInit(), (4, 4, 3)) is None
    assert moments_of(ins.NormalInit(mean=0.5, std=0.25), (3,)) == (0.5, 0.25)
