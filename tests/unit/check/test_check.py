"""`berth check` on a small repository of soft IOCs: clean, then with mistakes seeded one at a
time and all together. Each run is the real command line, loading the databases into real EPICS.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "check" / "repo"


@dataclass
class Expect:
    """A problem `berth check` must report: in `file` (relative to the repo), at the line
    holding `marker`, with `text` in its message."""

    file: str
    marker: str
    text: str
    severity: str = "error"


def make_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(DATA, repo)
    return repo


def line_of(path: Path, marker: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def check_json(repo: Path, *args: str) -> tuple[int, dict, str]:
    result = run_berth("check", "-r", repo, "--json", *args, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def new_instance(repo: Path, name: str, values: str, prefix: str | None = None) -> Path:
    folder = repo / "services" / name
    folder.mkdir()
    (folder / "values.yaml").write_text(values)
    if prefix is not None:
        (folder / "config").mkdir()
        shutil.copy(DATA / "services" / "ioc-a" / "config" / "records.db", folder / "config")
        (folder / "config" / "ioc.yaml").write_text(
            "ioc_name: \"{{ _global.get_env('IOC_NAME') }}\"\n"
            f"description: {name}\n"
            "entities:\n"
            "  - type: berth.Template\n"
            "    file: records.db\n"
            f"    macros: {{ P: \"{prefix}:\" }}\n")
    return folder


SOFT = "ioc-instance:\n  image: ghcr.io/berth/softioc:0.1.0\n"

# -- the mistakes; each seeds one and returns what must be reported -------------------------


def unknown_entity_type(repo: Path) -> Expect:
    append(repo / "services/ioc-a/config/ioc.yaml", "  - type: epics.NoSuchThing\n    x: 1\n")
    return Expect("services/ioc-a/config/ioc.yaml", "epics.NoSuchThing", "epics.NoSuchThing")


def missing_required_parameter(repo: Path) -> Expect:
    # reported where the entity starts (its first key)
    append(repo / "services/ioc-a/config/ioc.yaml",
           "  - pv: \"T-A:MISSING\"\n    type: epics.dbpf\n")
    return Expect("services/ioc-a/config/ioc.yaml", "T-A:MISSING",
                  "missing required parameter 'value'")


def wrong_type(repo: Path) -> Expect:
    append(repo / "services/ioc-a/config/ioc.yaml",
           "  - type: epics.EpicsCaMaxArrayBytes\n    max_bytes: lots\n")
    return Expect("services/ioc-a/config/ioc.yaml", "max_bytes: lots", "expected an integer")


def unknown_record_type(repo: Path) -> Expect:
    append(repo / "services/ioc-b/config/records.db",
           'record(bogus, "$(P)BOGUS") {\n  field(DESC, "x")\n}\n')
    return Expect("services/ioc-b/config/records.db", "record(bogus",
                  "Record type 'bogus' for record 'T-B:BOGUS' not found")


def unknown_field(repo: Path) -> Expect:
    append(repo / "services/ioc-b/config/records.db",
           'record(ai, "$(P)NOFIELD") {\n  field(NOPE, "1")\n}\n')
    return Expect("services/ioc-b/config/records.db", "field(NOPE",
                  "doesn't have a field 'NOPE'")


def bad_menu_value(repo: Path) -> Expect:
    append(repo / "services/ioc-b/config/records.db",
           'record(ai, "$(P)MENU") {\n  field(SCAN, "1 sekond")\n}\n')
    return Expect("services/ioc-b/config/records.db", "1 sekond", "menuScan")


def duplicate_pv(repo: Path) -> Expect:
    new_instance(repo, "ioc-dup", SOFT, prefix="T-B")
    return Expect("services/ioc-dup/config/records.db", 'record(ao, "$(P)A")',
                  "PV 'T-B:A' is also served by instance ioc-b")


def duplicate_instance_name(repo: Path) -> Expect:
    new_instance(repo, "ioc-twin", SOFT + "  env:\n    - name: IOC_NAME\n      value: ioc-b\n",
                 prefix="T-TWIN")
    # ioc.yaml takes its name from IOC_NAME, so the values' IOC_NAME is what to change
    return Expect("services/ioc-twin/values.yaml", "value: ioc-b",
                  "instance name 'ioc-b' is also used by ioc-b")


def unknown_values_key(repo: Path) -> Expect:
    append(repo / "services/ioc-a/values.yaml", "  hostNetwerk: false\n")
    return Expect("services/ioc-a/values.yaml", "hostNetwerk", "did you mean 'hostNetwork'?")


def malformed_values(repo: Path) -> Expect:
    new_instance(repo, "ioc-broken", "ioc-instance:\n  image: [ghcr.io/berth/softioc:0.1.0\n"
                 "  env: []\n")
    return Expect("services/ioc-broken/values.yaml", "env: []", "invalid YAML")


def missing_config_folder(repo: Path) -> Expect:
    new_instance(repo, "ioc-noconfig", SOFT)
    return Expect("services/ioc-noconfig/values.yaml", "image:", "config folder not found")


MISTAKES: list[Callable[[Path], Expect]] = [
    unknown_entity_type, missing_required_parameter, wrong_type, unknown_record_type,
    unknown_field, bad_menu_value, duplicate_pv, duplicate_instance_name, unknown_values_key,
    malformed_values, missing_config_folder,
]


def assert_reported(repo: Path, report: dict, expect: Expect) -> None:
    file = repo / expect.file
    line = line_of(file, expect.marker)
    matches = [p for p in report["problems"]
               if p["file"] == str(file) and p["line"] == line and expect.text in p["message"]
               and p["severity"] == expect.severity]
    assert matches, (f"expected {expect.severity} at {file}:{line} with {expect.text!r}; got:\n"
                     + "\n".join(f"{p['file']}:{p['line']} {p['severity']} {p['message']}"
                                 for p in report["problems"]))


# -- tests ---------------------------------------------------------------------------------------


def test_clean_repository_passes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = run_berth("check", "-r", repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout
    code, report, _ = check_json(repo)
    assert code == 0 and report["ok"] and report["problems"] == [], report
    # Both instances were generated and loaded into EPICS; each serves 3 PVs (2 records, 1 alias).
    by_name = {i["name"]: i for i in report["instances"]}
    assert set(by_name) == {"ioc-a", "ioc-b"}
    for summary in by_name.values():
        assert summary["checked"] == ["schema", "generate", "epics"]
        assert summary["pvs"] == 3


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.__name__)
def test_each_mistake_is_reported_with_file_and_line(tmp_path: Path, mistake: Callable) -> None:
    repo = make_repo(tmp_path)
    expect = mistake(repo)
    code, report, _ = check_json(repo)
    assert code == 1
    assert_reported(repo, report, expect)
    # Nothing else is blamed: every error points into the instance the mistake was seeded in.
    seeded = Path(expect.file).parts[1]
    for problem in report["problems"]:
        if problem["severity"] == "error":
            assert f"/services/{seeded}/" in problem["file"], problem


def test_all_mistakes_at_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    expects = [mistake(repo) for mistake in MISTAKES]
    code, report, _ = check_json(repo)
    assert code == 1
    for expect in expects:
        assert_reported(repo, report, expect)
    files = [(p["file"], p["line"]) for p in report["problems"]]
    assert files == sorted(files)  # sorted by file, then line
    # People get one line per problem, `file:line: …`, and the same verdict.
    result = run_berth("check", "-r", repo)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for expect in expects:
        file = repo / expect.file
        assert f"{file}:{line_of(file, expect.marker)}" in result.stdout


def test_database_problems_from_support_templates_point_at_the_instance_yaml(
        tmp_path: Path) -> None:
    """An alias to a record that does not exist comes from the soft IOC's alias.template in
    ioc.subst; the user fixes it in ioc.yaml, so that is where it is reported."""
    repo = make_repo(tmp_path)
    append(repo / "services/ioc-a/config/ioc.yaml",
           '  - type: epics.DbAlias\n    name: "T-A:NOPE"\n    alias: "T-A:OTHER"\n')
    code, report, _ = check_json(repo)
    assert code == 1
    assert_reported(repo, report, Expect("services/ioc-a/config/ioc.yaml", "T-A:NOPE",
                                         "Alias 'T-A:OTHER' names an unknown record 'T-A:NOPE'"))


def test_suspicious_link_is_a_warning_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    db = repo / "services/ioc-b/config/records.db"
    db.write_text(db.read_text().replace('"$(P)A NPP"', '"$(P)A NPP NMSS"'))
    code, report, _ = check_json(repo)
    assert code == 0
    assert_reported(repo, report, Expect("services/ioc-b/config/records.db", "NMSS",
                                         "'NMSS' is not a link modifier", "warning"))


def test_named_instances_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    unknown_field(repo)  # a mistake in ioc-b
    code, report, _ = check_json(repo, "ioc-a")
    assert code == 0 and [i["name"] for i in report["instances"]] == ["ioc-a"]
    result = run_berth("check", "-r", repo, "ioc-z")
    assert result.returncode == 2 and "no service 'ioc-z'" in result.stderr
    assert "Traceback" not in result.stderr


def test_compose_services_defined_twice(tmp_path: Path) -> None:
    repo = tmp_path / "compose-repo"
    (repo / "services" / "one").mkdir(parents=True)
    (repo / "services" / "two").mkdir(parents=True)
    (repo / "compose.yaml").write_text(
        "include:\n  - services/one/compose.yml\n  - services/two/compose.yml\n")
    for name in ("one", "two"):
        (repo / "services" / name / "compose.yml").write_text(
            "services:\n  ioc-same:\n    image: ghcr.io/berth/softioc:0.1.0\n"
            "    labels: {is_ioc: \"true\"}\n")
    code, report, _ = check_json(repo)
    assert code == 1
    assert_reported(repo, report, Expect("services/two/compose.yml", "ioc-same:",
                                         "service 'ioc-same' is defined twice"))


def test_hand_written_st_cmd_with_substitutions(tmp_path: Path) -> None:
    """st.cmd + ioc.subst (no instance YAML): the substitutions are expanded as `berth run`
    expands them and an error in the expanded ioc.db is reported at the template's line."""
    repo = make_repo(tmp_path)
    config = new_instance(repo, "ioc-legacy", SOFT) / "config"
    config.mkdir()
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        "dbLoadRecords /epics/runtime/ioc.db\niocInit\n")
    (config / "ioc.subst").write_text(
        'file "gauge.template" {\n  pattern { N, SCAN }\n  { "T-L:G1", "1 second" }\n'
        '  { "T-L:G2", "2 seconds" }\n}\n')
    (config / "gauge.template").write_text(
        'record(ai, "$(N)") {\n  field(DESC, "gauge")\n  field(SCAN, "$(SCAN)")\n}\n')
    code, report, _ = check_json(repo)
    assert code == 1
    assert_reported(repo, report, Expect("services/ioc-legacy/config/gauge.template",
                                         "field(SCAN", "Can't set 'T-L:G2.SCAN' to '2 seconds'"))
    summary = next(i for i in report["instances"] if i["name"] == "ioc-legacy")
    assert summary["pvs"] == 2 and summary["checked"] == ["epics"]


STAND_IN_IOC = '''#!{python}
"""Stand-in for a compiled Generic IOC binary (none can be had here): runs its st.cmd argument
on berth's embedded EPICS, one line at a time, as `ioc st.cmd` would."""
import os
import sys

from berth.epics import libs as epics

os.environ["EPICS_DB_INCLUDE_PATH"] = os.pathsep.join(
    p for p in (os.environ.get("EPICS_DB_INCLUDE_PATH"), epics.dbd_search_path()) if p)
from berth.epics.softioc import SoftIoc

ioc = SoftIoc()
with open(sys.argv[1]) as script:
    for line in script.read().splitlines():
        line = line.strip()
        if line == "exit":
            break
        if line and not line.startswith(("#", "on error")):
            ioc.command(line)
ioc.libs.com.errlogFlush()
sys.stdout.flush()
os._exit(0)
'''


def test_generic_ioc_on_this_host_loads_with_its_own_binary(tmp_path: Path) -> None:
    """An image mapped to a local Generic IOC folder (BERTH_IOC_MAP) is loaded by that IOC's
    binary with its dbd; unmapped, the same instance is only a note."""
    import sys

    ioc = tmp_path / "generic-ioc"
    (ioc / "bin" / "linux-x86_64").mkdir(parents=True)
    (ioc / "dbd").mkdir()
    binary = ioc / "bin" / "linux-x86_64" / "ioc"
    binary.write_text(STAND_IN_IOC.format(python=sys.executable))
    binary.chmod(0o755)
    shutil.copy(Path(__file__).parents[3] / "src/berth/assets/softioc/ioc/dbd/ioc.dbd",
                ioc / "dbd" / "ioc.dbd")
    repo = make_repo(tmp_path)
    config = new_instance(repo, "ioc-gen", "ioc-instance:\n  image: example.org/ioc-gen:1.0\n",
                          prefix="T-G") / "config"
    (config / "ioc.yaml").unlink()
    (config / "st.cmd").write_text(
        'dbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        'dbLoadRecords /epics/ioc/config/records.db "P=T-G:"\niocInit\n')
    unknown_field_db = config / "records.db"
    append(unknown_field_db, 'record(ai, "$(P)X") {\n  field(NOPE, "1")\n}\n')

    result = run_berth("check", "-r", repo, "--json",
                       env={"BERTH_IOC_MAP": f"example.org/ioc-gen={ioc}"})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert_reported(repo, report, Expect("services/ioc-gen/config/records.db", "field(NOPE",
                                         "doesn't have a field 'NOPE'"))
    summary = next(i for i in report["instances"] if i["name"] == "ioc-gen")
    assert summary["checked"] == ["epics"] and summary["pvs"] == 3

    code, report, _ = check_json(repo)
    assert code == 0
    notes = [p for p in report["problems"] if p["instance"] == "ioc-gen"]
    assert [p["severity"] for p in notes] == ["note"]
    assert "example.org/ioc-gen:1.0 is not on this host" in notes[0]["message"]


def test_start_up_precedence_is_run_s(tmp_path: Path) -> None:
    """`berth check` reads a config folder as `berth run` does (`run.launch.plan`): two instance
    YAMLs are the error `berth run` gives, and start.sh overrides everything."""
    repo = make_repo(tmp_path)
    config = new_instance(repo, "ioc-twice", SOFT, prefix="T-TW") / "config"
    (config / "ioc.yaml").rename(config / "first.yaml")
    shutil.copy(config / "first.yaml", config / "second.yaml")
    code, report, _ = check_json(repo)
    assert code == 1
    twice = [p for p in report["problems"] if "more than one IOC instance YAML" in p["message"]]
    assert len(twice) == 1 and "first.yaml, second.yaml" in twice[0]["message"]
    assert twice[0]["file"].endswith("services/ioc-twice/config")

    (config / "start.sh").write_text("#!/bin/sh\nexit 0\n")
    code, report, _ = check_json(repo)
    assert code == 0, report
    notes = [p for p in report["problems"] if p["severity"] == "note"]
    assert any("start.sh overrides the start-up" in p["message"] for p in notes)
