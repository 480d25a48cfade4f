"""The command line of ``initschema``: its subcommands, their options and help."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from .. import __version__

__all__ = ["EXIT", "import_option", "parser"]

EXIT = (
    "Exit status: 0 ok; 1 findings (an invalid config, lints under --strict, flagged parameters "
    "of report); 2 a usage error, a file it cannot read (or whose aliases expand too far), or "
    "a model that fails to build; 141 when the reader of its output leaves (| head), 130 on "
    "Ctrl-C."
)
_BUILDS = (
    "Building it calls --model, or instantiates the config's model node, running the "
    "_target_s it names (the current directory is importable, after installed packages)."
)


def parser(description: str) -> argparse.ArgumentParser:
    """The command line of ``initschema`` (each subcommand's name is ``command``)."""
    parser = argparse.ArgumentParser(
        prog="initschema",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(EXIT, 92),
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
    import_option(schema)
    schema.add_argument("-o", "--output", help="write to this file instead of standard output")
    return parser


def _command(
    commands: Any, name: str, summary: str, description: str, usage: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description, epilog=EXIT, usage=usage
    )
    return parser


def import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE``, the same in every form of the command."""
    parser.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first, so that the initializers it registers (in initschema "
        "or in MMEngine's registry) are known (repeatable)",
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
        default="init_cfg,init_rules",
        help="comma-separated names of the keys whose values are init_cfgs, at any depth "
        "(default: init_cfg,init_rules)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    import_option(parser)


def _init_cfg_options(parser: argparse.ArgumentParser, *, config: bool) -> None:
    """Where the init_cfg comes from: a file (``--config``, ``--key`` inside it) with
    ``--model``, or the model's ``--node`` of a Hydra config."""
    if config:
        parser.add_argument("--config", help="a YAML file holding the init_cfg to apply")
    parser.add_argument("--key", help="the dotted key of the init_cfg in the YAML file(s)")
    parser.add_argument("--node", default="model", help="the model's node in a Hydra config")
    parser.add_argument(
        "--rules",
        metavar="KEY",
        help="in a Hydra config, the key of the rules to plan for a model that takes no "
        "init_cfg (a plain nn.Module), e.g. init_rules",
    )


def _model_options(parser: argparse.ArgumentParser, how: str) -> None:
    parser.add_argument(
        "--model", metavar="PKG.MOD:FACTORY", help=f"a callable that builds the model ({how})"
    )
