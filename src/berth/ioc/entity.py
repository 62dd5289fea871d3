"""IOC instance entities: the checked, typed values of one entity, and the view templates get.

`check_fields` turns one entity mapping (from an `ioc.yaml`, a sub-entity or a repeat) into its
ordered fields the way ibek's pydantic models do (type, entity_enabled, then every parameter,
given or default), converting literal values and reporting every wrong key or value at once.
Jinja strings are accepted for any typed parameter; they are rendered and converted later.
"""

from __future__ import annotations

from collections.abc import Iterator

from berth.errors import Location, Problem
from berth.ioc.support import EntityModel, Param, is_jinja
from berth.values import Value
from berth.yamlio import MISSING, YDict, describe, location_of

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

REPEAT_TYPE = "ibek.repeat"
WAIT_IP_TYPE = "ibek.wait_ip"
WAIT_USB_TYPE = "ibek.wait_usb"
BUILTIN_TYPES = (REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE)

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class TemplateProblem(Exception):
    """A template could not be rendered; `message` says why, in words for the user."""

    def __init__(self, message: str, template: str = ""):
        super().__init__(message)
        self.message = message
        self.template = template

    def describe(self, origin: str = "") -> str:
        """The message, the template text (shortened) and where the template comes from."""
        text = self.template.strip()
        if len(text) > 200:
            text = text[:197] + "..."
        where = f" (template from {origin})" if origin else ""
        return self.message + (f"; in template {text!r}{where}" if text else where)


class Entity:
    """One entity of an IOC, as the generator keeps it. Templates never see it: they get a
    `TemplateView` of it."""

    __slots__ = ("type", "model", "fields", "label", "loc", "failed", "quiet")

    def __init__(self, type_name: str, model: EntityModel | None, fields: dict[str, Any],
                 label: str, loc: Location, quiet: bool = False):
        self.type = type_name
        self.model = model
        self.fields = fields
        self.label = label
        self.loc = loc
        self.failed = False  # a problem was found: its outputs are not produced
        self.quiet = quiet  # already reported: further problems would only be echoes

    @property
    def id(self) -> Any:
        model = self.model
        if model is None or model.id_param is None:
            return None
        return self.fields.get(model.id_param)

    @property
    def enabled(self) -> bool:
        return bool(self.fields.get("entity_enabled", True))

    def describe(self) -> str:
        ident = self.id
        return f"entity '{ident}' ({self.type})" if ident is not None else self.label

    def dump(self) -> dict[str, Any]:
        """Fields with referenced entities turned into plain dicts (ibek's model_dump)."""
        return {k: v.dump() if isinstance(v, TemplateView) else v
                for k, v in self.fields.items()}


class TemplateView:
    """What templates see of an entity: its fields (`{{ controller.P }}`) and, printed, its id
    (`{{ controller }}`). The Jinja environment reads a view by item only, so its methods
    (for Python code) are out of templates' reach."""

    __slots__ = ("_entity",)

    def __init__(self, entity: Entity):
        self._entity = entity

    def __getitem__(self, name: str) -> Any:
        return self._entity.fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entity.fields)

    def __str__(self) -> str:
        if self._entity.id is None:
            raise TemplateProblem(f"{self.describe()} has no id parameter, so it cannot be "
                                  "used as text")
        return str(self._entity.id)

    __repr__ = __str__

    def describe(self) -> str:
        return self._entity.describe()

    def dump(self) -> dict[str, Any]:
        return self._entity.dump()


def entity_label(index: str, type_name: Any) -> str:
    return f"entity {index} ({type_name})"


class FieldCheck(Value):
    """The outcome of checking one entity mapping."""

    FIELDS = ("fields", "given", "problems")
    fields: dict[str, Any]
    given: set[str]  # parameters the mapping gave (the others are defaults)
    problems: list[Problem]

    def __init__(self, fields: dict[str, Any], given: set[str], problems: list[Problem]):
        self.fields, self.given, self.problems = fields, given, problems


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
        if isinstance(value, str | TemplateView):
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
