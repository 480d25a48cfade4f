"""The ``initschema`` command: validate configs, print and compare plans, write the schema.

    initschema validate FILE.yaml [KEY ...]             # no model, no torch
    initschema validate --config-dir DIR --config-name NAME [OVERRIDE ...]
    initschema plan --model pkg.mod:factory [--config FILE.yaml [--key KEY]]
    initschema plan --config-dir DIR --config-name NAME [--node model] [OVERRIDE ...]
    initschema diff --model pkg.mod:factory A.yaml B.yaml
    initschema diff --config-dir DIR --config-name NAME --override OVERRIDE ...
    initschema report --model pkg.mod:factory [--config FILE.yaml] [--seed N] [--plot out.png]
    initschema report --config-dir DIR --config-name NAME [--node model] [OVERRIDE ...]
    initschema schema [--hydra-rule | --strategy] [--import MOD] [-o FILE]

Exit status: 0 when all is well, 1 for findings (an invalid config; lints under
``--strict``; a flagged parameter of ``report``), 2 for a usage error. ``--json``
prints a machine-readable result. Commands that build no model import no torch.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import _mmengine_config
from .cfg import parse_init_cfg
from .errors import InitCfgError, Problem
from .schema import hydra_rule_schema, hydra_strategy_schema, init_cfg_schema

__all__ = ["main"]


class _Usage(Exception):
    """A usage error found after parsing: exit status 2, with this message."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _mmengine_config.is_mmengine_form(argv):  # validate|plan|report CONFIG.py
        return _mmengine_config.main(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        for module in args.modules:
            _import(module)
        result: int = args.run(args)
    except _Usage as error:
        parser.exit(2, f"initschema {args.command}: error: {error}\n")
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initschema",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 ok, 1 findings (invalid config, lints under --strict, flagged "
        "parameters of report), 2 usage.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser(
        "validate",
        help="validate an init_cfg file, or every init_cfg of a Hydra config, without a model",
        description="Validate an init_cfg YAML file (the whole file, or the nodes at KEY...), "
        "or every init_cfg node of a composed Hydra config. Builds no model and imports no "
        "torch.",
    )
    validate.add_argument("file", nargs="?", help="a YAML file holding an init_cfg")
    validate.add_argument(
        "nodes", nargs="*", metavar="KEY", help="dotted keys of the init_cfgs in FILE"
    )
    _hydra_options(validate)
    validate.set_defaults(run=_validate)

    plan = commands.add_parser(
        "plan",
        help="build a model on the meta device and print the plan of its initialization",
        description="Build the model on the meta device (no memory, no time), compile its "
        "plan and print it: which initializer writes every parameter, and the lints.",
    )
    _model_options(plan)
    _init_cfg_options(plan, config=True)
    plan.add_argument("--strict", action="store_true", help="warning lints are findings")
    _hydra_options(plan)
    plan.set_defaults(run=_plan)

    diff = commands.add_parser(
        "diff",
        help="the parameters whose initialization differs between two init_cfgs",
        description="Plan two init_cfgs on the same model and print only the parameters "
        "whose initializer, arguments or rule change: two init_cfg files on a --model, or a "
        "Hydra config without and with its --override values.",
    )
    _model_options(diff)
    diff.add_argument("a", nargs="?", help="a YAML file holding an init_cfg")
    diff.add_argument("b", nargs="?", help="another one")
    _init_cfg_options(diff, config=False)
    _hydra_options(diff)
    diff.set_defaults(run=_diff)

    report = commands.add_parser(
        "report",
        help="initialize a model for real and check every parameter against its formula",
        description="Build the model (for real), initialize it, then measure every "
        "parameter (mean, std, min, max) beside what its initializer's formula predicts. "
        "Flags a std or mean off by more than its tensor's size allows, NaN or infinite "
        "values, possibly uninitialized memory, and init_cfgs an init_weights ignored; "
        "exit status 1 when anything is flagged.",
    )
    report.add_argument(
        "--model",
        metavar="PKG.MOD:FACTORY",
        help="a callable that builds the model (called without arguments, after torch.manual_seed)",
    )
    _init_cfg_options(report, config=True)
    report.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seeded execution: each tensor from a generator of (N, its path); without it, "
        "faithful execution (MMEngine's draws from the global RNG) after torch.manual_seed(0)",
    )
    report.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw weight std by depth and a histogram per initializer (needs "
        "matplotlib: pip install 'initschema[plot]')",
    )
    report.add_argument("--strict", action="store_true", help="warning lints are findings")
    _hydra_options(report)
    report.set_defaults(run=_report)

    schema = commands.add_parser(
        "schema", help="write the JSON Schema of the init_cfg language (for editors, CI)"
    )
    kind = schema.add_mutually_exclusive_group()
    kind.add_argument(
        "--hydra-rule",
        action="store_true",
        help="the schema of a rule file in Hydra's `init` group instead of a whole init_cfg",
    )
    kind.add_argument(
        "--strategy",
        action="store_true",
        help="the schema of a strategy file (a defaults list picking rules, and tweaks of "
        "them; no key required) instead of a whole init_cfg",
    )
    _import_option(schema)
    schema.add_argument("-o", "--output", help="write to this file instead of standard output")
    schema.set_defaults(run=_schema)
    return parser


def _import_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first, so that the initializers it registers are known "
        "(repeatable)",
    )


def _hydra_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", help="a Hydra config directory")
    parser.add_argument("--config-name", help="the primary config in --config-dir")
    parser.add_argument(
        "--override",
        dest="overrides",
        action="append",
        default=[],
        metavar="OVERRIDE",
        help="a Hydra override (repeatable), e.g. model.init_cfg.head.std=0.02",
    )
    parser.add_argument(
        "--keys",
        dest="key_names",
        default="init_cfg",
        help="comma-separated names of the keys whose values are init_cfgs, at any depth "
        "(default: init_cfg)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    _import_option(parser)


def _init_cfg_options(parser: argparse.ArgumentParser, *, config: bool) -> None:
    """Where the init_cfg comes from: a file (``--config``, ``--key`` inside it) with
    ``--model``, or the model's ``--node`` of a Hydra config."""
    if config:
        parser.add_argument("--config", help="a YAML file holding the init_cfg to apply")
    parser.add_argument("--key", help="the dotted key of the init_cfg in the YAML file(s)")
    parser.add_argument("--node", default="model", help="the model's node in a Hydra config")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="PKG.MOD:FACTORY",
        help="a callable that builds the model (called without arguments, on the meta device)",
    )


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise _Usage(
            f"--import {module}: cannot import it ({error}). Put the directory that holds it "
            f"on PYTHONPATH, or install its package."
        ) from None


def _findings(problems: Sequence[Problem], as_json: bool, extra: dict[str, Any]) -> int:
    """Print problems (or the all-clear) and return the exit status."""
    if as_json:
        print(json.dumps({"ok": not problems, "problems": [vars(p) for p in problems], **extra}))
    else:
        for problem in problems:
            print(f"Error in config {problem}", file=sys.stderr)
    return 1 if problems else 0


def _load_yaml(path: str) -> Any:
    from omegaconf import OmegaConf

    if not os.path.isfile(path):
        raise _Usage(f"{path!r} does not exist.")
    try:
        return OmegaConf.load(path)
    except Exception as error:
        raise _Usage(f"{path!r} is not a YAML file OmegaConf can read: {error}") from None


def _node(document: Any, key: str, where: str) -> Any:
    from omegaconf import OmegaConf

    value = OmegaConf.select(document, key, default="\0missing")
    if value == "\0missing":
        raise _Usage(f"{where} has no key {key!r}.")
    return value


def _compose(args: argparse.Namespace) -> Any:
    if not (args.config_dir and args.config_name):
        raise _Usage("give a FILE, or both --config-dir and --config-name.")
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from . import hydra as ins_hydra

    ins_hydra.register_configs()
    try:
        directory = os.path.abspath(args.config_dir)
        with initialize_config_dir(config_dir=directory, version_base="1.3"):
            return compose(args.config_name, overrides=args.overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise _Usage(f"the config does not compose: {error}") from None


def _validate(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from . import hydra as ins_hydra

    keys = tuple(args.key_names.split(","))
    if not args.file:
        cfg = _compose(args)
        try:
            typed = ins_hydra.validate(cfg, keys)
        except InitCfgError as error:
            return _findings(error.problems, args.json, {"init_cfgs": {}})
        return _findings([], args.json, {"init_cfgs": {p: len(c) for p, c in typed.items()}})
    document = _load_yaml(args.file)
    if not args.nodes and ins_hydra.init_cfg_paths(document, keys):
        try:  # a config holding init_cfgs at any depth, as Hydra's validation finds them
            typed = ins_hydra.validate(document, keys)
        except InitCfgError as error:
            return _findings(error.problems, args.json, {"init_cfgs": {}})
        return _findings([], args.json, {"init_cfgs": {p: len(c) for p, c in typed.items()}})
    found: dict[str, int] = {}
    problems: list[Problem] = []
    targets = [(key, _node(document, key, args.file)) for key in args.nodes] or [
        ("init_cfg", document)  # the whole file is one init_cfg
    ]
    for key, value in targets:
        plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        try:
            found[key] = len(parse_init_cfg(plain, key))
        except InitCfgError as error:
            problems += error.problems
    return _findings(problems, args.json, {"init_cfgs": found})


def _factory(spec: str | None) -> Callable[[], Any]:
    if not spec or ":" not in spec:
        raise _Usage("give --model PKG.MOD:FACTORY, a callable that builds the model.")
    module, _, name = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    _import(module)
    factory = getattr(sys.modules[module], name, None)
    if not callable(factory):
        raise _Usage(f"{module} has no callable {name!r}.")
    return factory  # type: ignore[no-any-return]


def _init_cfg_of(path: str, key: str | None) -> Any:
    from omegaconf import OmegaConf

    document = _load_yaml(path)
    value = _node(document, key, path) if key else document
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _plan(args: argparse.Namespace) -> int:
    import torch

    import initschema as ins

    from . import hydra as ins_hydra

    try:
        if args.model:
            with torch.device("meta"):
                model = _factory(args.model)()
            init_cfg = _init_cfg_of(args.config, args.key) if args.config else None
            plan = ins.compile_plan(model, init_cfg, strict=args.strict, log=False)
        else:
            cfg = _compose(args)
            with torch.device("meta"):
                node = _node(cfg, args.node, args.config_name)
                _, plan = ins_hydra.instantiate_and_plan(node, cfg, strict=args.strict, log=False)
    except InitCfgError as error:
        return _findings(error.problems, args.json, {})
    if args.json:
        print(json.dumps({"ok": True, "problems": [], **plan.to_dict()}))
    else:
        print(plan)
    return 0


def _diff(args: argparse.Namespace) -> int:
    import torch

    import initschema as ins

    from . import hydra as ins_hydra

    rows: list[dict[str, dict[str, str]]] = []
    plans = []
    try:
        if args.a and args.b:
            factory = _factory(args.model)
            names = (args.a, args.b)
            for path in names:
                with torch.device("meta"):
                    model = factory()
                plans.append(ins.compile_plan(model, _init_cfg_of(path, args.key), log=False))
        elif args.config_dir:
            if not args.overrides:
                raise _Usage("give the --override values to compare the config with.")
            names = ("without the overrides", "with them")
            overrides = args.overrides
            for args.overrides in ([], overrides):
                cfg = _compose(args)
                with torch.device("meta"):
                    node = _node(cfg, args.node, args.config_name)
                    plans.append(ins_hydra.instantiate_and_plan(node, cfg, log=False)[1])
        else:
            raise _Usage("give two init_cfg files and --model, or --config-dir/--config-name.")
    except InitCfgError as error:
        return _findings(error.problems, args.json, {})
    sides = [_writers(plan) for plan in plans]
    for path, _ in plans[0].parameters:
        a, b = sides[0].get(path), sides[1].get(path)
        if a != b:
            rows.append({"path": path, "a": a or _UNWRITTEN, "b": b or _UNWRITTEN})  # type: ignore[dict-item]
    if args.json:
        print(json.dumps({"ok": True, "changed": rows}))
        return 0
    from rich.table import Table

    from .report import render

    table = Table()
    for column in ("parameter", *names):
        table.add_column(column)
    for row in rows:
        table.add_row(row["path"], _cell(row["a"]), _cell(row["b"]))  # type: ignore[arg-type]
    print(f"{len(rows)} of {len(plans[0].parameters)} parameters change")
    if rows:
        print(render(table))
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.plot:  # before the model is built and initialized, which may take long
        from .plot import MissingExtraError, require_matplotlib

        try:
            require_matplotlib()
        except MissingExtraError as error:
            raise _Usage(f"--plot: {error}") from None
    import torch

    import initschema as ins

    from . import hydra as ins_hydra
    from .stats import findings, measure, render_stats

    torch.manual_seed(0 if args.seed is None else args.seed)
    try:
        if args.model:
            model = _factory(args.model)()
            init_cfg = _init_cfg_of(args.config, args.key) if args.config else None
            plan = ins.compile_plan(model, init_cfg, strict=args.strict, log=False)
        else:
            cfg = _compose(args)
            node = _node(cfg, args.node, args.config_name)
            _, plan = ins_hydra.instantiate_and_plan(node, cfg, strict=args.strict, log=False)
    except InitCfgError as error:
        return _findings(error.problems, args.json, {})
    stats = measure(plan, plan.execute(seed=args.seed))
    found = findings(plan, stats)
    if args.plot:
        from .plot import plot

        plot(plan, stats, args.plot)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not found,
                    "model": type(plan.module).__name__,
                    "seed": args.seed,
                    "parameters": [row.to_dict() for row in stats],
                    "findings": [vars(finding) for finding in found],
                }
            )
        )
    else:
        print(render_stats(stats, found))
    return 1 if found else 0


_UNWRITTEN = {"initializer": "not written", "rule": ""}


def _writers(plan: Any) -> dict[str, dict[str, str]]:
    """For each parameter the plan writes: what its last writer writes, and its rule."""
    found = {}
    for index in plan.last_writers().values():
        action = plan.actions[index]
        for path in action.params:
            if plan.last_writers().get(path) == index:
                found[path] = {"initializer": action.describe_param(path), "rule": action.source}
    for action in plan.actions:
        if action.kind in ("call", "method"):
            for path in action.params:
                found.setdefault(path, {"initializer": action.describe(), "rule": action.source})
    return found


def _cell(side: dict[str, str]) -> str:
    from rich.markup import escape

    text = f"{side['initializer']} [{side['rule']}]" if side["rule"] else side["initializer"]
    return escape(text)


def _schema(args: argparse.Namespace) -> int:
    if args.hydra_rule:
        document = hydra_rule_schema()
    elif args.strategy:
        document = hydra_strategy_schema()
    else:
        document = init_cfg_schema()
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0
