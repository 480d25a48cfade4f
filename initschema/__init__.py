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

from .cfg.builtin import (
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
from .cfg.init_cfg import InitCfg, Rule, parse_init_cfg
from .cfg.initializer import WEIGHT_INITIALIZERS, Initializer, Override, register_initializer
from .cfg.modern import (
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
from .cfg.registry import Registry
from .cfg.weight_init import WeightInit
from .errors import InitCfgError, InitCfgTypeError, InitSchemaError, InitUsageError

if _TYPE_CHECKING:
    from ._materialize import materialize, params_on_meta, unwritten
    from .engine.compiler import compile_plan, strict
    from .engine.plan import Action, InitPlan, Lint, Writer
    from .engine.report import InitReport, Provenance, ReportRow
    from .engine.sharded import shard_safe
    from .kernels.functions import (
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
    from .modules import BaseModule, ModuleDict, ModuleList, Sequential, initialize
    from .strategies import strategy

__version__ = "0.1.0"

_TORCH_LAYER = {
    "compile_plan": "engine.compiler",
    "strict": "engine.compiler",
    "bias_init_with_prob": "kernels.functions",
    "caffe2_xavier_init": "kernels.functions",
    "constant_init": "kernels.functions",
    "kaiming_init": "kernels.functions",
    "normal_init": "kernels.functions",
    "trunc_normal_": "kernels.functions",
    "trunc_normal_init": "kernels.functions",
    "uniform_init": "kernels.functions",
    "xavier_init": "kernels.functions",
    "Lint": "engine.plan",
    "materialize": "_materialize",
    "params_on_meta": "_materialize",
    "unwritten": "_materialize",
    "shard_safe": "engine.sharded",
    "BaseModule": "modules",
    "ModuleDict": "modules",
    "ModuleList": "modules",
    "Sequential": "modules",
    "initialize": "modules",
    "Action": "engine.plan",
    "InitPlan": "engine.plan",
    "Writer": "engine.plan",
    "InitReport": "engine.report",
    "Provenance": "engine.report",
    "ReportRow": "engine.report",
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
    _importlib.import_module(".modules", __name__)  # the whole engine, registered once
    value = getattr(_importlib.import_module(f".{_TORCH_LAYER[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [  # noqa: RUF022  (grouped by topic, as a reader looks for them)
    # Modules that carry an init_cfg, and running one
    "BaseModule",
    "ModuleDict",
    "ModuleList",
    "Sequential",
    "initialize",
    "materialize",
    "params_on_meta",
    "unwritten",
    "shard_safe",
    # The config language (no torch)
    "InitCfg",
    "Rule",
    "parse_init_cfg",
    "Initializer",
    "WeightInit",
    "Override",
    "Registry",
    "WEIGHT_INITIALIZERS",
    "register_initializer",
    "strategy",
    # MMEngine's initializers, and the Call and Pretrained rules
    "ConstantInit",
    "XavierInit",
    "NormalInit",
    "TruncNormalInit",
    "UniformInit",
    "KaimingInit",
    "Caffe2XavierInit",
    "PretrainedInit",
    "CallInit",
    # The initializers beyond MMEngine's
    "ZerosInit",
    "OnesInit",
    "OrthogonalInit",
    "DiracInit",
    "EyeInit",
    "VarianceScalingInit",
    "LecunNormalInit",
    "LecunUniformInit",
    "SmallInit",
    "WangInit",
    # Plans, lints and reports
    "compile_plan",
    "strict",
    "InitPlan",
    "Action",
    "Writer",
    "Lint",
    "InitReport",
    "Provenance",
    "ReportRow",
    # MMEngine's init functions
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "constant_init",
    "kaiming_init",
    "normal_init",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "xavier_init",
    # Errors
    "InitSchemaError",
    "InitCfgError",
    "InitCfgTypeError",
    "InitUsageError",
]
