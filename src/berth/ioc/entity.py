"""IOC instance entities: the checked, typed values of one entity, and the object templates see.

`check_fields` turns one entity mapping (from an `ioc.yaml`, a sub-entity or a repeat) into its
ordered fields the way ibek's pydantic models do (type, entity_enabled, then every parameter,
given or default), converting literal values and reporting every wrong key or value at once.
Jinja strings are accepted for any typed parameter; they are rendered and converted later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from berth.errors import Location, Problem
from berth.ioc.support import MISSING, EntityModel, Param, describe, is_jinja
from berth.yamlio import YDict, location_of

REPEAT_TYPE = "ibek.repeat"
WAIT_IP_TYPE = "ibek.wait_ip"
WAIT_USB_TYPE = "ibek.wait_usb"
BUILTIN_TYPES = (REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE)

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class Entity:
    """One entity of an IOC. In templates it reads like its fields (`{{ controller.P }}`) and
    prints as its id (`{{ controller }}`). Internal attributes start with `_`, which the
    sandbox keeps templates from reading."""

    __slots__ = ("_type", "_model", "_fields", "_label", "_loc", "_failed", "_quiet")

    def __init__(self, type_name: str, model: EntityModel | None, fields: dict[str, Any],
                 label: str, loc: Location, quiet: bool = False):
        self._type = type_name
        self._model = model
        self._fields = fields
        self._label = label
        self._loc = loc
        self._failed = False  # a problem was found: its outputs are not produced
        self._quiet = quiet  # already reported: further problems would only be echoes

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __iter__(self) -> Any:
        return iter(self._fields)

    @property
    def _id(self) -> Any:
        model = self._model
        if model is None or model.id_param is None:
            return None
        return self._fields.get(model.id_param)

    @property
    def _enabled(self) -> bool:
        return bool(self._fields.get("entity_enabled", True))

    def __str__(self) -> str:
        ident = self._id
        if ident is None:
            from berth.ioc.templates import TemplateProblem

            raise TemplateProblem(f"{self._describe()} has no id parameter, so it cannot be "
                                  "used as text")
        return str(ident)

    __repr__ = __str__

    def _describe(self) -> str:
        ident = self._id
        return f"entity '{ident}' ({self._type})" if ident is not None else self._label

    def _dump(self) -> dict[str, Any]:
        """Fields with referenced entities turned into plain dicts (ibek's model_dump)."""
        return {k: v._dump() if isinstance(v, Entity) else v for k, v in self._fields.items()}


def entity_label(index: str, type_name: Any) -> str:
    return f"entity {index} ({type_name})"


@dataclass
class FieldCheck:
    """The outcome of checking one entity mapping."""

    fields: dict[str, Any]
    given: set[str]  # parameters the mapping gave (the others are defaults)
    problems: list[Problem]


def lax_bool(value: Any) -> bool | None:
    """pydantic's lax bool: true/false, 0/1 and the usual words; None when not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def enum_key(param: Param, value: Any) -> tuple[bool, Any]:
    """Match a value to one of an enum's keys (exactly, else by its text)."""
    assert param.values is not None
    for key in param.values:
        if key == value and type(key) is type(value):
            return True, key
    for key in param.values:
        if str(key) == str(value):
            return True, key
    return False, None


def enum_choices(param: Param) -> str:
    return ", ".join(str(k) for k in (param.values or {}))


def convert_value(param: Param, value: Any) -> tuple[Any, str | None]:
    """Convert a literal value given for `param`; returns (value, error message or None).
    Jinja strings pass through for every type (they are rendered later)."""
    ptype = param.type
    if ptype in ("str", "id"):
        if isinstance(value, str):
            return value, None
        return value, f"expected a string, got {describe(value)} (quote it)"
    if ptype == "object":
        if isinstance(value, str | Entity):
            return value, None
        return value, f"expected the id of another entity, got {describe(value)}"
    if is_jinja(value):
        return value, None
    if ptype == "int":
        if isinstance(value, bool):
            return value, f"expected an integer, got {describe(value)}"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str):
            try:
                return int(value.strip()), None
            except ValueError:
                pass
        return value, f"expected an integer, got {describe(value)}"
    if ptype == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), None
        if isinstance(value, str):
            try:
                return float(value.strip()), None
            except ValueError:
                pass
        return value, f"expected a number, got {describe(value)}"
    if ptype == "bool":
        converted = lax_bool(value)
        if converted is None:
            return value, f"expected true or false, got {describe(value)}"
        return converted, None
    if ptype == "enum":
        ok, key = enum_key(param, value)
        if ok:
            return key, None
        return value, f"expected one of {enum_choices(param)}, got {describe(value)}"
    if ptype == "dict":
        if isinstance(value, dict):
            return value, None
        return value, f"expected a mapping, got {describe(value)}"
    if ptype == "list":
        if isinstance(value, list):
            return value, None
        return value, f"expected a list, got {describe(value)}"
    return value, None  # pragma: no cover - the support loader allows no other type


def suggest(name: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_fields(model: EntityModel, data: dict[str, Any], label: str,
                 loc_of: Any = None) -> FieldCheck:
    """Check an entity mapping against its model; collect every problem.

    `loc_of(key)` gives the location of a key's value (defaults to the mapping's own marks).
    """
    if loc_of is None:
        def loc_of(key: Any) -> Location:
            return location_of(data, key)
    problems: list[Problem] = []
    fields: dict[str, Any] = {"type": model.type, "entity_enabled": True}
    given: set[str] = set()
    for key, value in data.items():
        if key == "type":
            continue
        if key == "entity_enabled":
            enabled = value if is_jinja(value) else lax_bool(value)
            if enabled is None:
                problems.append(Problem(f"expected true or false, got {describe(value)}",
                                        loc_of(key), label, "entity_enabled"))
            else:
                fields["entity_enabled"] = enabled
            continue
        if key not in model.parameters:
            names = list(model.parameters)
            where = data.key_loc(key) if isinstance(data, YDict) else loc_of(key)
            problems.append(Problem(
                f"unknown parameter '{key}' for {model.type}{suggest(str(key), names)}; "
                f"expected one of: {', '.join(names) or '(none)'}", where, label, str(key)))
    for name, param in model.parameters.items():
        if name in data:
            value, message = convert_value(param, data[name])
            if message:
                problems.append(Problem(message, loc_of(name), label, name))
            fields[name] = value
            given.add(name)
        elif param.default is not MISSING:
            fields[name] = param.default
        else:
            desc = param.description.strip().splitlines()[0] if param.description.strip() \
                else ""
            problems.append(Problem(
                f"missing required parameter '{name}' ({param.type}"
                f"{': ' + desc if desc else ''})", loc_of(None), label, name))
    return FieldCheck(fields, given, problems)
