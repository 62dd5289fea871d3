"""`berth new generic-ioc NAME`: a C++ Generic IOC project from a sandboxed template."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from conftest import run_berth


def create(tmp_path: Path, *args: str) -> Path:
    target = tmp_path / "ioc-adaravis"
    result = run_berth("new", "generic-ioc", "ioc-adaravis", "--dir", target, *args)
    assert result.returncode == 0, result.stderr
    return target


def test_dockerfile_has_developer_and_runtime_stages_with_base_arguments(tmp_path: Path) -> None:
    target = create(tmp_path, "--modules", "asyn,ADCore@R3-12-1,ADAravis")
    text = (target / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms[0] == "FROM ${BASE_DEVELOPER} AS developer"
    assert froms[-1] == "FROM ${BASE_RUNTIME} AS runtime"
    # the base images are build arguments, declared before the first FROM
    first_from = lines.index(froms[0])
    args = {line.split()[1].split("=")[0] for line in lines[:first_from] if line.startswith("ARG")}
    assert args == {"BASE_DEVELOPER", "BASE_RUNTIME"}
    # the runtime stage copies its files from an earlier stage and compiles nothing
    runtime = lines[lines.index(froms[-1]):]
    assert any(line.startswith("COPY --from=") for line in runtime)
    assert not any("make" in line or "install.sh" in line for line in runtime)
    # modules are built in the order given, each at its version (default or @version)
    installs = re.findall(r"^RUN (\S+)/install.sh (\S+)$", text, re.M)
    assert installs[0] == ("asyn", "R4-44-2")
    assert installs[1] == ("ADCore", "R3-12-1")
    assert installs[2][0] == "ADAravis"
    modules = yaml.safe_load((target / "support-modules.yaml").read_text())["modules"]
    assert [m["name"] for m in modules] == ["asyn", "ADCore", "ADAravis"]


def test_ci_workflow_builds_tests_and_publishes_on_tags(tmp_path: Path) -> None:
    target = create(tmp_path)
    workflow = yaml.safe_load((target / ".github/workflows/build.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    names = [step.get("name", step.get("uses", "")) for step in steps]
    assert any(n == "Test" for n in names)
    targets = [s["with"]["target"] for s in steps if "build-push-action" in s.get("uses", "")]
    assert targets == ["developer", "runtime"]
    publish = [s for s in steps if s.get("name", "").startswith("Publish")]
    assert len(publish) == 2
    assert all(s["if"] == "startsWith(github.ref, 'refs/tags/')" for s in publish)
    schema_step = next(s for s in publish if "schema" in s["name"])
    assert schema_step["with"]["files"] == "ioc-adaravis.ibek.ioc.schema.json"
    # GitHub expressions pass through the template untouched
    assert "${{ env.TAG }}" in (target / ".github/workflows/build.yml").read_text()


def test_devcontainer_uses_the_developer_target(tmp_path: Path) -> None:
    target = create(tmp_path)
    config = json.loads((target / ".devcontainer/devcontainer.json").read_text())
    assert config["build"]["target"] == "developer"
    assert config["build"]["dockerfile"] == "../Dockerfile"
    assert (target / "tests/run-tests.sh").stat().st_mode & 0o111
    assert "{{ _global.get_env('IOC_NAME') }}" in (target / "config/ioc.yaml").read_text()


def test_bad_name_and_existing_folder_are_refused_without_writing(tmp_path: Path) -> None:
    bad = run_berth("new", "generic-ioc", "IOC_Bad", "--dir", tmp_path / "x")
    assert bad.returncode == 2 and "field 'NAME'" in bad.stderr
    assert not (tmp_path / "x").exists()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    result = run_berth("new", "generic-ioc", "ioc-x", "--dir", occupied)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]
    assert "Traceback" not in bad.stderr + result.stderr
