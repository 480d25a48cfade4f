"""The ``initschema`` command: validate configs, print and compare plans, write the schema.

    initschema validate FILE.yaml [KEY ...]              # no model, no torch, runs nothing
    initschema validate --config-dir DIR --config-name NAME [OVERRIDE ...]
    initschema plan --model PKG.MOD:FACTORY [--config FILE.yaml [--key KEY]]
    initschema plan --config-dir DIR --config-name NAME [--node model] [OVERRIDE ...]
    initschema diff --model PKG.MOD:FACTORY A.yaml B.yaml
    initschema diff --config-dir DIR --config-name NAME OVERRIDE ...
    initschema report --model PKG.MOD:FACTORY [--config FILE.yaml] [--seed N] [--plot out.png]
    initschema report --config-dir DIR --config-name NAME [--node model] [OVERRIDE ...]
    initschema schema [--hydra-rule | --strategy] [--import MOD] [-o FILE]

plan, diff and report build the model: they call --model, or run the ``_target_``s of the
config's model node (the current directory is importable, after installed packages).
validate builds nothing and runs no code of the config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from . import __version__
from ._cli_yaml import CommandError, validate_file
from .errors import InitCfgError
from .schema import hydra_rule_schema, hydra_strategy_schema, init_cfg_schema

__all__ = ["main"]

_EXIT = (
    "Exit status: 0 ok; 1 findings (an invalid config, lints under --strict, flagged parameters "
    "of report); 2 a usage error, a file it cannot read (or whose aliases expand too far), or "
    "a model that fails to build."
)
_BUILDS = (
    "Building it calls --model, or instantiates the config's model node, running the "
    "_target_s it names (the current directory is importable, after installed packages)."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [arg for arg in extra if arg.startswith("-") or not hasattr(args, "positional")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:  # positionals after an option (`--config-dir conf a=1 --strict b=2`)
        args.positional = [*args.positional, *extra]
    try:
        for module in args.modules:
            from ._cli_build import import_user_module

            import_user_module(module, "--import", engine=args.command != "validate")
        result: int = args.run(args)
    except CommandError as error:  # as argparse's own usage errors: SystemExit(2)
        parser.exit(2, f"initschema {args.command}: error: {error}\n")
    except BrokenPipeError:  # `initschema diff --json | head`: the reader has gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # user code (a model, its init_weights) or a bug: one line
        text = " ".join(str(error).split())
        print(f"initschema {args.command}: error: {type(error).__name__}: {text}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initschema",
        description=(__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(_EXIT, 92),
    )
    parser.add_argument("--version", action="version", version=f"initschema {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = _command(
        commands,
        "validate",
        "validate an init_cfg file, or every init_cfg of a composed Hydra config",
        "Validate the init_cfgs of a YAML file (the nodes at KEY..., else every init_cfg node "
        "at any depth, else the whole file as one), or every init_cfg of a composed Hydra "
        "config (OVERRIDEs as the app takes them). Builds no model, imports no torch and runs "
        "nothing the config names. In a file, a ??? or an interpolation only the composed "
        "config resolves is listed as a note, not an error.",
        usage="initschema validate [FILE [KEY ...] | --config-dir DIR --config-name NAME "
        "[OVERRIDE ...]] [options]",
    )
    validate.add_argument(
        "positional",
        nargs="*",
        metavar="FILE KEY | OVERRIDE",
        help="a YAML file and the dotted keys of init_cfgs in it; with --config-dir, Hydra "
        "overrides",
    )
    _hydra_options(validate)
    validate.set_defaults(run=_validate)

    plan = _command(
        commands,
        "plan",
        "build a model on the meta device and print the plan of its initialization",
        "Build the model on the meta device (no memory, no time), compile its plan and print "
        "which initializer writes every parameter, and the lints. " + _BUILDS,
    )
    _model_options(plan, "called without arguments, on the meta device")
    _init_cfg_options(plan, config=True)
    plan.add_argument("--strict", action="store_true", help="warning lints are findings")
    _overrides(plan)
    _hydra_options(plan)
    plan.set_defaults(run=_plan)

    diff = _command(
        commands,
        "diff",
        "the parameters whose initialization differs between two init_cfgs",
        "Plan two init_cfgs on the same model and print the parameters whose initializer or "
        "arguments change: two init_cfg files on a --model, or a Hydra config without and "
        "with OVERRIDEs. " + _BUILDS,
        usage="initschema diff (--model PKG.MOD:FACTORY A.yaml B.yaml | --config-dir DIR "
        "--config-name NAME OVERRIDE ...) [options]",
    )
    _model_options(diff, "called without arguments, on the meta device")
    diff.add_argument(
        "positional",
        nargs="*",
        metavar="A.yaml B.yaml | OVERRIDE",
        help="two init_cfg files (with --model), or Hydra overrides (with --config-dir)",
    )
    _init_cfg_options(diff, config=False)
    _hydra_options(diff)
    diff.set_defaults(run=_diff)

    report = _command(
        commands,
        "report",
        "initialize a model for real and check every parameter against its formula",
        "Build the model (for real), initialize it, then measure every parameter (mean, std, "
        "min, max) beside what its initializer's formula predicts, and list the plan's lints. "
        "Flags a std or mean off by more than its tensor's size allows, NaN or infinite "
        "values, possibly uninitialized memory, and init_cfgs an init_weights ignored: exit "
        "status 1 when anything is flagged (and, with --strict, on warning lints). " + _BUILDS,
    )
    _model_options(report, "called without arguments, after torch.manual_seed")
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
    _overrides(report)
    _hydra_options(report)
    report.set_defaults(run=_report)

    schema = _command(
        commands,
        "schema",
        "write the JSON Schema of the init_cfg language (for editors, CI)",
        "Write the JSON Schema of an init_cfg (it is always JSON).",
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


def _command(
    commands: Any, name: str, summary: str, description: str, usage: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description, epilog=_EXIT, usage=usage
    )
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


def _overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "positional",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides (with --config-dir), e.g. model.init_cfg.head.std=0.02",
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
        help="a Hydra override (repeatable); the same as a positional OVERRIDE",
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


def _model_options(parser: argparse.ArgumentParser, how: str) -> None:
    parser.add_argument(
        "--model", metavar="PKG.MOD:FACTORY", help=f"a callable that builds the model ({how})"
    )


def _hydra_overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides given: positional ones and ``--override`` values."""
    if not args.config_dir and args.overrides:
        raise CommandError("--override needs --config-dir and --config-name.")
    return [*args.overrides, *args.positional]


def _validate(args: argparse.Namespace) -> int:
    from ._cli_show import print_findings

    keys = tuple(args.key_names.split(","))
    if args.config_dir or args.config_name:
        from . import hydra as ins_hydra
        from ._cli_build import compose

        cfg = compose(args.config_dir, args.config_name, _hydra_overrides(args))
        try:
            typed = ins_hydra.validate(cfg, keys)
        except InitCfgError as error:
            return print_findings(error.problems, args.json, {"init_cfgs": {}})
        counts = {path: len(rules) for path, rules in typed.items()}
        where = f"{args.config_name} composed from {args.config_dir}"
        return print_findings([], args.json, {"init_cfgs": counts}, summary=_summary(where, counts))
    if not args.positional:
        raise CommandError("give a FILE, or --config-dir and --config-name.")
    if args.overrides:
        raise CommandError("--override needs --config-dir and --config-name.")
    path, *nodes = args.positional
    counts, problems, notes = validate_file(path, nodes, keys)
    return print_findings(
        problems,
        args.json,
        {"init_cfgs": counts},
        notes=notes,
        summary=_summary(path, counts, sum(1 for note in notes if note.path != "defaults")),
    )


def _summary(where: str, counts: dict[str, int], unchecked: int = 0) -> str:
    rules = sum(counts.values())
    text = (
        f"{where}: valid, {len(counts)} init_cfg{'s' * (len(counts) != 1)} "
        f"with {rules} rule{'s' * (rules != 1)}"
    )
    return text + (f"; {unchecked} value{'s' * (unchecked != 1)} not checked" if unchecked else "")


def _built(args: argparse.Namespace, *, meta: bool, init_cfg_file: str | None = None) -> Any:
    """The model and its plan, from whichever source the arguments name (the one dispatch:
    a new config form adds a branch here)."""
    from . import _cli_build as build

    if args.model:
        if args.positional and args.command != "diff":
            raise CommandError(
                f"OVERRIDE values ({args.positional[0]!r}) need --config-dir and --config-name."
            )
        path = init_cfg_file if init_cfg_file is not None else getattr(args, "config", None)
        init_cfg = build.init_cfg_of(path, args.key) if path else None
        return build.from_factory(args.model, init_cfg, meta=meta, has_config=bool(path))
    if args.config_dir or args.config_name:
        cfg = build.compose(args.config_dir, args.config_name, _hydra_overrides(args))
        return build.from_hydra(cfg, args.node, args.config_name, meta=meta)
    raise CommandError(
        "give --model PKG.MOD:FACTORY (and --config FILE.yaml), or --config-dir and --config-name."
    )


def _plan(args: argparse.Namespace) -> int:
    from ._cli_show import print_findings, render_lints

    try:
        built = _built(args, meta=True)
    except InitCfgError as error:
        return print_findings(error.problems, args.json, {})
    if args.strict and (problems := built.strict_problems()):
        return print_findings(problems, args.json, {})
    if args.json:
        data = built.plan.to_dict()
        data["lints"] = [lint.to_dict() for lint in built.lints]
        print(json.dumps({"ok": True, "problems": [], **data}))
        return 0
    from .plan import render_plan

    text = render_plan(built.plan, lints=())
    print("\n".join(part for part in (text, render_lints(built.lints)) if part))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from ._cli_show import diff_rows, print_findings, render_diff

    plans = []
    try:
        if args.model:
            if len(args.positional) != 2:
                raise CommandError("give two init_cfg files (A.yaml B.yaml) with --model.")
            names = tuple(args.positional)
            for path in names:
                plans.append(_built(args, meta=True, init_cfg_file=path).plan)
        elif args.config_dir or args.config_name:
            overrides = _hydra_overrides(args)
            if not overrides:
                raise CommandError("give the OVERRIDE values to compare the config with.")
            names = ("without the overrides", "with them")
            for args.overrides, args.positional in (([], []), (overrides, [])):
                plans.append(_built(args, meta=True).plan)
        else:
            raise CommandError(
                "give --model and two init_cfg files, or --config-dir and "
                "--config-name with OVERRIDE values."
            )
    except InitCfgError as error:
        return print_findings(error.problems, args.json, {})
    rows = diff_rows(plans)
    if args.json:
        print(json.dumps({"ok": True, "changed": rows}))
    else:
        print(render_diff(rows, len(plans[0].parameters), names))
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.plot:  # before the model is built and initialized, which may take long
        from .plot import MissingExtraError, require_matplotlib

        try:
            require_matplotlib()
        except MissingExtraError as error:
            raise CommandError(f"--plot: {error}") from None
    import torch

    from ._cli_show import print_findings, render_lints
    from .stats import findings, measure, render_stats

    torch.manual_seed(0 if args.seed is None else args.seed)
    try:
        built = _built(args, meta=False)
    except InitCfgError as error:
        return print_findings(error.problems, args.json, {})
    if args.strict and (problems := built.strict_problems()):
        return print_findings(problems, args.json, {})
    plan = built.plan
    stats = measure(plan, plan.execute(seed=args.seed))
    found = findings(plan, stats)
    if args.plot:
        from .plot import plot

        plot(plan, stats, args.plot)
    if args.json:
        result = {
            "ok": not found,
            "model": type(plan.module).__name__,
            "seed": args.seed,
            "parameters": [row.to_dict() for row in stats],
            "findings": [vars(finding) for finding in found],
            "lints": [lint.to_dict() for lint in built.lints],
        }
        print(json.dumps(result))
    else:
        text = render_stats(stats, found, built.lints)
        print("\n".join(part for part in (text, render_lints(built.lints)) if part))
    if args.plot:
        print(f"Wrote the plot to {os.path.abspath(args.plot)}", file=sys.stderr)
    return 1 if found else 0


def _schema(args: argparse.Namespace) -> int:
    if args.hydra_rule:
        document = hydra_rule_schema()
    elif args.strategy:
        document = hydra_strategy_schema()
    else:
        document = init_cfg_schema()
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            raise CommandError(f"-o {args.output}: {error.strerror or error}") from None
        print(f"Wrote the schema to {os.path.abspath(args.output)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
