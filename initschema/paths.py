"""Patterns over dotted paths (``blocks.*.attn.proj.weight``), anchored on the whole path.

The language of a rule's ``params`` and of an override's ``name``:

- a name matches itself; dots separate names;
- ``*`` matches any run of characters within one name (never a dot);
- ``**`` as a whole name matches any number of names, none included
  (``**.bias``: every ``bias``; ``blocks.**.weight``: every ``weight`` below ``blocks``);
- ``re:`` starts a regular expression, matched with ``re.fullmatch``
  (``re:blocks\\.(0|11)\\.mlp\\.fc2\\.weight``).

Globs cannot capture; depth-scaled initializers take a regular expression of their own.
"""

from __future__ import annotations

import re

__all__ = ["compile_path_pattern", "is_pattern"]

_REGEX = "re:"


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a pattern rather than a plain (possibly dotted) path."""
    return text.startswith(_REGEX) or "*" in text


def compile_path_pattern(text: str) -> re.Pattern[str]:
    """The regular expression ``text`` stands for (raises ``ValueError`` with the reason
    when it is not a valid pattern)."""
    if text.startswith(_REGEX):
        try:
            return re.compile(text[len(_REGEX) :])
        except re.error as error:
            raise ValueError(f"{text!r} is not a regular expression: {error}") from None
    names = text.split(".")
    if any(not name for name in names):
        raise ValueError(f"{text!r} has an empty name (two dots, or a dot at an end).")
    pattern = ""
    for index, name in enumerate(names):
        first, last = index == 0, index == len(names) - 1
        if name == "**":
            if first and last:
                pattern += r"[^.]+(?:\.[^.]+)*"  # any path
            elif last:
                pattern += r"(?:\.[^.]+)*"  # 'a.**': a, and everything below it
            else:  # '**.b', 'a.**.b': names, each with its dot, or none
                pattern += ("" if first else r"\.") + r"(?:[^.]+\.)*"
            continue
        if "**" in name:
            raise ValueError(f"{text!r}: '**' must be a whole name (between dots).")
        if not first and names[index - 1] != "**":
            pattern += r"\."
        pattern += "[^.]*".join(re.escape(part) for part in name.split("*"))
    return re.compile(pattern)
