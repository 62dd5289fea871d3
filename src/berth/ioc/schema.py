"""JSON Schemas (draft 2020-12): of an IOC instance for given support definitions, and of the
support-definition format itself. Editors use them for completion and checking as you type.

The IOC schema is a union on `type`, written as `if type == X then <model X>` for each entity
type, so that a validator reports the problems of the one model that applies (not of all).
Every non-string parameter also accepts a string containing `{{` (a Jinja expression).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from berth.ioc.entity import REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE
from berth.ioc.support import (
    DEFINE_TYPES,
    PARAM_TYPES,
    WHEN,
    EntityModel,
    Param,
    load_support,
)
from berth.yamlio import MISSING

DRAFT = "https://json-schema.org/draft/2020-12/schema"
JINJA = {"type": "string", "pattern": r"\{\{", "description": "a Jinja expression"}
_JINJA_REF = {"$ref": "#/$defs/jinja"}
_KINDS = {"int": "integer", "float": "number", "bool": "boolean", "list": "array",
          "dict": "object"}


def _param_schema(param: Param) -> dict[str, Any]:
    schema: dict[str, Any]
    if param.type in ("str", "id"):
        schema = {"type": "string"}
    elif param.type == "object":
        schema = {"type": "string", "description": "the id of an entity defined above"}
    elif param.type == "enum":
        keys = list(param.values or {})
        schema = {"anyOf": [{"enum": keys}, _JINJA_REF]}
    else:
        schema = {"anyOf": [{"type": _KINDS[param.type]}, _JINJA_REF]}
    description = param.description.strip()
    if description:
        if "description" in schema:
            description = f"{description} ({schema['description']})"
        schema["description"] = description
    if param.default is not MISSING:
        schema["default"] = param.default
    return schema


def _enabled() -> dict[str, Any]:
    return {"anyOf": [{"type": "boolean"}, _JINJA_REF], "default": True,
            "description": "enable or disable this entity instance"}


def _model_schema(model: EntityModel) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"const": model.type, "description": model.description.strip()},
        "entity_enabled": _enabled(),
    }
    for name, param in model.parameters.items():
        properties[name] = _param_schema(param)
    return {
        "type": "object",
        "title": model.type,
        "description": model.description.strip(),
        "properties": properties,
        "required": ["type", *(n for n, p in model.parameters.items() if p.required)],
        "additionalProperties": False,
    }


def _builtin_schemas() -> dict[str, dict[str, Any]]:
    timeout = {"anyOf": [{"type": "integer"}, _JINJA_REF], "default": 0,
               "description": "seconds to wait; 0 waits for ever"}
    return {
        REPEAT_TYPE: {
            "type": "object",
            "title": REPEAT_TYPE,
            "description": "Make one entity for each of a list of values",
            "properties": {
                "type": {"const": REPEAT_TYPE},
                "entity_enabled": _enabled(),
                "values": {"anyOf": [{"type": "array"}, _JINJA_REF],
                           "description": "the values to iterate over"},
                "variable": {"type": "string", "default": "index",
                             "description": "the name of the value in templates "
                                            "(<variable>_num is its position)"},
                "entity": {"$ref": "#/$defs/entity",
                           "description": "the entity to repeat"},
            },
            "required": ["type", "values", "entity"],
            "additionalProperties": False,
        },
        WAIT_IP_TYPE: {
            "type": "object",
            "title": WAIT_IP_TYPE,
            "description": "Wait for a TCP address to answer before the IOC starts",
            "properties": {
                "type": {"const": WAIT_IP_TYPE},
                "entity_enabled": _enabled(),
                "device": {"type": "string", "default": "DEVICE"},
                "address": {"type": "string", "description": "host:port to wait for"},
                "timeout": timeout,
            },
            "required": ["type", "address"],
            "additionalProperties": False,
        },
        WAIT_USB_TYPE: {
            "type": "object",
            "title": WAIT_USB_TYPE,
            "description": "Wait for a USB device (vendor_id:product_id)",
            "properties": {
                "type": {"const": WAIT_USB_TYPE},
                "entity_enabled": _enabled(),
                "device": {"type": "string", "default": "DEVICE"},
                "id": {"type": "string"},
                "timeout": timeout,
            },
            "required": ["type", "id"],
            "additionalProperties": False,
        },
    }


def ioc_schema(defs: list[Path]) -> dict[str, Any]:
    """The JSON schema of an IOC instance YAML using the entity models of `defs`."""
    from berth.ioc.generate import expand_defs

    support = load_support(expand_defs(defs))
    models: dict[str, dict[str, Any]] = _builtin_schemas()
    for type_name, model in support.models.items():
        models[type_name] = _model_schema(model)
    defs_out: dict[str, Any] = {"jinja": JINJA}
    defs_out.update(models)
    defs_out["entity"] = {
        "type": "object",
        "properties": {"type": {"enum": list(models),
                                "description": "the entity type: <module>.<name>"}},
        "required": ["type"],
        "allOf": [
            {"if": {"properties": {"type": {"const": t}}, "required": ["type"]},
             "then": {"$ref": f"#/$defs/{_escape(t)}"}}
            for t in models
        ],
    }
    return {
        "$schema": DRAFT,
        "title": "IOC instance",
        "description": "An IOC instance: entities of the support modules "
                       + ", ".join(support.modules),
        "type": "object",
        "properties": {
            "ioc_name": {"type": "string", "description": "Name of IOC instance"},
            "description": {"type": "string", "description": "What the IOC does"},
            "entities": {"type": "array", "items": {"$ref": "#/$defs/entity"},
                         "description": "The entities this IOC instantiates"},
            "shared": {"description": "A place for YAML anchors"},
        },
        "required": ["ioc_name", "description", "entities"],
        "additionalProperties": False,
        "$defs": defs_out,
    }


def _escape(name: str) -> str:
    """A $defs key as a JSON pointer segment."""
    return name.replace("~", "~0").replace("/", "~1")


def support_schema() -> dict[str, Any]:
    """The JSON schema of the support-definition format (`*.ibek.support.yaml`)."""
    string = {"type": "string"}
    typed_default = {
        "str": {"type": ["string", "null"]}, "id": {"type": ["string", "null"]},
        "int": {"anyOf": [{"type": ["integer", "null"]}, _JINJA_REF]},
        "float": {"anyOf": [{"type": ["number", "null"]}, _JINJA_REF]},
        "bool": {"anyOf": [{"type": ["boolean", "null"]}, _JINJA_REF]},
        "dict": {"anyOf": [{"type": ["object", "null"]}, _JINJA_REF]},
        "list": {"anyOf": [{"type": ["array", "null"]}, _JINJA_REF]},
        "object": {}, "enum": {},
    }
    params: list[dict[str, Any]] = []
    for ptype in PARAM_TYPES:
        properties: dict[str, Any] = {
            "type": {"const": ptype}, "description": string, "default": typed_default[ptype],
        }
        required = ["type", "description"]
        if ptype == "enum":
            properties["values"] = {"type": "object", "description": "key (written in "
                                    "instances) -> value (rendered); empty value = the key"}
            required.append("values")
        params.append({"if": {"properties": {"type": {"const": ptype}}},
                       "then": {"properties": properties, "required": required,
                                "additionalProperties": False}})
    script_item = {
        "type": "object",
        "properties": {
            "type": {"enum": ["text", "comment"], "default": "text"},
            "when": {"type": "string", "default": "every",
                     "description": "first: once per IOC for this model; every: for each "
                                    "entity; last: once, after this model's other lines",
                     "examples": list(WHEN)},
            "value": string,
        },
        "additionalProperties": False,
        "if": {"properties": {"type": {"const": "comment"}}, "required": ["type"]},
        "then": {"properties": {"when": {"enum": list(WHEN)}}},
    }
    define = {
        "type": "object",
        "properties": {"description": string, "value": {},
                       "type": {"enum": [*DEFINE_TYPES, None], "default": "str"}},
        "required": ["description", "value"],
        "additionalProperties": False,
    }
    entity_model = {
        "type": "object",
        "properties": {
            "name": string,
            "description": string,
            "parameters": {"type": ["object", "null"],
                           "additionalProperties": {"$ref": "#/$defs/parameter"}},
            "pre_defines": {"type": ["object", "null"],
                            "additionalProperties": {"$ref": "#/$defs/define"}},
            "post_defines": {"type": ["object", "null"],
                             "additionalProperties": {"$ref": "#/$defs/define"}},
            "pre_init": {"type": ["array", "null"], "items": {"$ref": "#/$defs/script"}},
            "post_init": {"type": ["array", "null"], "items": {"$ref": "#/$defs/script"}},
            "databases": {"type": ["array", "null"], "items": {"$ref": "#/$defs/database"}},
            "env_vars": {"type": ["array", "null"], "items": {
                "type": "object", "properties": {"name": string, "value": string},
                "required": ["name", "value"], "additionalProperties": False}},
            "pvi": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/pvi"}]},
            "sub_entities": {"type": ["array", "null"], "items": {
                "type": "object", "properties": {"type": string,
                                                 "entity_enabled": {"type": "boolean"}},
                "required": ["type"]}},
            "shared": {"description": "A place for YAML anchors"},
        },
        "required": ["name", "description"],
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "title": "ibek support definitions",
        "description": "The entity models a support module offers to IOC instances",
        "type": "object",
        "properties": {
            "module": {"type": "string", "description": "Support module name"},
            "entity_models": {"type": "array", "items": {"$ref": "#/$defs/entity_model"}},
            "shared": {"description": "A place for YAML anchors"},
        },
        "required": ["module", "entity_models"],
        "additionalProperties": False,
        "$defs": {
            "jinja": JINJA,
            "entity_model": entity_model,
            "parameter": {
                "type": "object",
                "properties": {"type": {"enum": list(PARAM_TYPES)}},
                "required": ["type", "description"],
                "allOf": params,
            },
            "define": define,
            "script": script_item,
            "database": {
                "type": "object",
                "properties": {
                    "file": string,
                    "enabled": {"type": ["string", "boolean"], "default": "True"},
                    "args": {"type": ["object", "null"],
                             "additionalProperties": {"type": ["string", "number", "boolean",
                                                               "null"]}},
                },
                "required": ["file"],
                "additionalProperties": False,
            },
            "pvi": {
                "type": "object",
                "properties": {
                    "yaml_path": string,
                    "ui_index": {"type": "boolean", "default": True},
                    "ui_macros": {"type": ["object", "null"],
                                  "additionalProperties": {"type": ["string", "null"]}},
                    "pv": {"type": "boolean", "default": False},
                    "pv_prefix": {"type": "string", "default": ""},
                },
                "required": ["yaml_path"],
                "additionalProperties": False,
            },
        },
    }
