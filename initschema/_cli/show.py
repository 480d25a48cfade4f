"""What the ``initschema`` command prints: problems, notes, lints, and the diff of two plans."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ..cfg.initializer import shown_argument
from ..errors import Problem
from .yaml_files import Note

__all__ = [
    "diff_rows",
    "print_findings",
    "print_plan",
    "print_report",
    "render_diff",
    "render_lints",
    "summary",
]

_UNWRITTEN = {"initializer": "not written", "rule": ""}


def print_findings(
    problems: Sequence[Problem],
    as_json: bool,
    extra: dict[str, Any],
    *,
    notes: Sequence[Note] = (),
    summary: str = "",
    origins: Mapping[str, str] | None = None,
) -> int:
    """Print problems (or ``summary``, the all-clear) and notes; return the exit status.
    ``origins`` names the file that set the value at a problem's path, where known."""
    origins = origins or {}
    if as_json:
        shown = [
            {**vars(p), "file": origins.get(p.path, "")} if origins else vars(p) for p in problems
        ]
        print(
            json.dumps(
                {
                    "ok": not problems,
                    "problems": shown,
                    **({"notes": [vars(n) for n in notes]} if notes else {}),
                    **extra,
                }
            )
        )
        return 1 if problems else 0
    for problem in problems:
        where = f"Error in config {problem.path}: " if problem.path else "Error: "
        source = f" (set in {origins[problem.path]})" if origins.get(problem.path) else ""
        print(f"{where}{problem.message}{source}", file=sys.stderr)
    for note in notes:
        print(f"Note: {note}", file=sys.stderr)
    if summary and not problems:
        print(summary)
    return 1 if problems else 0


def summary(where: str, counts: dict[str, int], unchecked: int = 0) -> str:
    """``init.yaml: valid, 1 init_cfg with 3 rules``: a successful validate, in one line."""
    rules = sum(counts.values())
    text = (
        f"{where}: valid, {len(counts)} init_cfg{'s' * (len(counts) != 1)} "
        f"with {rules} rule{'s' * (rules != 1)}"
    )
    return text + (f"; {unchecked} value{'s' * (unchecked != 1)} not checked" if unchecked else "")


def print_plan(plan: Any, lints: Sequence[Any], as_json: bool) -> int:
    """``initschema plan``'s output: the plan table and ``lints`` (the user's, not the
    plan's own list), or both as JSON."""
    if as_json:
        data = plan.to_dict()
        data["lints"] = [lint.to_dict() for lint in lints]
        print(json.dumps({"ok": True, "problems": [], **data}))
        return 0
    from ..engine.plan import render_plan

    text = render_plan(plan, lints=())
    print("\n".join(part for part in (text, render_lints(lints)) if part))
    return 0


def print_report(
    plan: Any,
    stats: Sequence[Any],
    found: Sequence[Any],
    lints: Sequence[Any],
    seed: int | None,
    as_json: bool,
) -> int:
    """``initschema report``'s output: the measured statistics, the findings and the user's
    ``lints``, or all of them as JSON; exit status 1 when something is flagged."""
    if as_json:
        result = {
            "ok": not found,
            "model": type(plan.module).__name__,
            "seed": seed,
            "parameters": [row.to_dict() for row in stats],
            "findings": [vars(finding) for finding in found],
            "lints": [lint.to_dict() for lint in lints],
        }
        print(json.dumps(result))
    else:
        from ..diagnostics.stats import render_stats

        text = render_stats(stats, found, lints)
        print("\n".join(part for part in (text, render_lints(lints)) if part))
    return 1 if found else 0


def render_lints(lints: Sequence[Any]) -> str:
    """The lints section of a plan or a report (empty when there are none), wrapped at the
    terminal's width without breaking a path."""
    width = shutil.get_terminal_size((100, 24)).columns
    wrapped = [
        textwrap.fill(
            str(lint),
            width,
            initial_indent="  ",
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        for lint in lints
    ]
    return "Lints:\n" + "\n".join(wrapped) if lints else ""


def _writers(plan: Any) -> dict[str, tuple[Any, int]]:
    """For each parameter something writes: the action that writes it last and the
    parameter's place in that action (else the first user code that may write it)."""
    found: dict[str, tuple[Any, int]] = {
        path: (writer.action, writer.position) for path, writer in plan.writers().items()
    }
    for action in plan.actions:
        if action.kind in ("call", "method"):
            for position, path in enumerate(action.params):
                found.setdefault(path, (action, position))
    return found


def _side(writer: tuple[Any, int] | None) -> dict[str, str]:
    if writer is None:
        return dict(_UNWRITTEN)
    action, position = writer
    return {"initializer": action.describe_at(position), "rule": action.source}


def _change(a: tuple[Any, int] | None, b: tuple[Any, int] | None) -> str:
    """What changes for one parameter: the arguments that differ when the initializer type
    and role stay, else the two initializers."""
    if a is not None and b is not None and a[0].kind == b[0].kind == "write":
        (action_a, position_a), (action_b, position_b) = a, b
        role_a = action_a.role(action_a.tensors[position_a])
        role_b = action_b.role(action_b.tensors[position_b])
        if type(action_a.init) is type(action_b.init) and role_a == role_b == "weight":
            old, new = action_a.init.arguments(), action_b.init.arguments()
            changed = [
                f"{k}={shown_argument(old[k])} → {shown_argument(new[k])}"
                for k in old
                if old[k] != new[k]
            ]
            if changed:
                return f"{action_a.init.type_name}({', '.join(changed)})"
    before = "not written" if a is None else a[0].brief_at(a[1])
    after = "not written" if b is None else b[0].brief_at(b[1])
    return f"{before} → {after}"


def diff_rows(plans: Sequence[Any]) -> list[dict[str, Any]]:
    """The parameters whose initialization differs (what is written, not which rule
    writes it): path, each side's initializer and rule, and the change in brief; one pass
    over each plan and over the parameters."""
    sides = [_writers(plan) for plan in plans]
    rows = []
    for path, _ in plans[0].parameters:
        a, b = sides[0].get(path), sides[1].get(path)
        first, second = _side(a), _side(b)
        if first["initializer"] != second["initializer"]:
            rows.append({"path": path, "a": first, "b": second, "change": _change(a, b)})
    return rows


def render_diff(rows: Sequence[dict[str, Any]], total: int, names: Sequence[str]) -> str:
    from rich.markup import escape

    from ..engine.tables import new_table, render

    text = f"{len(rows)} of {total} parameters change ({names[0]} → {names[1]})"
    if not rows:
        return text
    table = new_table("parameter", "change", "rule")
    for row in rows:
        rules = [row["a"]["rule"], row["b"]["rule"]]
        rule = rules[1] if rules[0] in ("", rules[1]) else " → ".join(r or "-" for r in rules)
        table.add_row(row["path"], escape(row["change"]), escape(rule))
    return f"{text}\n{render(table)}"
