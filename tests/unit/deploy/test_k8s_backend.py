"""The k8s backend drives helm and kubectl: checked against stand-in executables on PATH that log
their argv and answer with recorded JSON (tests/data/k8s/), so the exact commands and the parsing
of real answers are both asserted. A live cluster is only used when KUBECONFIG is set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from berth.deploy import get_backend
from conftest import run_berth
from fakebin.fakes import FakeTools, git, make_services_repo

NS = "bl01b"
IOC = "bl01b-ea-ioc-01"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_services_repo(tmp_path / "bl01b-services")


def berth(fakes: FakeTools, *args: str | Path, repo: Path | None = None,
          code: int = 0) -> str:
    """Run the real berth CLI with the k8s backend against the stand-ins; return stdout."""
    where = ["-r", str(repo)] if repo else []
    # options go right after the verb: everything after `--` belongs to `exec`'s command
    result = run_berth(args[0], "-b", "k8s", "-t", NS, *where, *args[1:], env=fakes.env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout if code == 0 else result.stderr


def ps(fakes: FakeTools, repo: Path | None = None) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(berth(fakes, "ps", "--json", repo=repo))}


def test_deploy_a_tag_installs_the_chart_with_the_tagged_config(fakes, repo):
    out = json.loads(berth(fakes, "deploy", IOC, "2026.1.1", "--json", repo=repo))

    [call] = fakes.calls()
    argv = call["argv"]
    chart, values_path = argv[3], argv[argv.index("--values") + 1]
    assert argv == ["upgrade", "--install", IOC, chart, "-n", NS, "--values", values_path]
    assert yaml.safe_load(call["charts"][chart])["appVersion"] == "2026.1.1"
    values = yaml.safe_load(call["files"][values_path])
    # the config of the tag, not of the working copy
    assert values["configFiles"] == {"ioc.yaml": "ioc_name: bl01b-ea-ioc-01\n# v1\n"}
    assert values["image"] == "ghcr.io/berth/softioc:1.0"
    assert values["global"]["domain"] == "bl01b"
    assert values["global"]["commit"] == git(repo, "rev-parse", "2026.1.1").strip()
    assert [(r["service"], r["version"], r["current"]) for r in out] == [
        (IOC, "2026.1.1", True)]
    assert not Path(chart).exists() and not Path(values_path).exists()  # temporary copies


def test_deploy_without_version_takes_the_latest_tag(fakes, repo):
    assert "2026.1.2" in berth(fakes, "deploy", IOC, repo=repo)
    [call] = fakes.calls()
    values = yaml.safe_load(next(iter(call["files"].values())))
    assert values["configFiles"]["ioc.yaml"].endswith("# v2\n")


def test_deploy_of_unknown_service_or_tag_runs_nothing(fakes, repo):
    err = berth(fakes, "deploy", "bl01b-ea-ioc-99", "2026.1.1", repo=repo, code=2)
    assert "unknown service 'bl01b-ea-ioc-99'" in err
    assert "did you mean bl01b-ea-ioc-01" in err
    err = berth(fakes, "deploy", IOC, "2099.1.1", repo=repo, code=2)
    assert "'2099.1.1' is not a tag" in err
    assert fakes.calls() == []


def test_deploy_local_uses_the_working_copy(fakes, repo):
    out = berth(fakes, "deploy-local", repo / "services" / IOC, "--json")
    [call] = fakes.calls()
    values = yaml.safe_load(next(iter(call["files"].values())))
    assert values["configFiles"]["ioc.yaml"].endswith("# working copy\n")
    assert [(r["version"], r["note"]) for r in json.loads(out)] == [
        ("local", "local working copy")]


def test_ps_reads_two_recorded_answers(fakes, repo):
    fakes.answer("kubectl", ["get"], file="kubectl-get-iocs.json")
    fakes.answer("helm", ["list"], file="helm-list.json")

    rows = ps(fakes, repo)

    assert fakes.argvs() == [
        ["kubectl", "get", "statefulsets,deployments,daemonsets,pods", "-n", NS, "-o", "json"],
        ["helm", "list", "-n", NS, "--all", "--max", "10000", "-o", "json"],
    ]
    running = rows["bl01b-ea-ioc-01"]
    assert (running["state"], running["version"], running["restarts"]) == (
        "running", "2026.1.2", 2)
    assert running["extra"] == {"node": "bl01b-ea-serv-01", "ready": True}
    started = datetime(2026, 1, 1, 10, 0, tzinfo=UTC).timestamp()
    assert abs(running["uptime"] - (time.time() - started)) < 60
    assert rows["bl01b-ea-ioc-02"]["state"] == "stopped"
    assert rows["bl01b-ea-ioc-02"]["version"] == "2026.1.1"
    crashing = rows["bl01b-mo-ioc-01"]
    assert (crashing["state"], crashing["restarts"]) == ("backoff", 7)
    assert crashing["reason"].startswith("CrashLoopBackOff")
    # a failed install has no StatefulSet
    assert rows["bl01b-di-cam-01"]["state"] == "not deployed"
    assert "failed" in rows["bl01b-di-cam-01"]["reason"]
    # the gateway is not an IOC; it is listed with its chart (no workloads in this answer)
    gateway = rows["bl01b-gateway"]
    assert (gateway["state"], gateway["version"]) == ("running", "2025.1.1")
    assert gateway["extra"] == {"workloads": {}, "chart": "epics-gateways-2025.1.1"}
    assert gateway["reason"] == "no workloads (only other resources)"
    table = berth(fakes, "ps")
    assert "backoff" in table and "bl01b-mo-ioc-01" in table


def test_ps_of_300_iocs_makes_the_same_two_calls(fakes, tmp_path):
    recorded_file = Path(__file__).parents[2] / "data/k8s/kubectl-get-iocs.json"
    recorded = json.loads(recorded_file.read_text())
    sts, pod = recorded["items"][0], recorded["items"][3]
    items, releases = [], []
    for i in range(300):
        name = f"bl01b-ea-ioc-{i:03d}"
        items.append(json.loads(json.dumps(sts).replace("bl01b-ea-ioc-01", name)))
        items.append(json.loads(json.dumps(pod).replace("bl01b-ea-ioc-01", name)))
        releases.append({"name": name, "namespace": NS, "revision": "1", "status": "deployed",
                         "updated": "2026-01-01 10:00:00 +0000 UTC",
                         "chart": "ioc-instance-1.0.0", "app_version": f"2026.1.{i}"})
    (tmp_path / "big.json").write_text(json.dumps({"kind": "List", "items": items}))
    (tmp_path / "big-helm.json").write_text(json.dumps(releases))
    fakes.answer("kubectl", ["get"], file=str(tmp_path / "big.json"))
    fakes.answer("helm", ["list"], file=str(tmp_path / "big-helm.json"))

    rows = ps(fakes)

    assert len(fakes.calls()) == 2
    assert len(rows) == 300
    assert all(row["state"] == "running" for row in rows.values())
    assert rows["bl01b-ea-ioc-299"]["version"] == "2026.1.299"


def test_stop_and_start_go_through_the_chart_values(fakes):
    fakes.answer("helm", ["history"], file="helm-history.json")
    berth(fakes, "stop", IOC)
    berth(fakes, "start", IOC)
    calls = fakes.calls()
    assert [c["argv"][:2] for c in calls] == [["history", IOC], ["upgrade", IOC]] * 2
    assert calls[0]["argv"] == ["history", IOC, "-n", NS, "-o", "json"]
    stop, start = calls[1], calls[3]
    chart = stop["argv"][2]
    assert stop["argv"] == ["upgrade", IOC, chart, "-n", NS, "--reuse-values",
                            "--set", "enabled=false"]
    assert start["argv"][-1] == "enabled=true"
    # the release keeps its version: the chart copy carries the deployed app version
    assert yaml.safe_load(stop["charts"][chart])["appVersion"] == "2026.1.2"


def test_operator_commands_argv(fakes):
    fakes.answer("kubectl", ["logs"], stdout="iocInit done\n")
    berth(fakes, "restart", IOC)
    assert berth(fakes, "logs", IOC, "-f", "--previous") == "iocInit done\n"
    berth(fakes, "attach", IOC)
    berth(fakes, "exec", IOC, "--", "caget", "X")
    berth(fakes, "exec", IOC)
    berth(fakes, "delete", "-y", IOC)
    assert fakes.argvs() == [
        ["kubectl", "rollout", "restart", f"statefulset/{IOC}", "-n", NS],
        ["kubectl", "logs", f"{IOC}-0", "-n", NS, "-c", IOC, "--follow", "--previous"],
        ["kubectl", "attach", f"{IOC}-0", "-n", NS, "-c", IOC, "-i"],
        ["kubectl", "exec", f"{IOC}-0", "-n", NS, "-c", IOC, "-i", "--", "caget", "X"],
        ["kubectl", "exec", f"{IOC}-0", "-n", NS, "-c", IOC, "-i", "--", "bash"],
        ["helm", "uninstall", IOC, "-n", NS],
    ]


def test_exit_code_of_an_interactive_command_is_returned(fakes):
    fakes.answer("kubectl", ["exec"], exit=3)
    berth(fakes, "exec", IOC, "--", "false", code=3)


def test_history_parses_helm_history(fakes):
    fakes.answer("helm", ["history"], file="helm-history.json")
    history = json.loads(berth(fakes, "history", IOC, "--json"))
    assert [(r["version"], r["deployed_at"], r["current"]) for r in history] == [
        ("2025.12.1", "2025-12-01T09:00:00Z", False),
        ("2026.1.1", "2025-12-15T10:00:00Z", False),
        ("2026.1.1", "2025-12-16T11:00:00Z", False),
        ("2026.1.2", "2026-01-01T09:59:40Z", True),
    ]


def test_rollback_maps_a_version_to_its_latest_revision(fakes):
    fakes.answer("helm", ["history"], file="helm-history.json")
    assert "2026.1.1" in berth(fakes, "rollback", IOC, "2026.1.1")
    assert "2026.1.1" in berth(fakes, "rollback", IOC)  # default: the version before current
    assert "rollback to revision 1" in berth(fakes, "rollback", IOC, "2025.12.1")
    rollbacks = [argv for argv in fakes.argvs() if argv[1] == "rollback"]
    assert rollbacks == [["helm", "rollback", IOC, "3", "-n", NS],
                         ["helm", "rollback", IOC, "3", "-n", NS],
                         ["helm", "rollback", IOC, "1", "-n", NS]]
    err = berth(fakes, "rollback", IOC, "1999.1.1", code=2)
    assert "no earlier revision" in err and "version 1999.1.1" in err


def test_up_deploys_each_ioc_at_its_latest_tag_and_down_uninstalls_ioc_releases(fakes, repo):
    fakes.answer("helm", ["list"], file="helm-list.json")
    released = json.loads(berth(fakes, "up", "--json", repo=repo))
    assert {(r["service"], r["version"]) for r in released} == {
        ("bl01b-ea-ioc-01", "2026.1.2"), ("bl01b-mo-ioc-01", "2026.1.1")}
    berth(fakes, "down", "-y", repo=repo)
    argvs = fakes.argvs()
    assert [a[:4] for a in argvs[:2]] == [["helm", "upgrade", "--install", "bl01b-ea-ioc-01"],
                                          ["helm", "upgrade", "--install", "bl01b-mo-ioc-01"]]
    assert argvs[-1] == ["helm", "uninstall", "bl01b-ea-ioc-01", "bl01b-ea-ioc-02",
                         "bl01b-mo-ioc-01", "bl01b-di-cam-01", "-n", NS]


def test_tool_errors_become_berth_errors(fakes, tmp_path):
    fakes.answer("helm", ["uninstall"], stderr="Error: uninstall: Release not loaded: "
                 "bl01b-ea-ioc-01: release: not found\n", exit=1)
    err = berth(fakes, "delete", "-y", IOC, code=2)
    assert "helm uninstall bl01b-ea-ioc-01 -n bl01b' failed (exit 1)" in err
    assert "release: not found" in err
    fakes.answer("kubectl", ["get"], stdout="this is not json")
    assert "did not answer JSON" in berth(fakes, "ps", code=2)
    (tmp_path / "empty").mkdir()
    result = run_berth("restart", IOC, "-b", "k8s", "-t", NS,
                       env={**fakes.env, "PATH": str(tmp_path / "empty")})
    assert result.returncode == 2
    assert "'kubectl' was not found" in result.stderr and "Traceback" not in result.stderr


needs_helm = pytest.mark.skipif(
    not (shutil.which("helm") or (Path(sys.executable).parent / "helm").exists()),
    reason="no helm binary: run scripts/install-helm")


@needs_helm
def test_template_renders_with_real_helm(repo):
    text = get_backend("k8s", repo, NS).template(IOC, "2026.1.1")
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    assert docs["ConfigMap"]["data"]["ioc.yaml"].endswith("# v1\n")
    assert docs["StatefulSet"]["metadata"]["annotations"]["berth/version"] == "2026.1.1"
    working = run_berth("template", IOC, "-b", "k8s", "-r", repo).stdout
    assert "# working copy" in working


@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no cluster")
def test_live_cluster_deploy_ps_stop_delete(repo):
    namespace = os.environ.get("BERTH_TEST_NAMESPACE", "berth-test")
    k8s = get_backend("k8s", repo, namespace)
    subprocess.run(["kubectl", "create", "namespace", namespace], capture_output=True)
    try:
        k8s.deploy(IOC, "2026.1.2")
        row = next(r for r in k8s.ps() if r.name == IOC)
        assert row.version == "2026.1.2"
        k8s.stop(IOC)
        assert next(r for r in k8s.ps() if r.name == IOC).state == "stopped"
    finally:
        k8s.delete(IOC)


def test_bad_config_folder_is_reported_before_any_tool_runs(fakes, repo):
    (repo / "services" / IOC / "config" / "db").mkdir()
    err = berth(fakes, "deploy-local", repo / "services" / IOC, code=2)
    assert f"{repo / 'services' / IOC / 'config' / 'db'}: sub-folders of the config folder" in err
    assert fakes.calls() == []


def test_a_service_missing_at_the_tag_is_named(fakes, repo):
    new = repo / "services" / "bl01b-di-new-01"
    (new / "config").mkdir(parents=True)
    (new / "values.yaml").write_text("ioc-instance:\n  image: x\n")
    err = berth(fakes, "deploy", "bl01b-di-new-01", "2026.1.1", repo=repo, code=2)
    assert "service 'bl01b-di-new-01' does not exist at version 2026.1.1" in err
    assert fakes.calls() == []
