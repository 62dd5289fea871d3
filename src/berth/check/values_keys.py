"""Values under `ioc-instance:` that the Helm chart does not accept: unknown keys (with a close
match) and values of the wrong kind, checked against the chart's own `values.schema.json`."""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from berth.check.schema_check import locate
from berth.deploy.services import IOC_CHART
from berth.errors import BerthError, Location, Problem
from berth.yamlio import YDict, load_yaml

CHART_SCHEMA = (Path(__file__).resolve().parent.parent / "assets" / "helm" / IOC_CHART
                / "values.schema.json")


@cache
def chart_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CHART_SCHEMA.read_text())
    return data


def _unknown_keys(block: YDict, schema: dict[str, Any], prefix: str) -> list[Problem]:
    """Keys of `block` that `schema` does not name, at this level and in nested objects whose
    schema lists their keys."""
    known = schema.get("properties") or {}
    problems: list[Problem] = []
    for key, value in block.items():
        if key == "<<":
            continue
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(Problem(
                f"the {IOC_CHART} chart has no value '{prefix}{key}'{hint}",
                block.key_loc(key), field=f"{prefix}{key}"))
        elif isinstance(value, YDict) and known[key].get("properties") and \
                known[key].get("additionalProperties") is not True:
            problems += _unknown_keys(value, known[key], f"{prefix}{key}.")
    return problems


def values_problems(values_file: Path) -> list[Problem]:
    """Problems of the `ioc-instance:` block of one values file (none when it has no block)."""
    try:
        document = load_yaml(values_file)
    except BerthError as err:
        return err.problems
    if not isinstance(document, YDict):
        if document is None:
            return []
        return [Problem(f"expected a mapping at the top level, found "
                        f"{type(document).__name__}", Location(values_file, 1, 1))]
    block = document.get(IOC_CHART)
    if block is None:
        return []
    if not isinstance(block, YDict):
        return [Problem(f"'{IOC_CHART}' must be a mapping of chart values",
                        document.loc(IOC_CHART), field=IOC_CHART)]
    schema = chart_schema()
    problems = _unknown_keys(block, schema, "")
    for error in Draft202012Validator(schema).iter_errors(block):
        if error.validator == "additionalProperties":
            continue  # reported above, with a suggestion
        path = list(error.absolute_path)
        loc, _node, _parent = locate(block, path)
        name = ".".join(str(p) for p in path) or IOC_CHART
        problems.append(Problem(f"value '{name}': {error.message}", loc, field=name))
    return problems
