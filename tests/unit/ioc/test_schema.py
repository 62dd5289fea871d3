"""berth schema: the IOC schema accepts good instances and rejects what a schema can express;
the support-format schema accepts the project's own support file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from berth.ioc.schema import ioc_schema, support_schema
from berth.yamlio import load_yaml, loads_yaml
from conftest import run_berth

DEMO = Path(__file__).parents[2] / "data" / "generate" / "demo.ibek.support.yaml"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = ioc_schema([DEMO])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator: jsonschema.Draft202012Validator, text: str) -> list[str]:
    return [e.message for e in validator.iter_errors(loads_yaml(text))]


def located_errors(validator: jsonschema.Draft202012Validator, text: str
                   ) -> list[tuple[list[str | int], str]]:
    """Each schema error as (the path of the offending value, the message)."""
    return sorted(((list(e.absolute_path), e.message) for e in validator.iter_errors(
        loads_yaml(text))), key=str)


GOOD = """
ioc_name: demo
description: everything the demo support offers
entities:
  - type: demo.Port
    name: p1
    host: h1:1
    priority: "{{ 5 * 3 }}"
    gain: 1.5
    auto: true
    parity: even
  - type: demo.Device
    port: p1
    P: "DEV1:"
    channel: 3
    entity_enabled: false
  - type: ibek.repeat
    values: "{{ range(3) | list }}"
    entity:
      type: demo.Command
      command: "{{ index }}"
  - type: ibek.repeat
    values: [1, 2]
    variable: n
    entity:
      type: demo.Port
      name: port{{ n }}
      host: h
      priority: "{{ n }}"
  - type: ibek.wait_ip
    device: p1
    address: h1:1
    timeout: 5
"""


def test_good_instance_is_accepted(validator):
    assert errors_of(validator, GOOD) == []


@pytest.mark.parametrize(("entity", "message"), [
    ("{type: demo.Nope}", "'demo.Nope' is not one of"),
    ("{type: demo.Port, name: p}", "'host' is a required property"),
    ("{type: demo.Port, name: p, host: h, priority: high}", "is not valid under any"),
    ("{type: demo.Port, name: p, host: h, auto: maybe}", "is not valid under any"),
    ("{type: demo.Port, name: p, host: h, parity: mark}", "is not valid under any"),
    ("{type: demo.Port, name: p, host: 12}", "12 is not of type 'string'"),
    ("{type: demo.Port, name: p, host: h, colour: red}", "'colour' was unexpected"),
    ("{type: ibek.repeat, entity: {type: demo.Command, command: x}}",
     "'values' is a required property"),
    ("{type: ibek.repeat, values: [1], entity: {type: demo.Nope}}", "is not one of"),
    ("{type: ibek.wait_ip, device: d}", "'address' is a required property"),
    ("{type: ibek.wait_ip, address: a, timeout: soon}", "is not valid under any"),
])
def test_bad_entities_are_rejected(validator, entity, message):
    text = f"ioc_name: x\ndescription: y\nentities:\n  - {entity}\n"
    errors = located_errors(validator, text)
    assert errors, entity
    # the message, on the entity that has the mistake
    assert any(path[:2] == ["entities", 0] and message in m for path, m in errors), errors


def test_unknown_top_level_key_is_rejected(validator):
    assert located_errors(validator, "ioc_name: x\ndescription: y\nentities: []\nextra: 1\n") \
        == [([], "Additional properties are not allowed ('extra' was unexpected)")]


def test_support_schema_accepts_demo_and_rejects_typos():
    schema = support_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(load_yaml(DEMO))) == []
    bad = loads_yaml("module: m\nentity_models:\n  - name: A\n    description: a\n"
                     "    parameters:\n      x: {type: integer, description: x}\n"
                     "    pre_init: [{value: a, wen: first}]\n")
    assert sorted(((list(e.absolute_path), e.message) for e in validator.iter_errors(bad)),
                  key=str) == [
        (["entity_models", 0, "parameters", "x", "type"],
         "'integer' is not one of ['str', 'int', 'float', 'bool', 'enum', 'object', 'id', "
         "'dict', 'list']"),
        (["entity_models", 0, "pre_init", 0],
         "Additional properties are not allowed ('wen' was unexpected)"),
    ]


def test_cli_schema_writes_files(tmp_path):
    out = tmp_path / "ioc.schema.json"
    result = run_berth("schema", "--defs", DEMO, "-o", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["$defs"]["demo.Port"]["required"] == \
        ["type", "name", "host"]
    result = run_berth("schema", "--support", "-o", tmp_path / "support.json")
    assert result.returncode == 0, result.stderr
    assert "entity_model" in json.loads((tmp_path / "support.json").read_text())["$defs"]
