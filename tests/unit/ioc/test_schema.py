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
    messages = errors_of(validator, text)
    assert messages, entity
    assert any(message in m for m in messages), messages


def test_unknown_top_level_key_is_rejected(validator):
    assert errors_of(validator, "ioc_name: x\ndescription: y\nentities: []\nextra: 1\n")


def test_support_schema_accepts_demo_and_rejects_typos():
    schema = support_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(load_yaml(DEMO))) == []
    bad = loads_yaml("module: m\nentity_models:\n  - name: A\n    description: a\n"
                     "    parameters:\n      x: {type: integer, description: x}\n"
                     "    pre_init: [{value: a, wen: first}]\n")
    assert len(list(validator.iter_errors(bad))) >= 2


def test_cli_schema_writes_files(tmp_path):
    out = tmp_path / "ioc.schema.json"
    result = run_berth("schema", "--defs", DEMO, "-o", out)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["$defs"]["demo.Port"]["required"] == \
        ["type", "name", "host"]
    result = run_berth("schema", "--support", "-o", tmp_path / "support.json")
    assert result.returncode == 0, result.stderr
    assert "entity_model" in json.loads((tmp_path / "support.json").read_text())["$defs"]
