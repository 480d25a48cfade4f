"""JSON Schema of the init_cfg language, from the registered pydantic models.

pydantic would describe the rule union with an OpenAPI ``discriminator`` that
ordinary JSON Schema validators and YAML editors ignore; here the ``type`` tag is
written as ``if``/``then`` branches instead, so a validator reports the error of
the branch the ``type`` selects (``mode`` must be one of …), not "matches none".
"""

from __future__ import annotations

from typing import Any

from . import builtin_initializers  # noqa: F401  (registers the built-ins)
from .initializers import WeightInit
from .registry import WEIGHT_INITIALIZERS

__all__ = ["hydra_rule_schema", "init_cfg_schema"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_LAYER = {
    "description": WeightInit.model_fields["layer"].description,
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "null"},
    ],
}
_DEFAULTS = {"type": "array", "description": "Hydra's defaults list."}


def _rule_properties(cls: type) -> dict[str, Any]:
    schema = cls.model_json_schema()  # type: ignore[attr-defined]
    properties: dict[str, Any] = schema["properties"]
    for spec in properties.values():
        spec.pop("title", None)
    if "layer" in properties:
        properties["layer"] = _LAYER
    properties["override"] = {
        "description": properties["override"].get("description"),
        "$ref": "#/$defs/overrides",
    }
    return properties


def _defs() -> dict[str, Any]:
    names = list(WEIGHT_INITIALIZERS)
    branches = []
    defs: dict[str, Any] = {}
    for name, cls in WEIGHT_INITIALIZERS.items():
        properties = _rule_properties(cls)
        required = [k for k, f in cls.model_fields.items() if f.is_required()]
        defs[name] = {
            "type": "object",
            "description": ((cls.__doc__ or "").strip().splitlines() or [name])[0],
            "properties": {"type": {"const": name}, **properties},
            "required": ["type", *required],
            "additionalProperties": False,
        }
        branches.append(
            {"if": {"properties": {"type": {"const": name}}}, "then": {"$ref": f"#/$defs/{name}"}}
        )
    defs["rule"] = {
        "type": "object",
        "properties": {"type": {"enum": names, "description": "The initializer."}},
        "required": ["type"],
        "allOf": branches,
    }
    override_branches = []
    for name in names:
        rule = defs[name]
        properties = {k: v for k, v in rule["properties"].items() if k != "override"}
        defs[f"{name}_override"] = {
            **rule,
            "properties": {"name": {"type": "string", "minLength": 1}, **properties},
        }
        override_branches.append(
            {
                "if": {"properties": {"type": {"const": name}}},
                "then": {"$ref": f"#/$defs/{name}_override"},
            }
        )
    defs["override"] = {
        "type": "object",
        "description": "A submodule (its attribute name) and the rule for all of it; with "
        "only a name, the parent rule's arguments.",
        "properties": {"name": {"type": "string", "minLength": 1}, "type": {"enum": names}},
        "if": {"required": ["type"]},
        "then": {"allOf": override_branches},
        "else": {"maxProperties": 1},
    }
    defs["overrides"] = _by_shape(
        array={
            "type": "array",
            "items": {"allOf": [{"$ref": "#/$defs/override"}, {"required": ["name"]}]},
        },
        tagged=("name", {"$ref": "#/$defs/override"}),
        mapping={
            "type": "object",
            "additionalProperties": _nullable({"$ref": "#/$defs/override"}),
        },
    )
    return defs


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (a switched-off rule), without an uninformative ``anyOf``."""
    return {"if": {"type": "null"}, "then": {}, "else": schema}


def _by_shape(
    array: dict[str, Any], tagged: tuple[str, dict[str, Any]], mapping: dict[str, Any]
) -> dict[str, Any]:
    """A list, an object with the tag key, or a mapping; chosen by ``if``/``then`` so that
    errors come from the branch the value's shape selects."""
    key, schema = tagged
    return {
        "if": {"type": "array"},
        "then": array,
        "else": {
            "if": {"type": "object", "required": [key]},
            "then": schema,
            "else": _nullable(mapping),
        },
    }


def init_cfg_schema() -> dict[str, Any]:
    """The schema of an ``init_cfg``: a rule, a list of rules, or a mapping of named rules
    (which may also hold Hydra's ``defaults`` list)."""
    return {
        "$schema": _DRAFT,
        "title": "initschema init_cfg",
        "$defs": _defs(),
        **_by_shape(
            array={"type": "array", "items": {"$ref": "#/$defs/rule"}},
            tagged=("type", {"$ref": "#/$defs/rule"}),
            mapping={
                "type": "object",
                "properties": {"defaults": _DEFAULTS},
                "additionalProperties": _nullable({"$ref": "#/$defs/rule"}),
            },
        ),
    }


def hydra_rule_schema() -> dict[str, Any]:
    """The schema of a rule file in Hydra's ``init`` group: its ``type`` usually comes from
    the defaults list, so every initializer's keys are allowed and none is required."""
    defs = _defs()
    properties: dict[str, Any] = {"defaults": _DEFAULTS, "type": defs["rule"]["properties"]["type"]}
    for name in WEIGHT_INITIALIZERS:
        for key, spec in defs[name]["properties"].items():
            properties.setdefault(key, spec)
    return {
        "$schema": _DRAFT,
        "title": "initschema rule (Hydra init group file)",
        "$defs": defs,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
