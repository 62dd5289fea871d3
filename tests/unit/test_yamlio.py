"""yamlio: the one YAML reader (1.2, with locations), its Helm mode and the strict Reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from berth.errors import BerthError, Location
from berth.yamlio import MISSING, Reader, YDict, describe, load_yaml, loads_yaml


def test_yaml_12_scalars_and_locations():
    doc = loads_yaml("a: yes\non: 1\nb: 010\nc:\n  - x\n  - {d: 1e3}\n", "f.yaml")
    assert doc == {"a": "yes", "on": 1, "b": 10, "c": ["x", {"d": 1000.0}]}
    assert doc.loc("b") == Location("f.yaml", 3, 4)
    assert doc.key_loc("c") == Location("f.yaml", 4, 1)
    assert doc["c"].loc(1) == Location("f.yaml", 6, 5)


@pytest.mark.parametrize("text, where, helm", [
    ("enabled: yes\n", (1, 10), "true (a boolean)"),
    ("enabled: Off\n", (1, 10), "false (a boolean)"),
    ("on:\n  x: 1\n", (1, 1), "true (a boolean)"),
    ("list: [n]\n", (1, 8), "false (a boolean)"),
    ("mode: 0755\n", (1, 7), "the number 493"),
])
def test_helm_mode_refuses_what_helm_reads_the_yaml_11_way(text: str, where: tuple[int, int],
                                                            helm: str):
    assert loads_yaml(text, "v.yaml") is not None  # accepted outside Helm values
    with pytest.raises(BerthError) as err:
        loads_yaml(text, "v.yaml", helm=True)
    (problem,) = err.value.problems
    assert (problem.location.line, problem.location.column) == where
    assert f"Helm reads it as {helm}" in problem.message and "quote it" in problem.message


def test_helm_mode_accepts_quoted_and_yaml_12_booleans():
    doc = loads_yaml("a: 'yes'\n\"on\": true\nb: \"010\"\nc: 10\n", "v.yaml", helm=True)
    assert doc == {"a": "yes", "on": True, "b": "010", "c": 10}


def test_helm_mode_reports_every_ambiguous_value_at_once(tmp_path: Path):
    path = tmp_path / "values.yaml"
    path.write_text("a: yes\nb: [on, off]\n")
    with pytest.raises(BerthError) as err:
        load_yaml(path, helm=True)
    assert [(p.location.line, p.location.column) for p in err.value.problems] == \
        [(1, 4), (2, 5), (2, 9)]


def test_loaded_values_dump_as_plain_yaml():
    doc = loads_yaml("a: {b: [1, {c: 2}]}\n")
    assert yaml.safe_dump(doc) == "a:\n  b:\n  - 1\n  - c: 2\n"


def test_reader_one_wording_for_keys_kinds_and_text():
    doc = loads_yaml("name: 5\nflag: maybe\nextra: 1\nlabel: [x]\nn: 3\n", "s.yaml")
    assert isinstance(doc, YDict)
    reader = Reader()
    reader.keys(doc, ("name", "flag", "label", "n", "need"), ("need",), "thing 'T'", "T")
    assert reader.string(doc, "name", "thing 'T'") == ""
    assert reader.string(doc, "absent", "thing 'T'") is MISSING
    assert reader.boolean(doc, "flag", "thing 'T'", True) is True
    assert reader.text(doc, "n", "thing 'T'") == "3"
    assert reader.text(doc, "label", "thing 'T'", "T") == ""
    assert reader.mapping(doc["label"], doc, "label", "'label' of thing 'T'") is None
    got = [(str(p.location), p.field, p.message) for p in reader.problems]
    assert got == [
        ("s.yaml:3:1", "extra", "unknown key 'extra' in thing 'T'; expected one of: name, flag, "
                                "label, n, need"),
        ("s.yaml:1:1", "need", "thing 'T' is missing required key 'need'"),
        ("s.yaml:1:7", "name", "'name' of thing 'T' must be a string, got integer 5"),
        ("s.yaml:2:7", "flag", "'flag' of thing 'T' must be true or false, got string 'maybe'"),
        ("s.yaml:4:8", "label", "'label' of thing 'T' must be text, got list"),
        ("s.yaml:4:8", "label", "'label' of thing 'T' must be a mapping, got list"),
    ]
    assert reader.problems[0].entity == "T"


def test_describe():
    assert describe(None) == "nothing (null)"
    assert describe(True) == "boolean true"
    assert describe("x" * 70) == "string '" + "x" * 56 + "..."
    assert describe({}) == "mapping"
