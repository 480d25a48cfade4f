"""initschema: typed, schema-validated weight initialization for PyTorch.

>>> import initschema as ins
>>> plan = ins.compile_plan(model)   # validates every rule, writes nothing
>>> report = plan.execute()          # or model.init_weights()
"""

from .cfg import InitCfg, Rule, parse_init_cfg
from .errors import InitCfgError, InitSchemaError, InitUsageError
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
from .initializers import (
    Caffe2XavierInit,
    ConstantInit,
    Initializer,
    KaimingInit,
    NormalInit,
    Override,
    PretrainedInit,
    TruncNormalInit,
    UniformInit,
    WeightInit,
    XavierInit,
)
from .lints import Lint
from .module import BaseModule, ModuleDict, ModuleList, Sequential, initialize
from .plan import Action, InitPlan, compile_plan, strict
from .registry import WEIGHT_INITIALIZERS, Registry, register_initializer
from .report import InitReport, Provenance, ReportRow

__version__ = "0.1.0"

__all__ = [
    "WEIGHT_INITIALIZERS",
    "Action",
    "BaseModule",
    "Caffe2XavierInit",
    "ConstantInit",
    "InitCfg",
    "InitCfgError",
    "InitPlan",
    "InitReport",
    "InitSchemaError",
    "InitUsageError",
    "Initializer",
    "KaimingInit",
    "Lint",
    "ModuleDict",
    "ModuleList",
    "NormalInit",
    "Override",
    "PretrainedInit",
    "Provenance",
    "Registry",
    "ReportRow",
    "Rule",
    "Sequential",
    "TruncNormalInit",
    "UniformInit",
    "WeightInit",
    "XavierInit",
    "bias_init_with_prob",
    "caffe2_xavier_init",
    "compile_plan",
    "constant_init",
    "initialize",
    "kaiming_init",
    "normal_init",
    "parse_init_cfg",
    "register_initializer",
    "strict",
    "trunc_normal_",
    "trunc_normal_init",
    "uniform_init",
    "xavier_init",
]
