"""The ``initschema`` command: ``initschema schema`` writes the init_cfg JSON Schema."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from .schema import hydra_rule_schema, hydra_strategy_schema, init_cfg_schema

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="initschema", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
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
    schema.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first, so that the initializers it registers are in the "
        "schema (repeatable)",
    )
    schema.add_argument("-o", "--output", help="write to this file instead of standard output")
    args = parser.parse_args(argv)
    for module in args.modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            schema.error(
                f"--import {module}: cannot import it ({error}). Put the directory that "
                f"holds it on PYTHONPATH, or install its package."
            )
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
