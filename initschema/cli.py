"""The ``initschema`` command: ``initschema schema`` writes the init_cfg JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .schema import hydra_rule_schema, init_cfg_schema

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="initschema", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser(
        "schema", help="write the JSON Schema of the init_cfg language (for editors, CI)"
    )
    schema.add_argument(
        "--hydra-rule",
        action="store_true",
        help="the schema of a rule file in Hydra's `init` group instead of a whole init_cfg",
    )
    schema.add_argument("-o", "--output", help="write to this file instead of standard output")
    args = parser.parse_args(argv)
    document = hydra_rule_schema() if args.hydra_rule else init_cfg_schema()
    text = json.dumps(document, indent=2) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0
