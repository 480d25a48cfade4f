"""Griffe extensions for the API page (mkdocs.yml lists them after griffe-pydantic).

The docstrings are written for ``help()`` and editors, in reStructuredText's inline
style; the page is Markdown. Nothing here changes the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?([^`]+)`")


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """obj and everything defined under it (not what it imports)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_objects(member))  # type: ignore[arg-type]
    return found


class PrivateNamesAreNoFields(griffe.Extension):
    """pydantic never makes a field of a name that starts with ``_``; griffe-pydantic's
    static mode takes ``_layer_forms = field_validator(...)(parse_layer)`` for one, and
    its template then fails on the missing annotation."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.is_attribute and obj.name.startswith("_"):
                obj.labels.discard("pydantic-field")


class MarkdownDocstrings(griffe.Extension):
    """``:func:`validate``` reads as ``validate``; a paragraph's closing ``::`` (which
    introduces a literal block in reStructuredText) as ``:``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                text = _ROLE.sub(lambda m: f"`{m[1]}`", obj.docstring.value)
                obj.docstring.value = re.sub(r"::$", ":", text, flags=re.M)
