"""The init_cfg language without torch: initializer models, rules, patterns, the registry
and the JSON Schema; ``import initschema.cfg`` validates a config on a machine with no
torch."""

from .init_cfg import (
    MAX_DEPTH,
    InitCfg,
    InitCfgError,
    Rule,
    nesting_problem,
    parse_init_cfg,
    parse_overrides,
)

__all__ = [
    "MAX_DEPTH",
    "InitCfg",
    "InitCfgError",
    "Rule",
    "nesting_problem",
    "parse_init_cfg",
    "parse_overrides",
]
