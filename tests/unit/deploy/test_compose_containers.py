"""The compose backend with real containers: the soft-IOC image, real CA/PVA clients.

Needs a container engine (scripts/install-engine); skips with the reason otherwise. The session
builds the soft-IOC image once (nothing to do when it is up to date with the sources).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_local import SERVER_LOOPBACK, add_global_env

from berth.tools.engine import Engine
from conftest import run_berth
from containers import (  # noqa: F401 - fixtures too
    berth_env,
    ca_get,
    copy_example,
    engine_fixture,
    git,
    inspect,
    last_lines,
    loopback_epics_fixture,
    pva_get,
    remove_containers,
    softioc_image_fixture,
    unique_prefix,
    wait_until,
)

# the first test also waits for the session's image build (debootstrap: 1-3 minutes)
pytestmark = pytest.mark.timeout(900)

def berth(state: Path, *args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_berth(*args, env=berth_env(state), timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def ps_rows(state: Path, repo: Path) -> dict[str, dict[str, object]]:
    import json

    rows = json.loads(ok(berth(state, "ps", "-b", "compose", "-r", repo, "--json")))
    return {row["name"]: row for row in rows}


def stcmd_repo(root: Path, name: str, prefix: str, value: str, image: str) -> Path:
    """A Helm-layout services repository with one IOC started from a hand-written st.cmd."""
    folder = root / "services" / name
    (folder / "config").mkdir(parents=True, exist_ok=True)
    (root / "services" / "values.yaml").write_text("global:\n  location: lab\n")
    add_global_env(root, SERVER_LOOPBACK)  # beacons stay on loopback
    (folder / "values.yaml").write_text(
        f"ioc-instance:\n  image: {image}\n  env:\n    - name: IOC_PREFIX\n"
        f"      value: {prefix}\n")
    (folder / "config" / "records.db").write_text(
        'record(ao, "$(P)VALUE") {\n  field(VAL, "$(V)")\n}\n'
        'record(calc, "$(P)TWICE") {\n  field(INPA, "$(P)VALUE CP")\n  field(CALC, "A*2")\n}\n')
    (folder / "config" / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        f'dbLoadRecords records.db "P={prefix}:,V={value}"\niocInit\n')
    return root


@pytest.fixture
def cleanup(engine: Engine) -> Iterator[list[Path]]:
    """Repositories whose containers are removed after the test, whatever happened."""
    repos: list[Path] = []
    yield repos
    for repo in repos:
        names = engine.container_names(f"berth.repo={repo.resolve()}")
        remove_containers(engine, names)


@pytest.fixture
def one_ioc(tmp_path: Path, softioc_image: str, cleanup: list[Path]) -> tuple[Path, str, str]:
    """(repo, instance name, PV prefix) of a git repository tagged v1 (VALUE 1.5) and v2 (2.5)."""
    prefix = unique_prefix()
    name = f"{prefix.lower()}-ioc-01"
    repo = stcmd_repo(tmp_path / "repo", name, prefix, "1.5", image=softioc_image)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    stcmd_repo(repo, name, prefix, "2.5", image=softioc_image)
    git(repo, "commit", "-qam", "v2")
    git(repo, "tag", "v2")
    cleanup.append(repo)
    return repo, name, prefix


def test_deploy_kill_stop_start_restart_logs_exec(one_ioc: tuple[Path, str, str],
                                                  engine: Engine, tmp_path: Path) -> None:
    repo, name, prefix = one_ioc
    state = tmp_path / "state"
    ok(berth(state, "deploy", name, "v1", "-b", "compose", "-r", repo))
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="CA from the container")
    assert wait_until(lambda: pva_get(f"{prefix}:TWICE") == 3.0, what="PVA from the container")
    row = ps_rows(state, repo)[name]
    assert row["state"] == "running" and row["version"] == "v1" and row["restarts"] == 0
    info = inspect(engine, name)
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["Config"]["Labels"]["berth.version"] == "v1"

    # the IOC process dies: the engine starts it again, and ps counts the restart
    os.kill(int(info["State"]["Pid"]), signal.SIGKILL)
    wait_until(lambda: ps_rows(state, repo)[name]["restarts"] == 1, what="a restart")
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="CA after the restart")

    ok(berth(state, "stop", name, "-b", "compose", "-r", repo))
    assert ps_rows(state, repo)[name]["state"] == "stopped"
    with pytest.raises(TimeoutError):
        ca_get(f"{prefix}:VALUE", timeout=1.0)

    ok(berth(state, "start", name, "-b", "compose", "-r", repo))
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="CA after start")
    pid_before = inspect(engine, name)["State"]["Pid"]
    ok(berth(state, "restart", name, "-b", "compose", "-r", repo))
    row = ps_rows(state, repo)[name]
    assert row["state"] == "running" and row["pid"] != pid_before
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="CA after restart")

    logs = ok(berth(state, "logs", name, "-b", "compose", "-r", repo))
    assert "iocRun: All initialization complete" in logs
    out = ok(berth(state, "exec", name, "-b", "compose", "-r", repo, "--", "printenv",
                   "IOC_PREFIX"))
    assert out.strip() == prefix
    failed = berth(state, "exec", name, "-b", "compose", "-r", repo, "--", "sh", "-c", "exit 3")
    assert failed.returncode == 3

    ok(berth(state, "delete", "-y", name, "-b", "compose", "-r", repo))
    assert inspect(engine, name) == {}
    assert ps_rows(state, repo)[name]["state"] == "not deployed"


def test_versions_history_and_rollback(one_ioc: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, name, prefix = one_ioc
    state = tmp_path / "state"
    ok(berth(state, "deploy", name, "v1", "-b", "compose", "-r", repo))
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="v1")
    ok(berth(state, "deploy", name, "-b", "compose", "-r", repo))  # latest tag: v2
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 2.5, what="v2")
    assert ps_rows(state, repo)[name]["version"] == "v2"
    ok(berth(state, "rollback", name, "-b", "compose", "-r", repo))
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="rolled back to v1")
    import json

    history = json.loads(ok(berth(state, "history", name, "-b", "compose", "-r", repo,
                                  "--json")))
    assert [h["version"] for h in history] == ["v1", "v2", "v1"]
    assert [h["current"] for h in history] == [False, False, True]
    assert history[-1]["note"] == "rollback from v2"
    # the template of a version shows the release folder that version runs from
    text = ok(berth(state, "template", name, "v2", "-b", "compose", "-r", repo))
    doc = yaml.safe_load(text)
    config = next(v for v in doc["services"][name]["volumes"]
                  if v["target"] == "/epics/ioc/config")
    assert config["source"] == str(state / "compose" / "releases" / name / "v2" / "services" /
                                   name / "config")


def test_attach_reaches_the_ioc_shell(one_ioc: tuple[Path, str, str], tmp_path: Path,
                                      engine: Engine) -> None:
    repo, name, prefix = one_ioc
    state = tmp_path / "state"
    ok(berth(state, "deploy", name, "v1", "-b", "compose", "-r", repo))
    assert wait_until(lambda: ca_get(f"{prefix}:VALUE") == 1.5, what="the IOC")
    pid, fd = pty.fork()
    if pid == 0:  # the child: berth attach on a terminal, as a user runs it
        os.environ.update(berth_env(state))
        os.execv(sys.executable, [sys.executable, "-m", "berth", "attach", name, "-b",
                                  "compose", "-r", str(repo)])
    seen = b""
    try:
        deadline = time.monotonic() + 30
        sent = False
        while time.monotonic() < deadline and f"{prefix}:TWICE".encode() not in seen:
            if not sent and b"attached" in seen:
                time.sleep(0.5)
                os.write(fd, b"dbl\r")
                sent = True
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        assert f"{prefix}:TWICE".encode() in seen, seen[-500:]
        os.write(fd, b"\x10")  # Ctrl-P Ctrl-Q: detach, the IOC keeps running
        time.sleep(0.2)
        os.write(fd, b"\x11")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and pid:
            if os.waitpid(pid, os.WNOHANG)[0]:
                pid = 0
            elif select.select([fd], [], [], 0.2)[0]:
                try:
                    os.read(fd, 4096)  # keep the terminal drained
                except OSError:
                    time.sleep(0.2)
        assert pid == 0, "berth attach did not end after Ctrl-P Ctrl-Q"
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert inspect(engine, name)["State"]["Status"] == "running"


def test_missing_image_is_a_clear_error(tmp_path: Path, engine: Engine,
                                        cleanup: list[Path]) -> None:
    prefix = unique_prefix()
    name = f"{prefix.lower()}-ioc-01"
    repo = stcmd_repo(tmp_path / "repo", name, prefix, "1",
                      image="registry.invalid/nobody/no-such-ioc:1.0")
    cleanup.append(repo)
    result = berth(tmp_path / "state", "deploy", name, "-b", "compose", "-r", repo)
    assert result.returncode == 2
    assert "registry.invalid/nobody/no-such-ioc:1.0" in result.stderr
    assert "cannot be pulled" in result.stderr
    assert "Traceback" not in result.stderr
    assert inspect(engine, name) == {}


def _container_logs(engine: Engine, names: list[str]) -> str:
    """The end of each container's log, for a failure message."""
    parts = []
    for name in names:
        logs = subprocess.run(engine.argv("logs", name), capture_output=True, text=True)
        parts.append(f"--- {name}:\n{last_lines(logs.stdout + logs.stderr, 10)}")
    return "\n".join(parts)


def _wait_showing_logs(engine: Engine, names: list[str], check: object, what: str) -> None:
    try:
        wait_until(check, timeout=30, what=what)  # type: ignore[arg-type]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_container_logs(engine, names)}") from None


def test_example_beamline_up_serves_ca_and_pva(tmp_path: Path, softioc_image: str,
                                               engine: Engine, cleanup: list[Path]) -> None:
    prefix = unique_prefix()
    repo = copy_example(tmp_path / "bl01b", prefix)
    cleanup.append(repo)
    state = tmp_path / "state"
    started = time.monotonic()
    ok(berth(state, "up", "-b", "compose", "-r", repo))
    rows = ps_rows(state, repo)
    names = sorted(rows)
    assert len(names) == 7 and all(r["state"] in ("running", "starting") for r in rows.values())
    sum_ioc = f"{prefix}-BL01B-EA-SUM-01"
    _wait_showing_logs(engine, names, lambda: ca_get(f"{sum_ioc}:A") == pytest.approx(2.54),
                  "CA from the example beamline")
    print(f"up to first CA answer: {time.monotonic() - started:.1f} s")
    assert wait_until(lambda: pva_get(f"{sum_ioc}:SUM") == pytest.approx(5.15), what="PVA sum")
    position = wait_until(lambda: pva_get(f"{prefix}-BL01B-EA-PVA-01:POSITION"),
                          what="PVA group")
    assert "x" in position and "y" in position
    # the Python soft IOC, on the softioc the image holds (no pip there)
    py_ioc = f"{prefix}-BL01B-EA-PY-01"
    _wait_showing_logs(engine, names, lambda: ca_get(f"{py_ioc}:SETPOINT") == 1.0,
                       "CA from the Python soft IOC")
    ok(berth(state, "down", "-y", "-b", "compose", "-r", repo))
    assert engine.container_names(f"berth.repo={repo.resolve()}") == []
    assert all(r["state"] == "stopped" for r in ps_rows(state, repo).values())


def compose_layout_copy(helm_repo: Path, dest: Path, names: list[str]) -> Path:
    """The example beamline rewritten in the compose layout: include/ioc.yml is the base every
    IOC `extends`, each services/<name>/compose.yml mounts its config with `configs:`."""
    (dest / "include").mkdir(parents=True)
    (dest / "include" / "ioc.yml").write_text(yaml.safe_dump({"services": {"linux_ioc": {
        "labels": {"is_ioc": True, "ioc_group": "bl01b"},
        "environment": {"BEAMLINE": "bl01b", **SERVER_LOOPBACK},  # (beacons stay on loopback)
        "tty": True, "stdin_open": True, "restart": "unless-stopped",
        "network_mode": "host"}}}))
    includes = []
    for name in names:
        source = helm_repo / "services" / name
        values = yaml.safe_load((source / "values.yaml").read_text())["ioc-instance"]
        folder = dest / "services" / name
        folder.mkdir(parents=True)
        subprocess.run(["cp", "-r", str(source / "config"), str(folder / "config")], check=True)
        env = {item["name"]: item["value"] for item in values["env"]}
        (folder / "compose.yml").write_text(yaml.safe_dump({
            "services": {name: {
                "extends": {"service": "linux_ioc", "file": "../../include/ioc.yml"},
                "image": values["image"], "labels": {"version": "0.1.0"},
                "environment": {"IOC_NAME": name, **env},
                "configs": [{"source": f"{name}_config", "target": "epics/ioc/config"}],
                "profiles": ["test"]}},
            "configs": {f"{name}_config": {"file": "./config"}}}))
        includes.append(f"services/{name}/compose.yml")
    (dest / "compose.yaml").write_text(yaml.safe_dump({"include": includes}))
    return dest


def test_compose_layout_copy_serves_pvs(tmp_path: Path, softioc_image: str, engine: Engine,
                                        cleanup: list[Path]) -> None:
    prefix = unique_prefix()
    helm = copy_example(tmp_path / "bl01b", prefix)
    names = ["bl01b-ea-sum-01", "bl01b-ea-cnt-01"]
    repo = compose_layout_copy(helm, tmp_path / "bl01b-compose", names)
    cleanup.append(repo)
    state = tmp_path / "state"
    # without the profile nothing is active, as with docker compose
    ok(berth(state, "up", "-b", "compose", "-r", repo))
    assert engine.container_names(f"berth.repo={repo.resolve()}") == []
    ok(berth(state, "up", "-b", "compose", "-r", repo, "-t", "test"))
    rows = ps_rows(state, repo)
    assert set(names) <= set(rows)
    info = inspect(engine, "bl01b-ea-sum-01")
    assert info["Config"]["Labels"]["version"] == "0.1.0"
    assert "BEAMLINE=bl01b" in info["Config"]["Env"]  # from the extended base service
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/epics/ioc/config"]["RW"] is False
    _wait_showing_logs(engine, names, lambda: ca_get(f"{prefix}-BL01B-EA-SUM-01:A") ==
                  pytest.approx(2.54), "CA from the compose layout")
    assert wait_until(lambda: pva_get(f"{prefix}-BL01B-EA-SUM-01:B") == pytest.approx(2.61),
                      what="PVA from the compose layout")
    ok(berth(state, "down", "-y", "-b", "compose", "-r", repo, "-t", "test"))
    assert engine.container_names(f"berth.repo={repo.resolve()}") == []
