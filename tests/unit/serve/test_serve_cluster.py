"""PV search and screens of instances berth cannot read the runtime folder of (k8s, ArgoCD):
generated from the repository at the version the cluster runs, as `berth check` generates them.
The k8s and ArgoCD backends are real; helm, kubectl and argocd are the stand-ins of
tests/fakebin, answering with recorded JSON (bl01b-ea-ioc-01 runs 2026.1.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from serve_helpers import GENERATE_DATA
from starlette.testclient import TestClient

from berth.serve.app import Server, create_app
from berth.serve.fleet import Fleet
from berth.serve.security import Guard
from conftest import run_berth
from fakebin.fakes import DATA, FakeTools, git, make_deployment_repo, make_services_repo

NS, IOC = "bl01b", "bl01b-ea-ioc-01"
IOC_YAML = """ioc_name: bl01b-ea-ioc-01
entities:
  - {{type: demo.Screen, P: "{p}"}}
  - {{type: berth.Template, file: gain.db, macros: {{P: "{p}"}}}}
"""
GAIN_DB = 'record(ao, "$(P)GAIN") {\n  field(VAL, "2")\n}\nalias("$(P)GAIN", "$(P)AMP")\n'


@pytest.fixture
def repo(tmp_path: Path, fakes: FakeTools, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The services repo whose tag 2026.1.2 (deployed) gives the IOC a PVI screen and a
    database; the working copy then names other PVs (which must not be served)."""
    monkeypatch.setenv("BERTH_STATE_DIR", str(tmp_path / "state"))
    fakes.answer("kubectl", ["get"], file="kubectl-get-iocs.json")
    fakes.answer("helm", ["list"], file="helm-list.json")
    root = make_services_repo(tmp_path / "bl01b-services")
    config = root / "services" / IOC / "config"
    for name in ("demo.ibek.support.yaml", "demo.pvi.device.yaml"):
        (config / name).write_text((GENERATE_DATA / name).read_text())
    (config / "gain.db").write_text(GAIN_DB)
    (config / "ioc.yaml").write_text(IOC_YAML.format(p="BL01B-EA-IOC-01:"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "screens")
    git(root, "tag", "-f", "2026.1.2")
    (config / "ioc.yaml").write_text(IOC_YAML.format(p="BL01B-WORKING-COPY:"))
    return root


@contextmanager
def _dashboard(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(Server(fleet, Guard("127.0.0.1"))),
                    base_url="http://127.0.0.1:8800") as client:
        yield client


def _amp_screen(client: TestClient) -> httpx.Response:
    """The PV search finds the alias AMP on the IOC; the screen it links to answers."""
    found = client.get("/pv", params={"q": "BL01B-EA-IOC-01:AMP", "format": "json"}).json()
    assert [(e["instance"], e["record_type"]) for e in found["found"]] == [(IOC, "ao")]
    index = client.get(found["found"][0]["screen"])
    assert index.status_code == 200
    return index


def test_pv_find_finds_a_pv_of_a_k8s_instance(repo: Path, fakes: FakeTools,
                                              tmp_path: Path) -> None:
    result = run_berth("pv", "find", "*:GAIN", "-b", "k8s", "-t", NS, "-r", str(repo),
                       "--json", env={**fakes.env, "BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"pv": "BL01B-EA-IOC-01:GAIN", "instance": IOC,
                                          "record_type": "ao",
                                          "screen": f"/opi/{IOC}/index.bob"}]
    # only read from the cluster: nothing installed, scaled or restarted
    assert {tuple(argv[:2]) for argv in fakes.argvs()} <= {("kubectl", "get"), ("helm", "list")}


def test_the_screen_url_serves_the_deployed_versions_bob(repo: Path, tmp_path: Path) -> None:
    fleet = Fleet("k8s", [repo], NS)
    with _dashboard(fleet) as client:
        index = _amp_screen(client)
        assert index.headers["content-type"].startswith("application/xml")
        runtime = fleet.runtime_dir(IOC)
        assert runtime is not None
        assert index.content == (runtime / "opi" / "index.bob").read_bytes()
        assert b"BL01B-EA-IOC-01:" in index.content
        assert b"WORKING-COPY" not in index.content  # the tag's screen, not the working copy's
        assert client.get(f"/opi/{IOC}/demo.pvi.bob").status_code == 200  # index.bob's link
        page = client.get(f"/i/{IOC}").text
        assert "BL01B-EA-IOC-01:GAIN" in page and "index.bob" in page
        # an instance the cluster has but the repository does not: no screens, no error
        assert client.get("/opi/bl01b-gateway/index.bob").status_code == 404


def test_two_repositories_on_k8s_are_keyed_by_repository(tmp_path: Path, fakes: FakeTools,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same release name in two repositories' namespace listing: each is its own row,
    `name@repo`, and a deploy from the page takes the chosen repository's config."""
    monkeypatch.setenv("BERTH_STATE_DIR", str(tmp_path / "state"))
    fakes.answer("kubectl", ["get"], file="kubectl-get-iocs.json")
    fakes.answer("helm", ["list"], file="helm-list.json")
    a = make_services_repo(tmp_path / "a-services")
    b = make_services_repo(tmp_path / "b-services")
    (b / "services" / IOC / "config" / "ioc.yaml").write_text(f"ioc_name: {IOC}\n# from b\n")
    git(b, "commit", "-q", "-am", "b's own")
    git(b, "tag", "2026.2.1")
    fleet = Fleet("k8s", [a, b], NS)
    keys = {row.name: row for row in fleet.rows()}
    assert f"{IOC}@a-services" in keys and f"{IOC}@b-services" in keys
    assert keys[f"{IOC}@b-services"].extra["service"] == IOC
    assert fleet.where(f"{IOC}@b-services") == (IOC, b)
    fakes.clear()
    assert fleet.act("deploy", f"{IOC}@b-services", "2026.2.1") == f"deployed {IOC} 2026.2.1"
    [call] = [c for c in fakes.calls() if c["argv"][:1] == ["upgrade"]]
    values = yaml.safe_load(call["files"][call["argv"][call["argv"].index("--values") + 1]])
    assert values["configFiles"]["ioc.yaml"].endswith("# from b\n")


def test_pv_search_and_screens_on_argocd(repo: Path, fakes: FakeTools, tmp_path: Path) -> None:
    """ArgoCD: the deployment repository names the services repository (`source.repoURL`);
    berth clones it into the user's state folder and generates each instance at the revision
    its Application runs. Only reads: the cluster is asked `argocd app list`, nothing is
    pushed."""
    apps = json.loads((DATA / "argocd-app-list.json").read_text())
    for app in apps:
        if app["metadata"]["name"] == IOC:
            app["spec"]["source"]["targetRevision"] = "2026.1.2"
    fakes.answer("argocd", ["app", "list"], stdout=json.dumps(apps))
    deployment = make_deployment_repo(tmp_path, repo)
    pushed = git(deployment, "rev-parse", "origin/main")
    result = run_berth("pv", "find", "*:GAIN", "-b", "argocd", "-r", str(deployment), "--json",
                       env={**fakes.env, "BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"pv": "BL01B-EA-IOC-01:GAIN", "instance": IOC,
                                          "record_type": "ao",
                                          "screen": f"/opi/{IOC}/index.bob"}]
    with _dashboard(Fleet("argocd", [deployment], None)) as client:
        index = _amp_screen(client)
        assert b"BL01B-EA-IOC-01:" in index.content and b"WORKING-COPY" not in index.content
        assert client.get(f"/opi/{IOC}/demo.pvi.bob").status_code == 200
    assert {argv[0] for argv in fakes.argvs()} == {"argocd"}
    assert all(argv[1:3] == ["app", "list"] for argv in fakes.argvs())
    assert git(deployment, "rev-parse", "origin/main") == pushed
    assert git(deployment, "status", "--porcelain") == ""
