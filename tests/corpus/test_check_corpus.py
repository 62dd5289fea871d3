"""`berth check` on a real services repository (the corpus's p47-services), with and without
the support definitions of its foreign Generic IOCs. Skips when BERTH_CORPUS is unset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_berth

FOREIGN_DEFS_NOTE = "support definitions of image"
NOT_ON_HOST_NOTE = "is not on this host"


@pytest.fixture()
def p47(corpus: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", repo, symlinks=True)
    for folder, dirs, files in os.walk(repo):  # the corpus is read-only; the copy need not be
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
    return repo


def defs_args(corpus: Path) -> list[str]:
    args: list[str] = []
    for folder in sorted((corpus / "ibek-support").iterdir()):
        if folder.is_dir() and folder.name != "_global":
            args += ["--defs", str(folder)]
    return args


def run_check(repo: Path, *args: str) -> tuple[int, dict]:
    result = run_berth("check", "-r", repo, "--json", *args, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def problems_of(report: dict, instance: str, severity: str) -> list[dict]:
    return [p for p in report["problems"]
            if p["instance"] == instance and p["severity"] == severity]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_p47_without_defs_says_what_it_cannot_check(p47: Path) -> None:
    code, report = run_check(p47)
    assert code == 0, report["problems"]
    assert report["counts"]["error"] == 0
    names = {i["name"] for i in report["instances"]}
    assert names == {"bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-ea-fastcs-01",
                     "bl47p-ea-panda-01", "bl47p-mo-ioc-01", "bl47p-synoptic",
                     "sr03c-va-ioc-01"}
    for name in ("bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01", "sr03c-va-ioc-01"):
        notes = problems_of(report, name, "note")
        assert len(notes) == 1 and FOREIGN_DEFS_NOTE in notes[0]["message"], notes
        assert notes[0]["file"] == str(p47 / "services" / name / "config" / "ioc.yaml")
    synoptic = problems_of(report, "bl47p-synoptic", "note")
    assert "ioc-asyn-runtime" in synoptic[0]["message"]
    assert NOT_ON_HOST_NOTE in synoptic[0]["message"]
    assert "not an ibek config" in problems_of(report, "bl47p-ea-fastcs-01", "note")[0]["message"]
    assert "no config folder" in problems_of(report, "bl47p-ea-panda-01", "note")[0]["message"]


def test_p47_with_defs_finds_the_real_problems(p47: Path, corpus: Path) -> None:
    code, report = run_check(p47, *defs_args(corpus))
    assert code == 1
    # sr03c uses 8 modules that are not in ibek-support: each undefined type is an error, at
    # its first use, naming the other lines.
    sr03c = p47 / "services" / "sr03c-va-ioc-01" / "config" / "ioc.yaml"
    errors = problems_of(report, "sr03c-va-ioc-01", "error")
    undefined = {p["message"].split("'")[1]: p for p in errors
                 if "is not defined by the support definitions" in p["message"]}
    modules = {t.split(".")[0] for t in undefined}
    assert modules == {"FINS", "ether_ip", "SR-VA", "dlsPLC", "mks937a", "digitelMpc", "rga",
                       "vacuumSpace"}
    fins = undefined["FINS.FINSUDPInit"]
    assert (fins["file"], fins["line"]) == (str(sr03c), line_of(sr03c, "FINS.FINSUDPInit"))
    assert "also used at lines" in undefined["digitelMpc.digitelMpcIonp"]["message"]
    assert len(errors) == len(undefined)  # the modules it has (asyn, autosave…) are fine

    # The others generate; their Generic IOCs are not here, which is a note, not an error.
    for name in ("bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01"):
        assert problems_of(report, name, "error") == []
        summary = next(i for i in report["instances"] if i["name"] == name)
        assert summary["checked"] == ["schema", "generate"]
        notes = problems_of(report, name, "note")
        assert len(notes) == 1 and NOT_ON_HOST_NOTE in notes[0]["message"]
    # A quoted number for a float parameter: the schema rejects it, ibek converts it.
    mo = p47 / "services" / "bl47p-mo-ioc-01" / "config" / "ioc.yaml"
    warnings = problems_of(report, "bl47p-mo-ioc-01", "warning")
    assert {(w["field"], w["line"]) for w in warnings} == {
        ("HLM", line_of(mo, 'HLM: "25"')), ("LLM", line_of(mo, 'LLM: "-25"'))}
