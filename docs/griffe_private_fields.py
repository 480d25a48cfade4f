"""A griffe extension for the API page: a pydantic model's private names are no fields.

griffe-pydantic (static mode) labels ``_layer_forms = field_validator(...)(parse_layer)``
a field, and its template then fails on the missing annotation; pydantic itself never
makes a field of a name that starts with ``_``.
"""

from __future__ import annotations

from typing import Any

import griffe


class PrivateNamesAreNoFields(griffe.Extension):
    """Runs after griffe-pydantic (listed after it in mkdocs.yml)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        for member in obj.members.values():
            if member.is_alias:
                continue
            if member.is_attribute and member.name.startswith("_"):
                member.labels.discard("pydantic-field")
            elif member.is_class or member.is_module:
                self._visit(member)
