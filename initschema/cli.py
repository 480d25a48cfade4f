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
    initschema validate|plan|report CONFIG.py [--cfg-options KEY=VALUE ...]   # MMEngine

plan, diff and report build the model: they call --model, or run the ``_target_``s of the
config's model node (the current directory is importable, after installed packages).
validate builds nothing and runs no code of the config. An MMEngine config file
(CONFIG.py, with initschema[mmengine]) is Python: reading it runs it; see
``initschema validate CONFIG.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._cli import mmengine_config as _mmengine_config
from ._cli.args import parser as cli_parser
from ._cli.yaml_files import CommandError, validate_file
from .cfg.schema import hydra_rule_schema, hydra_strategy_schema, init_cfg_schema
from .errors import InitCfgError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    run: Callable[[argparse.Namespace], int]
    if _mmengine_config.is_mmengine_form(argv):  # validate|plan|report CONFIG.py
        parser = _mmengine_config.parser(argv[0])
        args, run = parser.parse_args(argv[1:]), _mmengine_config.run
    else:
        parser = cli_parser((__doc__ or "").replace("``", ""))
        args, extra = parser.parse_known_args(argv)
        unknown = [arg for arg in extra if arg.startswith("-") or not hasattr(args, "positional")]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if extra:  # positionals after an option (`--config-dir conf a=1 --strict b=2`)
            args.positional = [*args.positional, *extra]
        run = _run
    try:
        result = run(args)
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


def _run(args: argparse.Namespace) -> int:
    from ._cli.build import import_user_module

    for module in args.modules:
        import_user_module(module, "--import", engine=args.command != "validate")
    return _COMMANDS[args.command](args)


def _hydra_overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides given: positional ones and ``--override`` values."""
    if not args.config_dir and args.overrides:
        raise CommandError("--override needs --config-dir and --config-name.")
    return [*args.overrides, *args.positional]


def _validate(args: argparse.Namespace) -> int:
    from ._cli.show import print_findings, summary

    keys = tuple(args.key_names.split(","))
    if args.config_dir or args.config_name:
        from . import hydra as ins_hydra
        from ._cli.build import compose

        cfg = compose(args.config_dir, args.config_name, _hydra_overrides(args))
        try:
            typed = ins_hydra.validate(cfg, keys)
        except InitCfgError as error:
            return print_findings(error.problems, args.json, {"init_cfgs": {}})
        counts = {path: len(rules) for path, rules in typed.items()}
        where = f"{args.config_name} composed from {args.config_dir}"
        if not counts:  # nothing checked is no pass: the rules may sit under another key
            raise CommandError(
                f"{where} has no node under {' or '.join(keys)}, so nothing was checked; "
                f"name the keys that hold your rules with --keys (e.g. --keys init_cfg,my_rules)."
            )
        return print_findings([], args.json, {"init_cfgs": counts}, summary=summary(where, counts))
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
        summary=summary(path, counts, sum(1 for note in notes if note.path != "defaults")),
    )


def _built(args: argparse.Namespace, *, meta: bool, init_cfg_file: str | None = None) -> Any:
    """The model and its plan, from whichever source the arguments name (the one dispatch:
    a new config form adds a branch here)."""
    from ._cli import build as build

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
        return build.from_hydra(cfg, args.node, args.config_name, meta=meta, rules=args.rules)
    raise CommandError(
        "give --model PKG.MOD:FACTORY (and --config FILE.yaml), or --config-dir and --config-name."
    )


def _plan(args: argparse.Namespace) -> int:
    from ._cli.show import print_findings, print_plan

    try:
        built = _built(args, meta=True)
    except InitCfgError as error:
        return print_findings(error.problems, args.json, {})
    if args.strict and (problems := built.strict_problems()):
        return print_findings(problems, args.json, {})
    return print_plan(built.plan, built.lints, args.json)


def _diff(args: argparse.Namespace) -> int:
    from ._cli.show import diff_rows, print_findings, render_diff

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
        from .diagnostics.plot import MissingExtraError, require_matplotlib

        try:
            require_matplotlib()
        except MissingExtraError as error:
            raise CommandError(f"--plot: {error}") from None
    import torch

    from ._cli.show import print_findings, print_report
    from .diagnostics.stats import findings, measure

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
        from .diagnostics.plot import plot

        plot(plan, stats, args.plot)
    status = print_report(plan, stats, found, built.lints, args.seed, args.json)
    if args.plot:
        print(f"Wrote the plot to {os.path.abspath(args.plot)}", file=sys.stderr)
    return status


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


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": _validate,
    "plan": _plan,
    "diff": _diff,
    "report": _report,
    "schema": _schema,
}
