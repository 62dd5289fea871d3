"""`berth new services` / `berth new ioc`: the repositories they make load, and run."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

import pytest
from test_local import LOOPBACK, ca_value

from conftest import run_berth

HAVE_RUNTIME = all(importlib.util.find_spec(m) is not None
                   for m in ("berth.ioc.generate", "berth.epics.substitutions", "berth.cli.run"))


def token() -> str:
    return uuid.uuid4().hex[:6]


@pytest.mark.parametrize("layout", ["helm", "compose"])
def test_new_services_makes_a_repository_with_one_soft_ioc(tmp_path: Path, layout: str) -> None:
    from berth.deploy.services import ServicesRepo
    from berth.run.ioc_map import how_to_run

    folder = tmp_path / "bl09x-services"
    result = run_berth("new", "services", str(folder), "--layout", layout)
    assert result.returncode == 0, result.stderr
    repo = ServicesRepo.load(folder)
    assert repo.layout == layout
    assert list(repo.iocs) == ["bl09x-ea-test-01"]
    ioc = repo.iocs["bl09x-ea-test-01"]
    assert how_to_run(ioc.image).runnable
    assert ioc.config_dir is not None and (ioc.config_dir / "ioc.yaml").is_file()
    assert ioc.environment["IOC_PREFIX"] == "BL09X-EA-TEST-01"

    added = run_berth("new", "ioc", "bl09x-mo-sim-02", "-r", str(folder))
    assert added.returncode == 0, added.stderr
    repo = ServicesRepo.load(folder)
    assert sorted(repo.iocs) == ["bl09x-ea-test-01", "bl09x-mo-sim-02"]
    assert repo.iocs["bl09x-mo-sim-02"].environment["IOC_PREFIX"] == "BL09X-MO-SIM-02"


def test_new_refuses_bad_names_and_existing_things(tmp_path: Path) -> None:
    folder = tmp_path / "bl09x"
    assert run_berth("new", "services", str(folder)).returncode == 0
    again = run_berth("new", "services", str(folder))
    assert again.returncode == 2 and "not empty" in again.stderr

    bad = run_berth("new", "ioc", "Bad_Name", "-r", str(folder))
    assert bad.returncode == 2 and "invalid instance name 'Bad_Name'" in bad.stderr
    twice = run_berth("new", "ioc", "bl09x-ea-test-01", "-r", str(folder))
    assert twice.returncode == 2 and "already exists" in twice.stderr

    layout = run_berth("new", "services", str(tmp_path / "other"), "--layout", "kustomize")
    assert layout.returncode == 2 and "unknown layout" in layout.stderr
    assert not (tmp_path / "other").exists()
    for result in (again, bad, twice, layout):
        assert "Traceback" not in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("berth.deploy.kube.argocd") is None,
                    reason="the argocd backend is not built yet")
def test_new_deployment_makes_an_argocd_repository(tmp_path: Path) -> None:
    result = run_berth("new", "deployment", str(tmp_path / "bl09x-deployment"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bl09x-deployment" / "apps.yaml").is_file()
    again = run_berth("new", "deployment", str(tmp_path / "bl09x-deployment"))
    assert again.returncode == 2 and "Traceback" not in again.stderr


@pytest.mark.skipif(not HAVE_RUNTIME, reason="`berth run` of instance YAML needs "
                    "berth.ioc.generate and berth.epics.substitutions, not built yet")
@pytest.mark.parametrize("layout", ["helm", "compose"])
def test_a_new_repository_runs_with_berth_up(tmp_path: Path, layout: str) -> None:
    from berth.deploy.local import backend as local

    beamline = f"bl{token()}"
    folder = tmp_path / beamline
    assert run_berth("new", "services", str(folder), "--layout", layout).returncode == 0
    env = {**LOOPBACK, "BERTH_STATE_DIR": str(tmp_path / "state"), "BERTH_REPO": str(folder)}
    os.environ.update(LOOPBACK)  # for this process's CA client
    try:
        up = run_berth("up", env=env)
        assert up.returncode == 0, up.stderr
        assert ca_value(f"{beamline.upper()}-EA-TEST-01:SUM")[0] == pytest.approx(1.5)
    finally:
        local.shutdown(tmp_path / "state")
