"""Check an instance YAML against the real JSON schema of its support definitions, and point
each violation at its place in the YAML (the JSON pointer is walked through the position-
carrying containers of `berth.yamlio`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from berth.errors import Location, Problem
from berth.ioc.entity import suggest
from berth.yamlio import YDict, YList, describe, location_of

_KIND_WORDS = {"integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "string": "a string"}


def locate(document: Any, path: Iterable[Any]) -> tuple[Location, Any, Any]:
    """Location of the value at `path`, with the value and its parent container."""
    node: Any = document
    parent: Any = None
    loc = location_of(document)
    for step in path:
        found = (isinstance(node, YDict) and step in node) or (
            isinstance(node, YList) and isinstance(step, int) and step < len(node))
        if not found:
            break
        parent, loc, node = node, node.loc(step), node[step]
    return loc, node, parent


def _entity_label(document: Any, path: list[Any]) -> str | None:
    if len(path) >= 2 and path[0] == "entities" and isinstance(path[1], int):
        entities = document.get("entities") if isinstance(document, dict) else None
        try:
            entity = entities[path[1]]  # type: ignore[index]
        except (TypeError, IndexError, KeyError):
            return f"entity {path[1] + 1}"
        kind = entity.get("type") if isinstance(entity, dict) else None
        return f"entity {path[1] + 1}" + (f" ({kind})" if kind else "")
    return None


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    """The errors worth showing: for if/then unions, the errors of the branch that applied."""
    if error.validator in ("allOf", "then") and error.context:
        out: list[ValidationError] = []
        for sub in error.context:
            out += _leaf_errors(sub)
        return out
    return [error]


def _message(error: ValidationError, known_types: list[str]) -> tuple[str, str | None]:
    """A sentence for one violation, and the field it concerns."""
    path = list(error.absolute_path)
    field = str(path[-1]) if path and isinstance(path[-1], str) else None
    value = error.instance
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required parameter '{missing}'", missing
    if error.validator == "additionalProperties":
        schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
        extras = [k for k in error.instance if k not in (schema.get("properties") or {})]
        allowed = [str(k) for k in schema.get("properties") or {}]
        name = extras[0] if extras else "?"
        return (f"unknown parameter '{name}'{suggest(str(name), allowed)}; expected one of: "
                f"{', '.join(allowed)}", str(name))
    if error.validator == "enum" and field == "type":
        return (f"entity type {value!r} {UNKNOWN_TYPE}"
                f"{suggest(str(value), known_types)}", "type")
    if error.validator == "enum":
        return f"expected one of {error.validator_value}, got {describe(value)}", field
    if error.validator == "anyOf":
        kinds = [s.get("type") for s in error.validator_value if isinstance(s, dict)]
        enums = [s.get("enum") for s in error.validator_value if isinstance(s, dict)]
        wanted = [_KIND_WORDS.get(str(k), str(k)) for k in kinds if k]
        wanted += [f"one of {e}" for e in enums if e]
        return (f"expected {' or '.join(wanted) or 'another value'} (or a Jinja '{{{{ }}}}' "
                f"string), got {describe(value)}", field)
    if error.validator == "type":
        kind = error.validator_value
        names = [str(k) for k in (kind if isinstance(kind, list) else [kind])]
        return (f"expected {' or '.join(_KIND_WORDS.get(k, k) for k in names)}, got "
                f"{describe(value)}", field)
    return error.message, field


def schema_problems(document: Any, schema: dict[str, Any], entities_only: bool = False
                    ) -> list[Problem]:
    """Every violation of `schema` by `document` (loaded with berth.yamlio), with its place.
    `entities_only`: check only the entity list (a runtime.yaml need not name the IOC)."""
    validator = Draft202012Validator(schema)
    if entities_only and isinstance(document, dict):
        document_view: Any = {k: v for k, v in document.items() if k == "entities"}
        document_view.setdefault("entities", [])
        checked = validator.iter_errors({"ioc_name": "", "description": "", **document_view})
    else:
        checked = validator.iter_errors(document)
    known = list(schema.get("$defs", {}).get("entity", {}).get("properties", {})
                 .get("type", {}).get("enum", []))
    problems: list[Problem] = []
    seen: set[tuple[Location, str]] = set()
    for top in checked:
        for error in _leaf_errors(top):
            path = list(error.absolute_path)
            message, field = _message(error, known)
            loc, _node, parent = locate(document, path)
            if error.validator == "additionalProperties" and field is not None:
                loc = _node.key_loc(field) if isinstance(_node, YDict) else loc
            elif error.validator == "required" and isinstance(_node, YDict):
                loc = _node.loc()
            elif field and isinstance(parent, YDict) and error.validator in ("enum",) \
                    and field == "type":
                loc = parent.loc(field)
            key = (loc, message)
            if key in seen:
                continue
            seen.add(key)
            problems.append(Problem(message, loc, _entity_label(document, path), field))
    return problems


UNKNOWN_TYPE = "is not defined by the support definitions"


def group_unknown_types(problems: list[Problem]) -> list[Problem]:
    """One problem per unknown entity type and file (its first use), naming the other lines:
    an instance written for modules that are not loaded would otherwise list every entity."""
    first: dict[tuple[str, str], int] = {}
    others: dict[int, list[int]] = {}
    kept: list[Problem] = []
    for problem in problems:
        if UNKNOWN_TYPE not in problem.message:
            kept.append(problem)
            continue
        key = (str(problem.location.file), problem.message)
        if key in first:
            others[first[key]].append(problem.location.line)
            continue
        first[key] = len(kept)
        others[len(kept)] = []
        kept.append(problem)
    for index, lines in others.items():
        if lines:
            p = kept[index]
            label = p.entity.split(" (")[-1].rstrip(")") if p.entity else None
            kept[index] = Problem(
                f"{p.message}; also used at line{'s' if len(lines) > 1 else ''} "
                f"{', '.join(map(str, lines))}", p.location, label and f"type {label}", p.field,
                p.severity)
    return kept
