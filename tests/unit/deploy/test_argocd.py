"""The ArgoCD backend edits a real git deployment repository (round-trip: every comment kept,
minimal diffs, pushed to a bare remote) and reads `argocd app list -o json` from a stand-in
argocd on PATH answering with a recorded reply."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from berth.deploy import get_backend
from berth.errors import BerthError
from berth.scaffold import new_deployment
from conftest import run_berth
from fakebin.fakes import FakeTools, git, make_deployment_repo, make_services_repo

NS = "bl01b-beamline"


def berth(*args: str | Path, repo: Path, env: dict[str, str] | None = None,
          code: int = 0) -> str:
    """The real CLI with the argocd backend on a deployment repository; stdout (or stderr)."""
    result = run_berth(args[0], "-b", "argocd", "-r", repo, *args[1:], env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout if code == 0 else result.stderr


@pytest.fixture
def services(tmp_path: Path) -> Path:
    return make_services_repo(tmp_path / "bl01b-services")


@pytest.fixture
def deployment(tmp_path: Path, services: Path) -> Path:
    """A clone of a bare remote holding the recorded deployment values file."""
    return make_deployment_repo(tmp_path, services)


def changed_lines(repo: Path) -> list[str]:
    """The +/- lines of the last commit's diff."""
    diff = git(repo, "diff", "HEAD~1", "HEAD", "--", "apps/values.yaml")
    return [line for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def pushed(repo: Path) -> bool:
    return git(repo, "rev-parse", "HEAD") == git(repo, "rev-parse", "origin/main")


def test_deploy_changes_one_line_keeps_every_comment_and_pushes(deployment: Path):
    before = (deployment / "apps" / "values.yaml").read_text()
    [release] = json.loads(berth("deploy", "bl01b-mo-ioc-01", "2026.1.2", "--json",
                                 repo=deployment))
    after = (deployment / "apps" / "values.yaml").read_text()
    assert changed_lines(deployment) == [
        "-    enabled: false",
        "-    targetRevision: 2026.1.1   # keep in step with the stage firmware",
        "+    enabled: true",
        "+    targetRevision: 2026.1.2   # keep in step with the stage firmware",
    ]
    assert comments(after) == comments(before)
    assert git(deployment, "log", "-1", "--format=%s").strip() == "deploy bl01b-mo-ioc-01 2026.1.2"
    assert pushed(deployment)
    assert (release["version"], release["current"]) == ("2026.1.2", True)


def test_quoted_values_stay_quoted_and_latest_tag_is_the_default(deployment: Path):
    get_backend("argocd", deployment).deploy("bl01b-ea-ioc-01")
    assert changed_lines(deployment) == ['-    targetRevision: "2026.1.1"',
                                         '+    targetRevision: "2026.1.2"']


def test_stop_of_an_entry_without_settings_adds_one_line(deployment: Path):
    berth("stop", "bl01b-gateway", repo=deployment)
    assert changed_lines(deployment) == ["+    enabled: false"]
    lines = (deployment / "apps" / "values.yaml").read_text().splitlines()
    at = lines.index("  bl01b-gateway:")
    assert lines[at + 1] == "    enabled: false"
    assert lines[at + 2] == "  bl01b-opis:"
    assert pushed(deployment)


def test_start_delete_and_a_new_service(deployment: Path):
    argocd = get_backend("argocd", deployment)
    argocd.start("bl01b-mo-ioc-01")
    assert changed_lines(deployment) == ["-    enabled: false", "+    enabled: true"]
    argocd.delete("bl01b-va-ioc-01")
    assert changed_lines(deployment) == ["+    removed: true"]
    argocd.deploy("bl01b-va-ioc-01", "2026.1.1")  # back again: `removed` goes
    assert changed_lines(deployment) == [
        "-    targetRevision: main", "-    removed: true",
        "+    targetRevision: 2026.1.1", "+    enabled: true"]
    argocd.deploy("bl01b-new-ioc-01", "2026.1.1")
    assert changed_lines(deployment) == [
        "+  bl01b-new-ioc-01:", "+    targetRevision: 2026.1.1", "+    enabled: true"]
    assert len(git(deployment, "log", "--format=%H").split()) == 5


def test_nothing_changes_on_a_bad_request(deployment: Path):
    argocd = get_backend("argocd", deployment)
    head = git(deployment, "rev-parse", "HEAD")
    assert "'2099.1.1' is not a tag" in berth("deploy", "bl01b-ea-ioc-01", "2099.1.1",
                                              repo=deployment, code=2)
    assert "'bl01b-nope' is not in the deployment" in berth("stop", "bl01b-nope",
                                                            repo=deployment, code=2)
    argocd.stop("bl01b-mo-ioc-01")  # already stopped: no empty commit
    assert git(deployment, "rev-parse", "HEAD") == head
    assert git(deployment, "status", "--porcelain") == ""


def test_history_and_rollback_from_the_git_log(deployment: Path):
    argocd = get_backend("argocd", deployment)
    argocd.deploy("bl01b-ea-ioc-01", "2026.1.2")
    argocd.stop("bl01b-ea-ioc-01")  # not a new version
    history = argocd.history("bl01b-ea-ioc-01")
    assert [(r.version, r.current) for r in history] == [("2026.1.1", False),
                                                         ("2026.1.2", True)]
    assert history[1].note == "deploy bl01b-ea-ioc-01 2026.1.2"
    release = argocd.rollback("bl01b-ea-ioc-01")
    assert (release.version, release.note) == ("2026.1.1", "rollback")
    assert changed_lines(deployment) == [
        "-    enabled: false # the detector IOC", '-    targetRevision: "2026.1.2"',
        "+    enabled: true  # the detector IOC", '+    targetRevision: "2026.1.1"']


def test_up_and_down_are_one_commit_each(deployment: Path):
    argocd = get_backend("argocd", deployment)
    argocd.down()
    lines = changed_lines(deployment)
    assert lines.count("+    enabled: false") == 4  # the four entries without settings
    assert "-    enabled: true # the detector IOC" in lines
    released = argocd.up()
    assert {r.service for r in released} == {
        "bl01b-epics-pvcs", "bl01b-gateway", "bl01b-opis", "bl01b-ea-ioc-01",
        "bl01b-mo-ioc-01", "bl01b-va-ioc-01"}
    assert len(git(deployment, "log", "--format=%H").split()) == 3


def test_ps_reads_argocd_app_list(deployment: Path, fakes: FakeTools):
    fakes.answer("argocd", ["app", "list"], file="argocd-app-list.json")
    rows = {r["name"]: r for r in json.loads(berth("ps", "--json", repo=deployment,
                                                    env=fakes.env))}
    assert fakes.argvs() == [["argocd", "app", "list", "-o", "json", "-l", "ec_service=true",
                              "--app-namespace", NS]]
    assert (rows["bl01b-ea-ioc-01"]["state"], rows["bl01b-ea-ioc-01"]["version"]) == (
        "running", "2026.1.1")
    assert rows["bl01b-mo-ioc-01"]["state"] == "stopped"  # enabled: false in the deployment
    assert rows["bl01b-va-ioc-01"]["state"] == "crashed"
    assert rows["bl01b-va-ioc-01"]["reason"] == "ArgoCD: OutOfSync"
    assert rows["bl01b-gateway"]["state"] == "starting"
    assert rows["bl01b-opis"]["state"] == "not deployed"  # listed, no Application yet


def test_pod_verbs_go_to_kubectl_in_the_destination_namespace(deployment: Path, fakes):
    berth("restart", "bl01b-ea-ioc-01", repo=deployment, env=fakes.env)
    berth("logs", "bl01b-ea-ioc-01", "--previous", repo=deployment, env=fakes.env)
    assert fakes.argvs() == [
        ["kubectl", "rollout", "restart", "statefulset/bl01b-ea-ioc-01", "-n", NS],
        ["kubectl", "logs", "bl01b-ea-ioc-01-0", "-n", NS, "-c", "bl01b-ea-ioc-01", "--previous"]]


def test_deploy_local_is_refused(deployment: Path):
    with pytest.raises(BerthError, match="tagged versions only"):
        get_backend("argocd", deployment).deploy_local(deployment)


def test_not_a_deployment_repository(tmp_path: Path):
    with pytest.raises(BerthError, match="apps/values.yaml is missing"):
        get_backend("argocd", tmp_path).ps()


HELM = shutil.which("helm") or (Path(sys.executable).parent / "helm")


def test_new_deployment_makes_a_working_apps_chart(tmp_path: Path, services: Path):
    folder = tmp_path / "bl01b-deployment"
    result = run_berth("new", "deployment", folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "apps" / "templates" / "applications.yaml").is_file()
    assert yaml.safe_load((folder / "apps.yaml").read_text())["spec"]["source"]["path"] == "apps"
    with pytest.raises(BerthError, match="not empty"):
        new_deployment(folder)

    git(folder, "init", "-q", "-b", "main")
    values = folder / "apps" / "values.yaml"
    values.write_text(values.read_text().replace(
        "REPLACE_WITH_SERVICES_REPOSITORY_URL", str(services)))
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "new")
    argocd = get_backend("argocd", folder)
    argocd.deploy("bl01b-ea-ioc-01", "2026.1.1")
    argocd.deploy("bl01b-mo-ioc-01", "2026.1.2")
    argocd.stop("bl01b-mo-ioc-01")
    argocd.deploy("bl01b-va-ioc-01", "2026.1.2")
    argocd.delete("bl01b-va-ioc-01")
    text = values.read_text()
    assert "#     removed: true to remove it from the cluster" in text  # template comments kept
    assert yaml.safe_load(text)["services"] == {
        "bl01b-ea-ioc-01": {"targetRevision": "2026.1.1", "enabled": True},
        "bl01b-mo-ioc-01": {"targetRevision": "2026.1.2", "enabled": False},
        "bl01b-va-ioc-01": {"targetRevision": "2026.1.2", "enabled": True, "removed": True}}
    if not Path(HELM).exists():
        pytest.skip("no helm binary: run scripts/install-helm")
    out = subprocess.run([str(HELM), "template", "apps", str(folder / "apps"), "-n", "bl01b"],
                         capture_output=True, text=True, check=True).stdout
    apps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d}
    assert sorted(apps) == ["bl01b-ea-ioc-01", "bl01b-mo-ioc-01"]  # removed: no Application
    source = apps["bl01b-mo-ioc-01"]["spec"]["source"]
    assert (source["targetRevision"], source["path"]) == ("2026.1.2", "services/bl01b-mo-ioc-01")
    assert source["helm"]["valuesObject"]["global"]["enabled"] is False
    assert apps["bl01b-ea-ioc-01"]["spec"]["source"]["helm"]["valuesObject"]["global"][
        "enabled"] is True
    template = argocd.template("bl01b-ea-ioc-01", "2026.1.2")
    assert yaml.safe_load(template)["spec"]["source"]["targetRevision"] == "2026.1.2"
