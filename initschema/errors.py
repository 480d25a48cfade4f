"""The exceptions of initschema, and turning pydantic's errors into config-path problems."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = [
    "InitCfgError",
    "InitCfgTypeError",
    "InitSchemaError",
    "InitUsageError",
    "Problem",
    "TypeProblem",
    "did_you_mean",
    "join_path",
    "redact",
    "shown",
]

_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxdict, _ECHO.maxlist, _ECHO.maxtuple = 3, 6, 8, 8
_ECHO.maxstring = _ECHO.maxother = 80
_MESSAGE_LIMIT = 2000
"""The most characters of one problem's message (an echoed input cannot make it longer)."""
_PATH_LIMIT = 240
"""The most characters of a problem's path (the middle of a longer one is cut)."""
_LISTED = 20
"""The most problems an :class:`InitCfgError`'s text lists (all stay in ``problems``)."""


def shown(value: object) -> str:
    """``repr(value)`` bounded in length and depth, for messages that echo an input: a
    list of a million numbers, or one nested a thousand deep, shows as its first items
    (``[1, 2, 3, ...]``)."""
    try:
        text = _ECHO.repr(value)
    except Exception:  # a hostile __repr__ (or one too deep for Python): show the type
        return f"<{type(value).__name__}>"
    return text if len(text) <= _ECHO.maxother * 2 else text[: _ECHO.maxother * 2] + "..."


class InitSchemaError(Exception):
    """Base of every exception initschema raises on purpose."""


class InitUsageError(InitSchemaError, TypeError):
    """An API called on something it cannot work with (e.g. planning ``init_weights`` of a
    module that is not a :class:`initschema.BaseModule`)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, and what (including the fix)."""

    path: str
    message: str

    def __post_init__(self) -> None:
        # A URL's password never reaches a terminal or a log, whoever wrote the message
        # (an origin such as "set on the command line: …checkpoint=https://u:p@h/x").
        object.__setattr__(self, "message", redact(self.message))
        # Every message is bounded, whatever a caller echoed into it.
        if len(self.message) > _MESSAGE_LIMIT:
            cut = len(self.message) - _MESSAGE_LIMIT
            object.__setattr__(
                self, "message", f"{self.message[:_MESSAGE_LIMIT]}... ({cut} characters cut)"
            )
        if len(self.path) > _PATH_LIMIT:  # a key a million characters long
            half = _PATH_LIMIT // 2
            object.__setattr__(self, "path", f"{self.path[:half]}...{self.path[-half:]}")

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class TypeProblem(Problem):
    """A value of the wrong type (where MMEngine raises ``TypeError``), not a bad value."""


class InitCfgError(InitSchemaError, ValueError):
    """An init_cfg that cannot be used: raised before any weight is written.

    ``problems`` lists every problem found, each with its config path.
    """

    def __new__(cls, problems: Sequence[Problem]) -> InitCfgError:
        # Every problem a wrong type: also a TypeError, which code written against
        # MMEngine catches there.
        if cls is InitCfgError and problems and all(isinstance(p, TypeProblem) for p in problems):
            cls = InitCfgTypeError
        return super().__new__(cls, problems)

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems[:_LISTED])
            more = len(self.problems) - _LISTED
            if more > 0:
                lines += f"\n  ... and {more} more (all in the exception's problems)"
            text = f"{len(self.problems)} problems in init_cfg:\n{lines}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[InitCfgError], tuple[tuple[Problem, ...]]]:
        # Pickled by its problems (a process pool or a Hydra launcher sends it back).
        return type(self), (self.problems,)

    @classmethod
    def single(cls, path: str, message: str) -> InitCfgError:
        return cls([Problem(path, message)])


class InitCfgTypeError(InitCfgError, TypeError):
    """An :class:`InitCfgError` whose every problem is a value of the wrong type (a string
    ``init_cfg``, ``layer=1``, ``bias='1'``): raised as one by ``InitCfgError(problems)``."""


def join_path(base: str, *parts: str | int) -> str:
    """``join_path('init_cfg', 1, 'override', 0)`` → ``'init_cfg[1].override[0]'``."""
    path = base
    for part in parts:
        if isinstance(part, int):
            path = f"{path}[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it hidden: ``https://***@host/x``."""
    return _CREDENTIALS.sub(r"\1***@", text)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'std'?"`` when a close choice exists, else ``""``."""
    if len(word) > 200:  # no name is that long; difflib's work grows with the product
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def literal_choices(annotation: Any) -> tuple[Any, ...]:
    """The values of the ``Literal`` in ``annotation`` (also inside Optional/Annotated)."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        if found := literal_choices(arg):
            return found
    return ()


def _message(model: type[BaseModel], type_name: str, error: Any) -> str:
    loc = error["loc"]
    field = str(loc[0]) if loc else ""
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = [name for name in model.model_fields]
        return (
            f"unknown key {shown(field)} for {type_name}{did_you_mean(field, valid) or '.'} "
            f"Valid keys: type, {', '.join(valid)}."
        )
    if kind == "missing":
        return f"{type_name} requires {shown(field)}; add it to the rule."
    if kind == "literal_error":
        info = model.model_fields.get(field)
        choices = ", ".join(str(c) for c in literal_choices(info.annotation if info else None))
        return f"{shown(value)} is not a valid {field}; expected one of {choices}."
    if kind in ("float_type", "int_type", "float_parsing", "finite_number"):
        return f"{field} must be a finite number, got {shown(value)}."
    if kind in ("string_type", "tuple_type", "list_type"):
        return f"{field} must be a string, got {shown(value)}."
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    msg = re.sub(r"^\w+ should", f"{field} should", str(error["msg"]))
    return f"{msg}, got {shown(value)}."


_TYPE_ERRORS = frozenset(
    ("float_type", "int_type", "bool_type", "string_type", "tuple_type", "list_type",
     "dict_type", "none_required", "model_type", "is_instance_of")
)  # fmt: skip
"""pydantic's error types for a value of the wrong type."""


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], type_name: str, path: str
) -> list[Problem]:
    """Turn a pydantic ``ValidationError`` of ``model`` into problems rooted at ``path``."""
    problems = []
    for item in error.errors():
        loc = [part for part in item["loc"] if isinstance(part, int | str)]
        wrong_type = item["type"] in _TYPE_ERRORS or isinstance(
            item.get("ctx", {}).get("error"), InitCfgTypeError
        )
        kind = TypeProblem if wrong_type else Problem
        problems.append(kind(join_path(path, *loc), _message(model, type_name, item)))
    return problems
