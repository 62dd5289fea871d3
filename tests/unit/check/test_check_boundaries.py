"""`berth check` agrees with `berth run`, and reads nothing outside the repository (issue 12,
repros 5 and 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "check" / "repo"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(DATA, repo)
    return repo


def _check(repo: Path) -> tuple[int, list[dict]]:
    result = run_berth("check", "-r", repo, "--json", "ioc-a", timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)["problems"]


def test_a_syntax_error_outside_a_record_fails_check_as_it_fails_run(tmp_path):
    repo = _repo(tmp_path)
    db = repo / "services" / "ioc-a" / "config" / "records.db"
    code, problems = _check(repo)
    assert code == 0, problems  # the same files, unbroken: both accept them
    db.write_text(db.read_text() + 'recrod(ai, "$(P)Bad") {\n}\n')
    bad_line = len(db.read_text().splitlines()) - 1

    code, problems = _check(repo)
    errors = [p for p in problems if p["severity"] == "error"]
    assert code == 1 and errors, problems
    assert any(p["file"] == str(db) and p["line"] == bad_line and "syntax error" in p["message"]
               for p in errors), errors

    run = run_berth("run", repo / "services" / "ioc-a" / "config", "--runtime-dir",
                    tmp_path / "rt", env={"IOC_NAME": "ioc-a", "IOC_PREFIX": "T-A"}, timeout=60)
    assert run.returncode != 0, "berth run started what check refused"
    assert "Traceback" not in run.stderr
    assert "iocRun: All initialization complete" not in run.stdout + run.stderr


def test_a_database_linked_out_of_the_repository_is_refused(tmp_path):
    repo = _repo(tmp_path)
    secret = tmp_path / "secret.db"
    secret.write_text('record(ai, "SECRET:PV") {}\n')
    link = repo / "services" / "ioc-a" / "config" / "stolen.db"
    link.symlink_to(secret)
    config = repo / "services" / "ioc-a" / "config" / "ioc.yaml"
    config.write_text(config.read_text().replace("records.db", "stolen.db"))
    code, problems = _check(repo)
    assert code == 1
    assert any(p["file"] == str(link) and "outside the repository" in p["message"]
               for p in problems), problems
    assert "SECRET:PV" not in json.dumps(problems)


def test_a_link_to_etc_shadow_is_refused_without_reading_it(tmp_path):
    repo = _repo(tmp_path)
    (repo / "services" / "ioc-a" / "config" / "shadow.db").symlink_to("/etc/shadow")
    code, problems = _check(repo)
    assert code == 1
    assert any("symbolic link to /etc/shadow" in p["message"] for p in problems), problems


def test_a_link_inside_the_repository_is_fine(tmp_path):
    repo = _repo(tmp_path)
    config = repo / "services" / "ioc-a" / "config"
    (config / "again.db").symlink_to("records.db")
    code, problems = _check(repo)
    assert code == 0, problems
