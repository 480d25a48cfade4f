"""JSON Schema of the init_cfg language, from the registered pydantic models.

One document per kind of file an editor opens:

- :func:`init_cfg_schema`: a whole init_cfg, as the parser takes it (a rule, a list of
  rules, or a mapping of named rules). A mapping with Hydra's ``defaults`` list is a
  strategy file and gets the strategy schema.
- :func:`hydra_strategy_schema`: a strategy file (``initschema/conf/init_strategy/``), whose
  defaults list picks rule files and whose rules may tweak the composed ones, and any
  ``init_cfg`` node that tweaks a composed init_cfg. A tweak's type is in a file the
  schema cannot see, so nothing is required and an untyped rule may hold any
  initializer's keys (each value must suit one of them); ``initschema.hydra.validate``
  checks the composed config.
- :func:`hydra_rule_schema`: a rule file in Hydra's ``init`` group, typed by the
  initializer option its defaults list extends (``- kaiming``); nothing is required.

A rule is typed by its ``type``, else by its Hydra ``_target_`` (the class's import
path). pydantic would describe that union with an OpenAPI ``discriminator`` that plain
JSON Schema validators and YAML editors ignore; here each known tag selects an
``if``/``then`` branch, so a validator reports the error of the branch the tag selects
(``mode`` must be one of …), not "matches none". Wherever a value goes, an OmegaConf
interpolation (``${…}``) or Hydra's missing value (``???``) is accepted: it is checked
once the config is composed and resolved.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from typing import Any

from . import builtin as builtin_initializers  # noqa: F401  (registers the built-ins)
from .initializer import WEIGHT_INITIALIZERS, Initializer
from .registry import option_name, target_names
from .weight_init import WeightInit

__all__ = [
    "ENTRY_POINTS",
    "hydra_rule_schema",
    "hydra_strategy_schema",
    "init_cfg_schema",
    "load_entry_points",
]

Schema = dict[str, Any]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Shared definitions are named with a hyphen: registered names are identifiers, so the
# per-initializer definitions ("Normal", "Normal.partial", …) cannot collide with them.
_HYDRA_VALUE = {"$ref": "#/$defs/hydra-value"}
_NOTES = ("description", "default", "examples", "deprecated")
_DEFAULTS = {"type": "array", "description": "Hydra's defaults list."}


def _value(schema: Schema, **notes: Any) -> Schema:
    """``schema``, or an interpolation or ``???`` in its place (checked once resolved)."""
    return {**notes, "if": _HYDRA_VALUE, "then": {}, "else": schema}


def _nullable(schema: Schema) -> Schema:
    """``schema`` or null (a switched-off rule), without an uninformative ``anyOf``."""
    return {"if": {"type": "null"}, "then": {}, "else": schema}


_OBJECT_OR_NULL = _value({"type": ["object", "null"]})
_NAME = _value({"type": "string", "minLength": 1}, description="Attribute name of the submodule.")
_INSTANTIATE_KEYS = {
    key: _value(spec, description="Read by hydra.utils.instantiate; initschema ignores it.")
    for key, spec in [
        ("_recursive_", {"type": "boolean"}),
        ("_convert_", {"type": "string"}),
        ("_partial_", {"type": "boolean"}),
    ]
}


def _field(spec: Schema, refs: Schema, seen: frozenset[str] = frozenset()) -> Schema:
    """A pydantic property schema with every value in it (list items included) open to
    interpolations, its local ``$ref`` inlined and its ``null`` option an ``if``."""
    spec = dict(spec)
    ref = spec.pop("$ref", "")
    notes = {k: spec.pop(k) for k in _NOTES if k in spec}
    spec.pop("title", None)
    if ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        # A recursive model cannot be inlined: past its first level, anything goes.
        inlined = _value({}) if name in seen else _field(refs[name], refs, seen | {name})
        return {**inlined, **notes, "else": {**inlined["else"], **spec}}
    for key in ("items", "additionalProperties"):
        if isinstance(spec.get(key), dict):
            spec[key] = _field(spec[key], refs, seen)
    if "prefixItems" in spec:
        spec["prefixItems"] = [_field(item, refs, seen) for item in spec["prefixItems"]]
    if "properties" in spec:
        spec["properties"] = {k: _field(v, refs, seen) for k, v in spec["properties"].items()}
    if "anyOf" in spec:
        options = [_field(option, refs, seen)["else"] for option in spec.pop("anyOf")]
        rest = [option for option in options if option != {"type": "null"}]
        choice = rest[0] if len(rest) == 1 else {"anyOf": rest}
        spec.update(_nullable(choice) if len(rest) < len(options) else choice)
    return _value(spec, **notes)


def _layer() -> Schema:
    return {
        "description": WeightInit.model_fields["layer"].description,
        "if": {"type": "array"},
        "then": {"items": {"type": "string"}},
        "else": _nullable({"type": "string"}),
    }


def _fields(cls: type[Initializer]) -> dict[str, Schema]:
    """The properties of an initializer model but ``override``."""
    schema = cls.model_json_schema()
    refs = schema.get("$defs", {})
    fields = {k: _field(v, refs) for k, v in schema["properties"].items() if k != "override"}
    if "layer" in fields:
        fields["layer"] = _layer()  # a name or a list of names (pydantic's schema: a list)
    return fields


def _field_defs() -> tuple[dict[str, dict[str, Schema]], dict[str, Schema]]:
    """Each initializer's fields but ``override`` as ``$ref``s, and the definitions they
    refer to, one per distinct field schema (``field-bias``, ``field-std-TruncNormal``)."""
    properties: dict[str, dict[str, Schema]] = {}
    defs: dict[str, Schema] = {}
    named: dict[str, str] = {}
    for name, cls in WEIGHT_INITIALIZERS.items():
        properties[name] = {}
        for key, spec in _fields(cls).items():
            text = json.dumps(spec, sort_keys=True)
            if text not in named:
                named[text] = f"field-{key}-{name}" if f"field-{key}" in defs else f"field-{key}"
                defs[named[text]] = spec
            properties[name][key] = {"$ref": f"#/$defs/{named[text]}"}
    return properties, defs


def _override_property(partial: bool) -> Schema:
    return {
        "description": WeightInit.model_fields["override"].description,
        "$ref": f"#/$defs/override-list{'.partial' if partial else ''}",
    }


def _initializer_defs(
    name: str, cls: type[Initializer], fields: dict[str, Schema]
) -> dict[str, Schema]:
    """A rule and an override entry of one initializer, complete and partial."""
    required = [key for key, field in cls.model_fields.items() if field.is_required()]
    common = {
        "type": _value({"const": name}),
        "_target_": _value({"enum": list(target_names(cls))}),
        **_INSTANTIATE_KEYS,
    }
    description = ((cls.__doc__ or "").strip().splitlines() or [name])[0]
    defs: dict[str, Schema] = {}
    for partial in (False, True):
        suffix = ".partial" if partial else ""
        head = {"defaults": _DEFAULTS} if partial else {}
        rule = {**head, **common, **fields, "override": _override_property(partial)}
        entry = {"name": _NAME, **common, **fields}
        for key, properties in [(name, rule), (f"{name}.entry", entry)]:
            defs[key + suffix] = {
                "type": "object",
                "description": description,
                "properties": properties,
                **({} if partial or not required else {"required": required}),
                "additionalProperties": False,
            }
    return defs


def _untyped(
    entry: bool, fields: dict[str, dict[str, Schema]], field_defs: dict[str, Schema]
) -> Schema:
    """A rule (or override entry) whose type the schema cannot know: the keys of every
    initializer, each value valid for at least one initializer that has the key."""
    uses: dict[str, dict[str, list[str]]] = {}  # key → definition → initializers
    for name, per_key in fields.items():
        for key, field in per_key.items():
            uses.setdefault(key, {}).setdefault(field["$ref"], []).append(name)
    properties: dict[str, Schema] = {
        **({"name": _NAME} if entry else {"defaults": _DEFAULTS}),
        "type": {"description": "The initializer (a registered name)."},
        "_target_": {"description": "The initializer's class, Hydra style."},
        **_INSTANTIATE_KEYS,
    }
    for key, owners in uses.items():
        shapes: dict[str, str] = {}  # the schema without its notes → one definition of it
        notes: dict[str, list[str]] = {}  # description → initializers
        for ref, names in owners.items():
            spec = field_defs[ref.removeprefix("#/$defs/")]
            shape = {k: v for k, v in spec.items() if k not in _NOTES}
            shapes.setdefault(json.dumps(shape, sort_keys=True), ref)
            notes.setdefault(spec.get("description", ""), []).extend(names)
        options = [{"$ref": ref} for ref in shapes.values()]
        choices = [_choices(field_defs[ref.removeprefix("#/$defs/")]) for ref in shapes.values()]
        merged: Schema = options[0] if len(options) == 1 else {"anyOf": options}
        if len(options) > 1 and all(choices):  # one enum: an error lists every choice
            merged = _value({"enum": list(dict.fromkeys(c for cs in choices for c in cs))})
        if len(notes) > 1:
            described = [f"{', '.join(names)}: {text}" for text, names in notes.items()]
            merged = {"description": " | ".join(described), **merged}
        properties[key] = merged
    if not entry:
        properties["override"] = _override_property(partial=True)
    return {
        "type": "object",
        "description": "A rule whose type comes from elsewhere (a defaults list, another "
        "file); its keys are checked once composed.",
        "properties": properties,
        "additionalProperties": False,
    }


def _choices(spec: Schema) -> list[Any]:
    """The values of a field that is a choice (a ``Literal``), else nothing."""
    choice = spec.get("else", {})
    return list(choice["enum"]) if set(choice) <= {"enum", "type"} and "enum" in choice else []


def _has(key: str, schema: Schema) -> Schema:
    """An object with ``key``, its value valid under ``schema``."""
    return {"required": [key], "properties": {key: schema}}


def _by_type(variant: str, fallback: Schema, by_defaults: bool = False) -> Schema:
    """The definition ``NAME{variant}`` of the initializer a rule's ``type``, ``_target_``
    (or, in a rule file, its defaults list) names; ``fallback`` when it names none."""
    branches: list[Schema] = []
    for name, cls in WEIGHT_INITIALIZERS.items():
        tags = [_has("type", {"const": name}), _has("_target_", {"enum": list(target_names(cls))})]
        if by_defaults:
            option = option_name(name)
            tags.append(_has("defaults", {"contains": {"enum": [option, f"/init/{option}"]}}))
        branches += [{"if": tag, "then": {"$ref": f"#/$defs/{name}{variant}"}} for tag in tags]
    known = [
        _has("type", {"$ref": "#/$defs/initializer-type"}),
        _has("_target_", {"$ref": "#/$defs/initializer-target"}),
    ]
    if by_defaults:
        known.append(_has("defaults", {"contains": {"$ref": "#/$defs/initializer-option"}}))
    return {
        "type": "object",
        "properties": {
            "type": _value(
                {"$ref": "#/$defs/initializer-type"},
                description="The initializer (a registered name).",
            ),
            "_target_": _value(
                {"$ref": "#/$defs/initializer-target"},
                description="The initializer's class, Hydra style (with `type`, they agree).",
            ),
        },
        "allOf": [*branches, {"if": {"anyOf": known}, "then": {}, "else": fallback}],
    }


def _tagged_or(untyped: str, else_: Schema) -> Schema:
    """The ``untyped`` definition when the rule has a ``type`` or ``_target_`` (an
    unresolved one), else ``else_``."""
    return {
        "if": {"anyOf": [{"required": ["type"]}, {"required": ["_target_"]}]},
        "then": {"$ref": f"#/$defs/{untyped}"},
        "else": else_,
    }


def _by_shape(array: Schema, single_if: Schema, single: Schema, mapping: Schema) -> Schema:
    """A list, one item (``single_if`` tells, as the parser does), or a mapping of named
    items; chosen by ``if``/``then`` so that errors come from the branch the value's shape
    selects."""
    return _value(
        {
            "if": {"type": "array"},
            "then": array,
            "else": {
                "if": {"type": "object", **single_if},
                "then": single,
                "else": _nullable(mapping),
            },
        }
    )


def _one_rule(*exempt: str) -> Schema:
    """A mapping that is one rule, not rules by name: it has a ``type`` or ``_target_``, or
    a value that cannot be a rule (other than the ``exempt`` keys)."""
    values = {"properties": {key: {} for key in exempt}, "additionalProperties": _OBJECT_OR_NULL}
    return {
        "anyOf": [{"required": ["type"]}, {"required": ["_target_"]}, {"not": values}],
    }


def _shared_defs(
    fields: dict[str, dict[str, Schema]], field_defs: dict[str, Schema]
) -> dict[str, Schema]:
    options = [option_name(name) for name in WEIGHT_INITIALIZERS]
    defs: dict[str, Schema] = {
        "initializer-type": {"enum": list(WEIGHT_INITIALIZERS)},
        "initializer-target": {
            "enum": [t for _, cls in WEIGHT_INITIALIZERS.items() for t in target_names(cls)]
        },
        "initializer-option": {"enum": [*options, *(f"/init/{o}" for o in options)]},
        "hydra-value": {
            "type": "string",
            "pattern": r"^(\?\?\?|\$\{.*\})$",
            "description": "An OmegaConf interpolation (${…}) or Hydra's missing value "
            "(???), checked once the config is composed.",
        },
        "rule-untyped": _untyped(False, fields, field_defs),
        "override-untyped": _untyped(True, fields, field_defs),
        "rule": _by_type("", _tagged_or("rule-untyped", {"required": ["type"]})),
        "rule.partial": _by_type(".partial", {"$ref": "#/$defs/rule-untyped"}),
        "rule-file": _by_type(".partial", {"$ref": "#/$defs/rule-untyped"}, by_defaults=True),
    }
    only_name = {"if": {"propertyNames": {"const": "name"}}, "then": {}}
    defs["override"] = {
        "description": "A submodule (its attribute name) and the rule for all of it; with "
        "only a name, the parent rule's arguments.",
        **_by_type(
            ".entry", _tagged_or("override-untyped", {**only_name, "else": {"required": ["type"]}})
        ),
    }
    defs["override.partial"] = _by_type(".entry.partial", {"$ref": "#/$defs/override-untyped"})
    for suffix in ("", ".partial"):
        entry = {"$ref": f"#/$defs/override{suffix}"}
        named = {"allOf": [entry, {"required": ["name"]}]}
        defs[f"override-list{suffix}"] = _by_shape(
            array={"type": "array", "items": _value(named)},
            single_if={
                "anyOf": [
                    {"required": ["name"]},
                    {"not": {"additionalProperties": _OBJECT_OR_NULL}},
                ]
            },
            single=named,
            mapping={"type": "object", "additionalProperties": _value(_nullable(entry))},
        )
    rule = {"$ref": "#/$defs/rule.partial"}
    defs["strategy-file"] = {
        "description": "A strategy file: a defaults list picking rule files, and rules, "
        "complete or tweaks of composed ones.",
        **_by_shape(
            array={"type": "array", "items": _value(rule)},
            single_if=_one_rule("defaults"),
            single=rule,
            mapping={
                "type": "object",
                "properties": {"defaults": _DEFAULTS},
                "additionalProperties": _value(_nullable(rule)),
            },
        ),
    }
    return defs


def _defs() -> dict[str, Schema]:
    fields, field_defs = _field_defs()
    defs = _shared_defs(fields, field_defs)
    for name, cls in WEIGHT_INITIALIZERS.items():
        defs.update(_initializer_defs(name, cls, fields[name]))
    return {**defs, **field_defs}


ENTRY_POINTS = "initschema.initializers"
"""The entry point group through which a package registers its own initializers: each
entry names a module to import (``scaled = mypkg.inits``); the schema, the Hydra ``init``
group and every process of a Hydra app then know them (the plugin loads them)."""


@functools.cache
def load_entry_points() -> None:
    """Import the modules of the ``initschema.initializers`` entry point group, once."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        entry.load()


def _document(title: str, body: Schema) -> Schema:
    """A schema document holding the definitions ``body`` uses, directly or not (every
    registered initializer, those of installed packages' entry points included)."""
    load_entry_points()
    defs = _defs()
    used: list[str] = []
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.removeprefix("#/$defs/")
            if ref.startswith("#/$defs/") and name not in used:
                used.append(name)
                stack.append(defs[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    document = {
        "$schema": _DRAFT,
        "title": title,
        "$defs": {name: spec for name, spec in defs.items() if name in used},
        **body,
    }
    # A plain JSON value: a caller may edit it without touching this module's constants.
    return json.loads(json.dumps(document))  # type: ignore[no-any-return]


def init_cfg_schema() -> Schema:
    """The schema of an ``init_cfg``: a rule, a list of rules, or a mapping of named rules;
    with Hydra's ``defaults`` list, a strategy file (see :func:`hydra_strategy_schema`)."""
    rule = {"$ref": "#/$defs/rule"}
    return _document(
        "initschema init_cfg",
        {
            "if": {"type": "object", "required": ["defaults"]},
            "then": {"$ref": "#/$defs/strategy-file"},
            "else": _by_shape(
                array={"type": "array", "items": _value(rule)},
                single_if=_one_rule(),
                single=rule,
                mapping={"type": "object", "additionalProperties": _value(_nullable(rule))},
            ),
        },
    )


def hydra_strategy_schema() -> Schema:
    """The schema of a strategy file, or of an ``init_cfg`` node that tweaks a composed one:
    rules need no ``type`` (it may come from a defaults entry) and no required argument;
    a rule that names its type is checked against that initializer."""
    return _document(
        "initschema strategy (Hydra file picking init rules, or tweaks of them)",
        {"$ref": "#/$defs/strategy-file"},
    )


def hydra_rule_schema() -> Schema:
    """The schema of a rule file in Hydra's ``init`` group: its type comes from the option
    its defaults list extends (``- kaiming``), its ``type`` or its ``_target_``; none of
    its keys is required (the option holds the defaults, ``???`` the required ones)."""
    return _document(
        "initschema rule (Hydra init group file)",
        _nullable({"$ref": "#/$defs/rule-file"}),
    )
