"""Operator verbs that read the repository or print what would be applied (no IOC runs here),
and the CLI's handling of bad input."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from test_local import copy_example, make_history

from conftest import run_berth


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_example(tmp_path_factory.mktemp("ops") / "bl01b", "OPS")
    make_history(root)
    return root


def test_list_shows_services_with_their_latest_version(repo: Path) -> None:
    result = run_berth("list", "-r", str(repo), "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["bl01b-ea-sum-01"]["latest"] == "v2"
    assert rows["bl01b-mo-sim-01"]["latest"] == "v1"
    assert all(r["ioc"] for r in rows.values())
    table = run_berth("list", "-r", str(repo)).stdout
    assert table.splitlines()[0].split() == ["NAME", "LATEST", "IOC", "IMAGE"]


def test_instances_lists_versions_and_suggests_names(repo: Path) -> None:
    result = run_berth("instances", "bl01b-ea-sum-01", "-r", str(repo))
    assert result.stdout.split() == ["v1", "v2"]
    wrong = run_berth("instances", "bl01b-ea-sun-01", "-r", str(repo))
    assert wrong.returncode == 2
    assert "did you mean bl01b-ea-sum-01" in wrong.stderr


def test_template_prints_what_would_run_and_changes_nothing(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = run_berth("template", "bl01b-ea-sum-01", "v1", "-r", str(repo),
                       env={"BERTH_STATE_DIR": str(state)})
    assert result.returncode == 0, result.stderr
    assert "[program:bl01b-ea-sum-01]" in result.stdout
    spec = json.loads(result.stdout[result.stdout.index("{"):])
    assert spec["version"] == "v1"
    assert spec["env"]["IOC_PREFIX"] == "BL01BOPS-EA-SUM-01"
    assert spec["argv"][-6:-4] == ["--runtime-dir", str(state / "instances" / "bl01b-ea-sum-01"
                                                          / "runtime")]
    assert not (state / "releases").exists() and not (state / "state.json").exists()


def test_systemd_unit_runs_the_supervisor_for_the_state_dir(tmp_path: Path) -> None:
    result = run_berth("systemd-unit", env={"BERTH_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0
    assert f"Environment=BERTH_STATE_DIR={tmp_path}" in result.stdout
    exec_start = next(line for line in result.stdout.splitlines()
                      if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [sys.executable, "-m", "berth",
                                                                   "supervise"]
    assert "Restart=always" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ps", "-b", "nosuch"), "unknown backend 'nosuch'"),
        (("attach",), "give an instance name or --socket PATH"),
        (("attach", "--socket", "/nonexistent/x.sock"), "no IOC console answers"),
        (("deploy-local", "/nonexistent/services/x"), "expected an instance folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], expected: str,
                                          tmp_path: Path) -> None:
    result = run_berth(*args, env={"BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_images_run_embedded_or_through_the_ioc_map(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.deploy.services import Service
    from berth.run.ioc_map import how_to_run

    def service(image: str) -> Service:
        return Service("x", tmp_path, "helm", {"ioc-instance": {"image": image}}, "ioc-instance")

    monkeypatch.delenv("BERTH_IOC_MAP", raising=False)
    assert how_to_run(service("ghcr.io/berth/softioc:2.0").image).runnable
    cam = "ghcr.io/epics-containers/ioc-adaravis-runtime:2024.11.1"
    assert "needs image " + cam in how_to_run(service(cam).image).reason

    ioc = tmp_path / "adaravis"
    monkeypatch.setenv("BERTH_IOC_MAP", f"ghcr.io/epics-containers/ioc-adaravis-runtime={ioc}")
    assert "has no bin/linux-x86_64/ioc" in how_to_run(service(cam).image).reason
    (ioc / "bin" / "linux-x86_64").mkdir(parents=True)
    (ioc / "bin" / "linux-x86_64" / "ioc").write_text("#!/bin/sh\n")
    how = how_to_run(service(cam).image)
    assert how.runnable and how.ioc_dir == ioc
