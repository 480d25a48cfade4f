"""Patterns over dotted paths (``blocks.*.attn.proj.weight``), anchored on the whole path.

The language of a rule's ``params`` and of an override's ``name``:

- a name matches itself; dots separate names;
- ``*`` matches any run of characters within one name (never a dot);
- ``**`` as a whole name matches any number of names, none included
  (``**.bias``: every ``bias``; ``blocks.**.weight``: every ``weight`` below ``blocks``);
- ``re:`` starts a regular expression, matched against the whole path
  (``re:blocks\\.(0|11)\\.mlp\\.fc2\\.weight``).

Globs cannot capture; depth-scaled initializers take a regular expression of their own.

Every pattern a config gives (these, ``revise_keys``, ``layer_id_regex``) runs on RE2,
whose matching takes time linear in the text: no pattern can make a compile hang, as
``re:(.*)*z`` does with Python's backtracking ``re``. RE2 refuses what needs
backtracking (backreferences, lookaround); :func:`compile_user_regex` says so.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Protocol

import re2

from ..errors import shown

__all__ = [
    "UserMatch",
    "UserRegex",
    "compile_path_pattern",
    "compile_replacement",
    "compile_user_regex",
    "is_pattern",
    "substitute",
]

_REGEX = "re:"


class UserMatch(Protocol):
    def group(self, index: int | str = 0, /) -> str | None: ...
    def span(self, index: int | str = 0, /) -> tuple[int, int]: ...


class UserRegex(Protocol):
    """What initschema uses of a compiled RE2 pattern (its API mirrors ``re.Pattern``)."""

    @property
    def groups(self) -> int: ...
    @property
    def groupindex(self) -> dict[str, int]: ...
    def fullmatch(self, text: str) -> UserMatch | None: ...
    def search(self, text: str) -> UserMatch | None: ...
    def finditer(self, text: str) -> Iterator[UserMatch]: ...


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error is raised as an InitCfgError; no stderr noise
    return options


_OPTIONS = _options()


def compile_user_regex(pattern: str) -> UserRegex:
    """A regular expression from a config, on RE2 (linear-time matching); a
    ``ValueError`` naming the pattern when RE2 cannot run it."""
    try:
        compiled: UserRegex = re2.compile(pattern, _OPTIONS)
    except (re2.error, UnicodeError) as error:
        reason = "not UTF-8" if isinstance(error, UnicodeError) else error.args[0]
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        reason = shown(str(reason))[1:-1]  # RE2 quotes the part it could not read
        raise ValueError(
            f"{shown(pattern)} is not a regular expression RE2 can run ({reason}); config "
            f"patterns run on RE2, which matches in linear time: no backreferences or "
            f"lookaround, \\z for \\Z."
        ) from None
    return compiled


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a pattern rather than a plain (possibly dotted) path."""
    return text.startswith(_REGEX) or "*" in text


def compile_path_pattern(text: str) -> UserRegex:
    """The regular expression ``text`` stands for, to match whole paths with
    ``fullmatch`` (raises ``ValueError`` with the reason when it is not a valid pattern)."""
    if text.startswith(_REGEX):
        return compile_user_regex(text[len(_REGEX) :])
    names = text.split(".")
    if any(not name for name in names):
        raise ValueError(f"{shown(text)} has an empty name (two dots, or a dot at an end).")
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
            raise ValueError(f"{shown(text)}: '**' must be a whole name (between dots).")
        if not first and names[index - 1] != "**":
            pattern += r"\."
        pattern += "[^.]*".join(re.escape(part) for part in name.split("*"))
    return compile_user_regex(pattern)


def compile_replacement(regex: UserRegex, template: str) -> tuple[str | int, ...]:
    """A ``revise_keys`` replacement as pieces: text, and the numbers of the groups of
    ``regex`` to put between (``\\1``…``\\99``, ``\\g<1>``, ``\\g<name>``; ``\\\\``
    is a backslash). These mean what they mean to ``re.sub``; Python's other escapes
    are refused rather than read differently. A ``ValueError`` says what is wrong."""
    pieces: list[str | int] = []
    text = ""
    at = 0
    while (slash := template.find("\\", at)) != -1:
        text += template[at:slash]
        group, at = _reference(regex, template, slash)
        if isinstance(group, str):
            text += group
        else:
            pieces += [text, group]
            text = ""
    return (*pieces, text + template[at:])


def _reference(regex: UserRegex, template: str, slash: int) -> tuple[str | int, int]:
    """What the escape at ``template[slash]`` stands for (text, or a group number), and
    where the rest begins."""
    rest = template[slash + 1 :]
    if rest.startswith("\\"):
        return "\\", slash + 2
    if found := re.match(r"g<([^>]*)>", rest):
        name = found.group(1)
        group = int(name) if name.isdecimal() else regex.groupindex.get(name)
        if group is None:
            raise ValueError(
                f"replacement {shown(template)} names group {shown(name)}, which its pattern "
                f"does not have (its named groups: {', '.join(regex.groupindex) or 'none'})."
            )
        end = slash + 1 + found.end()
    elif found := re.match(r"[1-9][0-9]?", rest):
        if re.match(r"[0-7]{3}", rest):
            raise ValueError(
                f"replacement {shown(template)}: write \\g<{rest[:2]}> for group {rest[:2]} "
                f"(\\{rest[:3]} reads as an octal escape in Python)."
            )
        group, end = int(found.group()), slash + 1 + found.end()
    else:
        raise ValueError(
            f"replacement {shown(template)} has the escape {shown(template[slash : slash + 2])}; "
            f"a replacement may use \\1…\\99, \\g<n> and \\g<name> for groups and \\\\ for a "
            f"backslash."
        )
    if group > regex.groups:
        raise ValueError(
            f"replacement {shown(template)} refers to group {group}, but its pattern has "
            f"{regex.groups} group{'s' if regex.groups != 1 else ''}."
        )
    return group, end


@functools.lru_cache(maxsize=64)
def _rewriter(pattern: str, template: str) -> tuple[UserRegex, tuple[str | int, ...]]:
    regex = compile_user_regex(pattern)
    return regex, compile_replacement(regex, template)


def substitute(pattern: str, template: str, text: str) -> str:
    """``re.sub(pattern, template, text)`` with the pattern on RE2 (see
    :func:`compile_replacement` for the template)."""
    regex, pieces = _rewriter(pattern, template)
    out = []
    at = 0
    for match in regex.finditer(text):
        start, end = match.span()
        out.append(text[at:start])
        out.extend(p if isinstance(p, str) else match.group(p) or "" for p in pieces)
        at = end
    out.append(text[at:])
    return "".join(out)
