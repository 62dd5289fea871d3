"""`berth new services` / `berth new ioc`: the repositories they make load, and run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml
from test_local import LOOPBACK, SERVER_LOOPBACK, add_global_env, ca_value

from conftest import run_berth

BERTH = [sys.executable, "-m", "berth"]


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


def test_new_deployment_makes_an_argocd_repository(tmp_path: Path) -> None:
    result = run_berth("new", "deployment", str(tmp_path / "bl09x-deployment"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bl09x-deployment" / "apps.yaml").is_file()
    again = run_berth("new", "deployment", str(tmp_path / "bl09x-deployment"))
    assert again.returncode == 2 and "Traceback" not in again.stderr


@pytest.mark.parametrize("layout", ["helm", "compose"])
def test_a_new_repository_runs_with_berth_up(tmp_path: Path, layout: str) -> None:
    from berth.deploy.local import backend as local

    beamline = f"bl{token()}"
    folder = tmp_path / beamline
    assert run_berth("new", "services", str(folder), "--layout", layout).returncode == 0
    stay_on_loopback(folder)
    env = {**LOOPBACK, "BERTH_STATE_DIR": str(tmp_path / "state"), "BERTH_REPO": str(folder)}
    os.environ.update(LOOPBACK)  # for this process's CA client
    try:
        up = run_berth("up", env=env)
        assert up.returncode == 0, up.stderr
        assert ca_value(f"{beamline.upper()}-EA-TEST-01:SUM")[0] == pytest.approx(1.5)
    finally:
        local.shutdown(tmp_path / "state")


def stay_on_loopback(repo: Path) -> None:
    """The repository's IOCs beacon to loopback only (berth passes no caller's settings on)."""
    compose_base = repo / "include" / "ioc.yml"
    if not compose_base.is_file():
        add_global_env(repo, SERVER_LOOPBACK)
        return
    text = compose_base.read_text()
    lines = "".join(f"      {k}: \"{v}\"\n" for k, v in SERVER_LOOPBACK.items())
    assert "    environment:\n" in text
    compose_base.write_text(text.replace("    environment:\n", "    environment:\n" + lines, 1))


def git_out(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("layout", ["helm", "compose"])
def test_new_services_is_a_git_repository_with_ci_running_check(tmp_path: Path,
                                                                layout: str) -> None:
    folder = tmp_path / "bl09x-services"
    result = run_berth("new", "services", folder, "--layout", layout)
    assert result.returncode == 0, result.stderr
    assert git_out(folder, "rev-list", "--count", "HEAD").strip() == "1"
    assert git_out(folder, "status", "--porcelain") == ""  # every file is in the first commit
    tracked = git_out(folder, "ls-files").split()
    assert ".github/workflows/check.yml" in tracked and ".berth/ioc.schema.json" in tracked

    workflow = yaml.safe_load((folder / ".github/workflows/check.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "berth check" in runs
    gitlab = yaml.safe_load((folder / ".gitlab-ci.yml").read_text())
    assert "berth check" in gitlab["check"]["script"] and "rules" not in gitlab["check"]

    # and what the CI runs passes on the new repository
    check = run_berth("check", "-r", folder)
    assert check.returncode == 0, check.stdout + check.stderr


def resolved_schema(instance: Path) -> dict[str, object]:
    """The schema the `# yaml-language-server: $schema=...` header of `instance` points at,
    resolved as VS Code's YAML extension does (relative to the file)."""
    first = instance.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    target = (instance.parent / match.group(1)).resolve()
    assert target.is_file(), target
    return json.loads(target.read_text())


@pytest.mark.parametrize("layout", ["helm", "compose"])
def test_the_schema_header_of_a_new_instance_resolves_and_accepts_it(tmp_path: Path,
                                                                     layout: str) -> None:
    from berth import paths

    folder = tmp_path / "bl09x"
    assert run_berth("new", "services", folder, "--layout", layout).returncode == 0
    assert run_berth("new", "ioc", "bl09x-mo-sim-02", "-r", folder).returncode == 0
    for name in ("bl09x-ea-test-01", "bl09x-mo-sim-02"):
        instance = folder / "services" / name / "config" / "ioc.yaml"
        schema = resolved_schema(instance)
        document = yaml.safe_load(instance.read_text())
        jsonschema.validate(document, schema)  # raises on any error
        # the schema is berth's, not one that accepts anything: a wrong entity fails
        document["entities"].append({"type": "epics.dbpf", "pv": "X", "valu": "1"})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document, schema)
    # it is what `berth schema` gives for berth's built-in support definitions
    out = tmp_path / "schema.json"
    produced = run_berth("schema", "--defs", paths.support_files()[0].parent, "-o", out)
    assert produced.returncode == 0, produced.stderr
    assert json.loads(out.read_text()) == json.loads(
        (folder / ".berth" / "ioc.schema.json").read_text())


def test_new_dry_run_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "bl09x"
    dry = run_berth("new", "services", folder, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would write {folder / 'services' / 'bl09x-ea-test-01' / 'config' / 'ioc.yaml'}" \
        in dry.stdout
    assert not folder.exists()
    assert run_berth("new", "services", folder).returncode == 0
    before = git_out(folder, "status", "--porcelain", "--ignored")
    again = run_berth("new", "ioc", "bl09x-mo-sim-02", "-r", folder, "--dry-run")
    assert again.returncode == 0 and "would write" in again.stdout
    assert git_out(folder, "status", "--porcelain", "--ignored") == before
    assert not (folder / "services" / "bl09x-mo-sim-02").exists()


def test_new_services_without_a_git_identity_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", EMAIL="")
    folder = tmp_path / "bl09x"
    result = subprocess.run([*BERTH, "new", "services", str(folder)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "git does not know who you are" in result.stderr and "Traceback" not in result.stderr
    assert not folder.exists()
