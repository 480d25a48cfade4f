"""The public surface: __all__ is grouped by topic, complete, and every name imports."""

from __future__ import annotations

import initschema as ins
from initschema_testing.functions import NAMES as FUNCTIONS


def test_all_lists_each_name_once() -> None:
    """__all__ is grouped by topic (not sorted), and names each name once."""
    assert len(ins.__all__) == len(set(ins.__all__))


def test_all_is_complete() -> None:
    """Every public name of the package is in __all__, and each one exists (the names that
    need torch are imported on first use)."""
    public = {name for name in dir(ins) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(ins, name)).__name__ == "module"}
    assert public - modules == set(ins.__all__)
    assert all(getattr(ins, name) is not None for name in ins.__all__)


def test_documented_names() -> None:
    """The names README.md and the guide use are there."""
    for name in [
        "BaseModule",
        "Sequential",
        "ModuleList",
        "ModuleDict",
        "initialize",
        "compile_plan",
        "ConstantInit",
        "XavierInit",
        "NormalInit",
        "TruncNormalInit",
        "UniformInit",
        "KaimingInit",
        "Caffe2XavierInit",
        "PretrainedInit",
        *FUNCTIONS,
        "WEIGHT_INITIALIZERS",
        "register_initializer",
        "parse_init_cfg",
        "InitCfgError",
        "strategy",
    ]:
        assert name in ins.__all__
    assert issubclass(ins.InitCfgError, ValueError)
