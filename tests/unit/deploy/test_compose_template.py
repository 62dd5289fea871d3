"""The compose backend reads repositories and renders what it would run: no engine needed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from berth.deploy.compose.spec import interpolate
from conftest import REPO_ROOT, run_berth

EXAMPLE = REPO_ROOT / "examples" / "bl01b"


def render(repo: Path, name: str, state: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """`berth template -b compose`: the compose document and the `docker run` comment lines."""
    result = run_berth("template", name, "-b", "compose", "-r", repo, *extra,
                       env={"BERTH_STATE_DIR": str(state), "BERTH_ENGINE": "docker"})
    assert result.returncode == 0, result.stderr
    comment = "\n".join(line for line in result.stdout.splitlines() if line.startswith("#"))
    return yaml.safe_load(result.stdout), comment


def volumes(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["target"]: v for v in service.get("volumes", [])}


def test_corpus_compose_layout_renders_each_ioc(corpus: Path, tmp_path: Path) -> None:
    repo = tmp_path / "example-services"
    shutil.copytree(corpus / "services" / "example-services", repo)
    doc, comment = render(repo, "bl01t-ea-test-01", tmp_path / "state", "-t", "test")
    service = doc["services"]["bl01t-ea-test-01"]
    assert service["image"] == "ghcr.io/epics-containers/ioc-template-example-runtime:3.5.1"
    env = service["environment"]
    assert env["IOC_NAME"] == "bl01t-ea-test-01"
    assert env["IOC_PREFIX"] == "BL01T-EA-TEST-01"
    assert env["BEAMLINE"] == "bl01t"  # from the `extends` base in include/ioc.yml
    assert env["EPICS_CA_SERVER_PORT"] == "5094"  # interpolated from the repository's .env
    config = volumes(service)["/epics/ioc/config"]
    assert config["read_only"] is True
    # mounted from the release folder `deploy` makes (a snapshot), not the working copy
    release = tmp_path / "state" / "compose" / "releases" / "bl01t-ea-test-01"
    assert config["source"].startswith(str(release) + "/local-")
    assert config["source"].endswith("/services/bl01t-ea-test-01/config")
    assert service["networks"] == ["example-services_channel_access"]  # compose: <project>_<net>
    assert service["restart"] == "unless-stopped"
    assert service["tty"] is True and service["stdin_open"] is True
    assert service["labels"]["is_ioc"] == "true"
    assert service["labels"]["berth.version"].startswith("local-")
    # the same container as the engine's own command line
    assert "docker run -d" in comment
    assert "--name bl01t-ea-test-01" in comment
    assert "--network example-services_channel_access" in comment
    assert "-e IOC_NAME=bl01t-ea-test-01" in comment
    assert ":/epics/ioc/config:ro" in comment


def test_corpus_bind_volumes_point_into_the_repository(corpus: Path, tmp_path: Path) -> None:
    repo = tmp_path / "example-services"
    shutil.copytree(corpus / "services" / "example-services", repo)
    doc, _ = render(repo, "bl01t-di-cam-01", tmp_path / "state", "-t", "deploy")
    service = doc["services"]["bl01t-di-cam-01"]
    mounts = volumes(service)
    # outputs (screens, autosave) go to the working repository, not the read-only release
    assert mounts["/epics/opi"]["source"] == str(repo / "opi/auto-generated/bl01t-di-cam-01")
    assert mounts["/autosave"]["source"] == str(repo / "autosave/bl01t-di-cam-01")
    assert service["ports"] == ["8080:8080/tcp"]


def test_corpus_profiles_choose_the_services(corpus: Path, tmp_path: Path) -> None:
    repo = tmp_path / "example-services"
    shutil.copytree(corpus / "services" / "example-services", repo)
    # bl01t-ea-test-01 is only in profile `test`: with `deploy` it is not run
    result = run_berth("template", "bl01t-ea-test-01", "-b", "compose", "-r", repo,
                       "-t", "deploy", env={"BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2
    assert "active in the chosen profiles (deploy)" in result.stderr
    assert "Traceback" not in result.stderr


def test_corpus_helm_layout_renders_host_network_container(corpus: Path,
                                                          tmp_path: Path) -> None:
    repo = tmp_path / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", repo, symlinks=True)
    doc, comment = render(repo, "bl47p-mo-ioc-01", tmp_path / "state")
    service = doc["services"]["bl47p-mo-ioc-01"]
    values = yaml.safe_load((repo / "services/bl47p-mo-ioc-01/values.yaml").read_text())
    assert service["image"] == values["ioc-instance"]["image"]
    assert service["network_mode"] == "host"
    assert "--network host" in comment
    assert service["environment"]["IOC_NAME"] == "bl47p-mo-ioc-01"
    mounts = volumes(service)
    assert mounts["/epics/ioc/config"]["read_only"] is True
    assert mounts["/autosave"] == {"type": "volume", "source": "berth-bl47p-mo-ioc-01-data",
                                   "target": "/autosave"}
    assert doc["volumes"] == {"berth-bl47p-mo-ioc-01-data":
                              {"name": "berth-bl47p-mo-ioc-01-data"}}
    labels = service["labels"]
    assert labels["ioc"] == "true" and labels["location"] == "bl47p"  # global.location
    assert labels["berth.service"] == "bl47p-mo-ioc-01"


def test_example_beamline_renders_softioc_containers(tmp_path: Path) -> None:
    doc, comment = render(EXAMPLE, "bl01b-ea-sum-01", tmp_path / "state")
    service = doc["services"]["bl01b-ea-sum-01"]
    assert service["image"].startswith("ghcr.io/berth/softioc:")
    assert service["environment"]["IOC_PREFIX"] == "BL01B-EA-SUM-01"
    assert service["network_mode"] == "host"
    assert "--restart unless-stopped" in comment
    assert "--pull never" in comment  # no registry: an absent image is an error, not a pull


def test_missing_image_in_values_names_file_and_field(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    folder = repo / "services" / "bl99-ioc-01"
    (folder / "config").mkdir(parents=True)
    (folder / "config" / "ioc.yaml").write_text("ioc_name: x\nentities: []\n")
    (folder / "values.yaml").write_text("ioc-instance:\n  env: []\n")
    result = run_berth("template", "bl99-ioc-01", "-b", "compose", "-r", repo,
                       env={"BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2
    assert "values.yaml" in result.stderr and "field 'image'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("${A}", "1"), ("$A/x", "1/x"), ("${MISSING:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""), ("${MISSING-dflt}", "dflt"), ("$$A", "$A"), ("${MISSING}", ""),
])
def test_compose_interpolation(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "1", "EMPTY": ""}) == expected
