"""`berth new service dashboard`: berth serve as a service of a services repository — a chart
of its own (Deployment running `berth serve --host 0.0.0.0` with its token from a Secret, a
ClusterIP Service, RBAC) that a real helm renders into valid manifests, or a compose service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_chart import HELM, helm, validate_all

from berth.deploy.services import ServicesRepo
from conftest import run_berth

NAME = "berth-dashboard"


def new_repo(tmp_path: Path, layout: str) -> Path:
    folder = tmp_path / "bl09x-services"
    assert run_berth("new", "services", str(folder), "--layout", layout).returncode == 0
    result = run_berth("new", "service", "dashboard", "-r", str(folder))
    assert result.returncode == 0, result.stderr
    assert f"created dashboard service {folder.resolve()}/services/{NAME}" in result.stdout
    return folder


@pytest.mark.skipif(HELM is None, reason="no helm binary: run scripts/install-helm")
def test_helm_layout_gets_a_dashboard_chart_that_renders_valid(tmp_path: Path) -> None:
    folder = new_repo(tmp_path, "helm")
    repo = ServicesRepo.load(folder)
    assert NAME in repo.services and NAME not in repo.iocs  # a service, not an IOC
    result = helm("template", NAME, str(folder / "services" / NAME), "-n", "bl09x")
    assert result.returncode == 0, result.stderr
    assert sorted(validate_all(result.stdout)) == [
        "Deployment", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"]
    docs = {d["kind"]: d for d in yaml.safe_load_all(result.stdout) if d}
    [container] = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["berth", "serve", "--host", "0.0.0.0", "--port", "8800",
                                 "-b", "k8s", "-t", "bl09x", "-r", "/repo"]
    [token] = container["env"][:1]
    assert token == {"name": "BERTH_SERVE_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": f"{NAME}-token", "key": "token"}}}
    assert docs["Secret"]["metadata"]["name"] == f"{NAME}-token"
    assert len(docs["Secret"]["data"]["token"]) >= 40  # 32 random characters, base64
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    service = docs["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 8800
    assert service["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    checked = run_berth("check", "-r", str(folder))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_layout_gets_a_dashboard_service(tmp_path: Path) -> None:
    folder = new_repo(tmp_path, "compose")
    top = yaml.safe_load((folder / "compose.yaml").read_text())
    assert f"services/{NAME}/compose.yml" in top["include"]
    spec = yaml.safe_load((folder / "services" / NAME / "compose.yml").read_text())
    service = spec["services"][NAME]
    assert service["command"] == ["berth", "serve", "--host", "0.0.0.0", "--port", "8800",
                                  "-b", "compose", "-r",
                                  "${BERTH_REPO_ROOT:?the repository's path on this host}"]
    assert service["volumes"][0] == "../..:${BERTH_REPO_ROOT}:ro"  # the same path inside
    assert "BERTH_SERVE_TOKEN" in service["environment"]
    assert service["restart"] == "unless-stopped"
    repo = ServicesRepo.load(folder)
    assert NAME in repo.services and NAME not in repo.iocs


def test_dashboard_twice_or_unknown_kind_is_refused(tmp_path: Path) -> None:
    folder = new_repo(tmp_path, "helm")
    again = run_berth("new", "service", "dashboard", "-r", str(folder))
    assert again.returncode == 2 and f"service '{NAME}' already exists" in again.stderr
    unknown = run_berth("new", "service", "gateway", "-r", str(folder))
    assert unknown.returncode == 2 and "unknown service kind 'gateway'" in unknown.stderr
    assert "Traceback" not in again.stderr + unknown.stderr
