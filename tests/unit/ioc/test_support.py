"""Support definitions: strict loading with file:line:column, anchors, several files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from berth.errors import BerthError
from berth.ioc.support import MISSING, load_support
from berth.yamlio import YDict, loads_yaml

DEMO = Path(__file__).parents[2] / "data" / "generate" / "demo.ibek.support.yaml"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def problems_of(*paths: Path) -> list[str]:
    with pytest.raises(BerthError) as info:
        load_support(paths)
    return [str(p) for p in info.value.problems]


def test_demo_models_and_parameters():
    support = load_support([DEMO])
    assert "demo.Port" in support.models and support.modules == ["demo"]
    port = support.models["demo.Port"]
    assert port.id_param == "name"
    assert list(port.parameters) == ["name", "host", "priority", "gain", "auto", "parity"]
    assert port.parameters["host"].default is MISSING
    assert port.parameters["gain"].default == 2.0 and isinstance(
        port.parameters["gain"].default, float)
    assert port.parameters["parity"].values == {"none": None, "even": "E", "odd": "O"}
    assert [i.when for i in port.pre_init] == ["first", "every", "last"]
    assert port.pre_init[0].kind == "comment"
    device = support.models["demo.Device"]
    # the merged anchor comes first, then the model's own parameters
    assert list(device.parameters)[:2] == ["port", "P"]
    assert list(device.pre_defines) == ["base"] and device.pre_defines["base"].type == "int"
    assert device.databases[1].enabled == "{{ enable_extra }}"
    assert device.databases[0].args == {"P": None, "CH": "{{ channel }}", "PORT": "{{ port }}"}
    assert support.models["demo.Group"].sub_entities[1]["type"] == "ibek.repeat"
    screen = support.models["demo.Screen"].pvi
    assert screen is not None and screen.pv and screen.ui_macros == {"P": None}


def test_unknown_keys_are_errors_with_positions(tmp_path):
    path = write(tmp_path, "bad.ibek.support.yaml", """
        module: m
        modul: typo
        entity_models:
          - name: A
            description: a
            parameters:
              x:
                type: str
                description: x
                defualt: 1
            pre_init:
              - value: hi
                wen: first
    """)
    problems = problems_of(path)
    assert len(problems) == 3
    assert "bad.ibek.support.yaml:2:1: field 'modul': unknown key 'modul' in support file" \
        in problems[0]
    assert ":10:9: field 'defualt': unknown key 'defualt'" in problems[1]
    assert ":13:9: field 'wen': unknown key 'wen'" in problems[2]


def test_wrong_types_and_missing_keys(tmp_path):
    path = write(tmp_path, "bad.ibek.support.yaml", """
        module: m
        entity_models:
          - name: A
            parameters:
              n:
                type: integer
                description: n
              e:
                type: enum
                description: e
              i:
                type: int
                description: i
                default: lots
            env_vars:
              - name: X
    """)
    problems = "\n".join(problems_of(path))
    assert ":3:5: field 'description': entity model m.A is missing required key 'description'" \
        in problems
    assert ":6:15: field 'type': type of parameter 'n' of m.A must be one of" in problems
    assert "is an enum and needs 'values'" in problems
    assert ":14:18: field 'default': default of parameter 'i' of m.A must be of type int" \
        in problems
    assert "env_var 1 of m.A is missing required key 'value'" in problems


def test_duplicate_entity_type_names_both_files(tmp_path):
    one = write(tmp_path, "one.ibek.support.yaml", """
        module: m
        entity_models:
          - name: A
            description: a
    """)
    two = write(tmp_path, "two.ibek.support.yaml", """
        module: m
        entity_models:
          - name: B
            description: b
          - name: A
            description: again
    """)
    [problem] = problems_of(one, two)
    assert "two.ibek.support.yaml:5:5" in problem and "one.ibek.support.yaml:3:5" in problem
    assert "entity type 'm.A' is defined twice" in problem


def test_problems_of_several_files_reported_together(tmp_path):
    one = write(tmp_path, "one.ibek.support.yaml", "module: m\nentity_models: {}\n")
    two = write(tmp_path, "two.ibek.support.yaml", "module: [\n")
    problems = problems_of(one, two)
    assert len(problems) == 2
    assert "one.ibek.support.yaml:2:16" in problems[0] and "must be a list" in problems[0]
    assert "two.ibek.support.yaml" in problems[1] and "invalid YAML" in problems[1]


def test_yaml_positions_merge_keys_and_scalars():
    data = loads_yaml(textwrap.dedent("""
        base: &b
          x: 1
          y: 2
        merged:
          <<: *b
          y: 3
          z: yes
        numbers: [1e3, 0x10, 10:30, 1_000, ~]
    """), "f.yaml")
    assert isinstance(data, YDict)
    assert data["merged"] == {"x": 1, "y": 3, "z": "yes"}
    assert list(data["merged"]) == ["x", "y", "z"]
    assert str(data["merged"].loc("z")) == "f.yaml:8:6"
    assert str(data["merged"].key_loc("y")) == "f.yaml:7:3"
    assert data["numbers"] == [1000.0, 16, "10:30", 1000, None]
    assert str(data["numbers"].loc(2)) == "f.yaml:9:22"


def test_duplicate_keys_are_errors():
    with pytest.raises(BerthError, match=r"f.yaml:3:1: key 'a' appears twice"):
        loads_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
