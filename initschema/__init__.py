"""initschema: typed, schema-validated weight initialization for PyTorch.

>>> import initschema as ins
>>> plan = ins.compile_plan(model)   # validates every rule, writes nothing
>>> report = plan.execute()          # or model.init_weights()

The config language (initializer models, parsing, the registry) is imported here and
needs no torch: ``import initschema.cfg`` validates a config without it. Everything
that touches tensors is imported on first use of one of its names.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from .builtin_initializers import (
    Caffe2XavierInit,
    CallInit,
    ConstantInit,
    KaimingInit,
    NormalInit,
    PretrainedInit,
    TruncNormalInit,
    UniformInit,
    XavierInit,
)
from .cfg import InitCfg, Rule, parse_init_cfg
from .errors import InitCfgError, InitCfgTypeError, InitSchemaError, InitUsageError
from .initializers import Initializer, Override, WeightInit
from .modern_initializers import (
    DiracInit,
    EyeInit,
    LecunNormalInit,
    LecunUniformInit,
    OnesInit,
    OrthogonalInit,
    SmallInit,
    VarianceScalingInit,
    WangInit,
    ZerosInit,
)
from .registry import WEIGHT_INITIALIZERS, Registry, register_initializer

if _TYPE_CHECKING:
    from .compiler import compile_plan, strict
    from .functional import (
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
    from .lints import Lint
    from .meta import materialize, params_on_meta, unwritten
    from .module import BaseModule, ModuleDict, ModuleList, Sequential, initialize
    from .plan import Action, InitPlan
    from .report import InitReport, Provenance, ReportRow
    from .sharded import shard_safe
    from .strategies import strategy

__version__ = "0.1.0"

_TORCH_LAYER = {
    "compile_plan": "compiler",
    "strict": "compiler",
    "bias_init_with_prob": "functional",
    "caffe2_xavier_init": "functional",
    "constant_init": "functional",
    "kaiming_init": "functional",
    "normal_init": "functional",
    "trunc_normal_": "functional",
    "trunc_normal_init": "functional",
    "uniform_init": "functional",
    "xavier_init": "functional",
    "Lint": "lints",
    "materialize": "meta",
    "params_on_meta": "meta",
    "unwritten": "meta",
    "shard_safe": "sharded",
    "BaseModule": "module",
    "ModuleDict": "module",
    "ModuleList": "module",
    "Sequential": "module",
    "initialize": "module",
    "Action": "plan",
    "InitPlan": "plan",
    "InitReport": "report",
    "Provenance": "report",
    "ReportRow": "report",
}


_HYDRA_LAYER = {"strategy": "strategies"}
"""Names that need Hydra's config loader (not torch), imported on first use."""


def __getattr__(name: str) -> _Any:
    """The names that need torch or Hydra, imported on first use (and then cached here)."""
    if name in _HYDRA_LAYER:
        value = getattr(_importlib.import_module(f".{_HYDRA_LAYER[name]}", __name__), name)
        globals()[name] = value
        return value
    if name not in _TORCH_LAYER:
        raise AttributeError(f"module 'initschema' has no attribute {name!r}")
    _importlib.import_module(".module", __name__)  # the whole engine, registered once
    value = getattr(_importlib.import_module(f".{_TORCH_LAYER[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "WEIGHT_INITIALIZERS",
    "Action",
    "BaseModule",
    "Caffe2XavierInit",
    "CallInit",
    "ConstantInit",
    "DiracInit",
    "EyeInit",
    "InitCfg",
    "InitCfgError",
    "InitCfgTypeError",
    "InitPlan",
    "InitReport",
    "InitSchemaError",
    "InitUsageError",
    "Initializer",
    "KaimingInit",
    "LecunNormalInit",
    "LecunUniformInit",
    "Lint",
    "ModuleDict",
    "ModuleList",
    "NormalInit",
    "OnesInit",
    "OrthogonalInit",
    "Override",
    "PretrainedInit",
    "Provenance",
    "Registry",
    "ReportRow",
    "Rule",
    "Sequential",
    "SmallInit",
    "TruncNormalInit",
    "UniformInit",
    "VarianceScalingInit",
    "WangInit",
    "WeightInit",
    "XavierInit",
    "ZerosInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "compile_plan",
    "constant_init",
    "initialize",
    "kaiming_init",
    "materialize",
    "normal_init",
    "params_on_meta",
    "parse_init_cfg",
    "register_initializer",
    "shard_safe",
    "strategy",
    "strict",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "unwritten",
    "xavier_init",
]
