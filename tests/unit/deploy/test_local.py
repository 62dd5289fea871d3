"""The local backend end to end: the example beamline under a real supervisord, real `berth run`
IOCs, real CA/PVA clients. One `up` is shared by the tests of this module (they run in file
order: read-only checks first, then the ones that kill, stop and redeploy)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, run_berth

EXAMPLE = REPO_ROOT / "examples" / "bl01b"

DEADLINE = 30.0
LOOPBACK = {
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
}
# The IOCs' own network settings, given by the repository (berth never passes the caller's on).
SERVER_LOOPBACK = {
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
}
IOC_READY = "iocRun: All initialization complete"
MARKER = "### berth:"  # opens each run in an instance's log
FOREIGN_IMAGE = "ghcr.io/epics-containers/ioc-adaravis-runtime:2024.11.1"
# Channel Access PVs of each example instance (after the prefix), one or more per shape.
CA_PVS = {
    "bl01b-mo-sim-01": ["MO-SIM-01:X", "MO-SIM-01:X:RBV", "MO-SIM-01:Y:DMOV"],
    "bl01b-ea-cnt-01": ["EA-CNT-01:COUNT1", "EA-CNT-01:COUNT2", "EA-CNT-01:ENABLE"],
    "bl01b-di-wave-01": ["DI-WAVE-01:SIGNAL", "DI-WAVE-01:TRACE", "DI-WAVE-01:AXIS"],
    "bl01b-ea-sum-01": ["EA-SUM-01:SUM", "EA-SUM-01:MEAN"],
    "bl01b-va-alarm-01": ["VA-ALARM-01:P1", "VA-ALARM-01:INTERLOCK", "VA-ALARM-01:LIMIT"],
    "bl01b-ea-pva-01": ["EA-PVA-01:X", "EA-PVA-01:R"],
    "bl01b-ea-py-01": ["EA-PY-01:COUNT", "EA-PY-01:SETPOINT"],  # a Python soft IOC
}


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def copy_example(dest: Path, tag: str) -> Path:
    """The example with PV prefixes unique to this test run (BL01B- → BL01B<tag>-), so parallel
    runs on this machine never answer for each other, and loopback-only server settings in its
    shared values (`global.env`)."""
    for path in sorted(EXAMPLE.rglob("*")):
        target = dest / path.relative_to(EXAMPLE)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text().replace("BL01B-", f"BL01B{tag}-"))
    add_global_env(dest, SERVER_LOOPBACK)
    return dest


def add_global_env(repo: Path, env: dict[str, str]) -> None:
    """Add `env` to `global.env` of the repository's shared values (unless already set)."""
    shared = repo / "services" / "values.yaml"
    text = shared.read_text()
    missing = {k: v for k, v in env.items() if k not in text}
    if not missing:
        return
    assert "\n  env:" not in text, "extend the existing global.env list by hand"
    items = "".join(f"    - name: {k}\n      value: \"{v}\"\n" for k, v in missing.items())
    shared.write_text(text.rstrip("\n") + "\n  env:\n" + items)


def make_history(repo: Path) -> None:
    """v1: the example; v2: the sum IOC starts with A=3.25 and has an extra file."""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "test")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    ioc = repo / "services" / "bl01b-ea-sum-01" / "config"
    (ioc / "ioc.yaml").write_text((ioc / "ioc.yaml").read_text().replace('"2.54"', '"3.25"'))
    (ioc / "NOTES.md").write_text("added in v2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "v2")


@dataclass
class Beamline:
    repo: Path
    state: Path
    tag: str
    env: dict[str, str]

    @classmethod
    def of_example(cls, root: Path, state: Path | None = None) -> Beamline:
        """The example copied to `root`/bl01b with PV prefixes unique to this run, its state
        folder (`root`/state unless given) and loopback-only EPICS settings, for its commands
        and for this process's CA/PVA clients."""
        os.environ.update(LOOPBACK)
        tag = uuid.uuid4().hex[:5].upper()
        repo = copy_example(root / "bl01b", tag)
        state = state or root / "state"
        return cls(repo, state, tag, {**LOOPBACK, "BERTH_STATE_DIR": str(state),
                                      "BERTH_REPO": str(repo)})

    def berth(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run_berth(*args, env=self.env, **kw)

    def ok(self, *args: str) -> str:
        result = self.berth(*args)
        assert result.returncode == 0, f"berth {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def ps(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: row for row in json.loads(self.ok("ps", "--json"))}

    def pv(self, suffix: str) -> str:
        return f"BL01B{self.tag}-{suffix}"


def ca_get(pv: str, timeout: float = 2.0) -> Any:
    from caproto.sync.client import read

    return read(pv, timeout=timeout, repeater=False).data


def ca_value(pv: str) -> Any:
    return wait_until(lambda: list(ca_get(pv)), f"CA {pv}")


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    from berth.deploy.local import backend as local

    line = Beamline.of_example(tmp_path_factory.mktemp("local"))
    repo, state = line.repo, line.state
    # An instance whose Generic IOC cannot run here.
    cam = repo / "services" / "bl01b-di-cam-01"
    (cam / "config").mkdir(parents=True)
    (cam / "values.yaml").write_text(f"ioc-instance:\n  image: {FOREIGN_IMAGE}\n")
    (cam / "config" / "ioc.yaml").write_text("ioc_name: cam\nentities: []\n")
    make_history(repo)
    line.env.pop("BERTH_IOC_MAP", None)
    try:
        line.ok("up")
        yield line
    finally:
        local.shutdown(state)


def test_up_runs_every_instance_and_every_pv_answers(beamline: Beamline) -> None:
    rows = wait_until(
        lambda: (r := beamline.ps()) and all(r[n]["state"] == "running" for n in CA_PVS) and r,
        "every instance running")
    for name in CA_PVS:  # the latest tag at which the instance changed
        assert rows[name]["version"] == ("v2" if name == "bl01b-ea-sum-01" else "v1")
    cam = rows["bl01b-di-cam-01"]
    assert cam["state"] == "not runnable here"
    assert FOREIGN_IMAGE in cam["reason"]
    for suffixes in CA_PVS.values():
        for suffix in suffixes:
            ca_value(beamline.pv(suffix))
    assert ca_value(beamline.pv("EA-SUM-01:SUM"))[0] == pytest.approx(3.25 + 2.61)
    assert len(ca_value(beamline.pv("DI-WAVE-01:AXIS"))) == 10

    from p4p.client.thread import Context

    with Context("pva") as ctx:
        group = wait_until(lambda: ctx.get(beamline.pv("EA-PVA-01:POSITION"), timeout=2),
                           "the PVA group")
        assert (group.x.value, group.y.value, group.r.value) == (3.0, 4.0, 5.0)

    table = beamline.ok("ps")
    assert "not runnable here" in table and "bl01b-ea-sum-01" in table


def test_up_again_changes_nothing(beamline: Beamline) -> None:
    before = beamline.ps()
    beamline.ok("up")
    after = beamline.ps()
    for name in CA_PVS:
        assert after[name]["pid"] == before[name]["pid"]


def test_ps_json_fields(beamline: Beamline) -> None:
    rows = beamline.ps()
    for name in CA_PVS:
        row = rows[name]
        assert {"name", "state", "version", "pid", "uptime", "restarts"} <= set(row)
        assert row["state"] == "running"
        os.kill(row["pid"], 0)  # a live process
        assert row["uptime"] >= 0
        assert row["restarts"] == 0


def test_logs_attach_exec(beamline: Beamline, tmp_path: Path) -> None:
    logs = beamline.ok("logs", "bl01b-ea-sum-01")
    assert "iocInit" in logs
    assert "### berth:" not in logs  # run markers are not shown

    # The IOC shell through its console socket: type a command, read the answer, detach (^]).
    sum_pv = beamline.pv("EA-SUM-01:SUM")
    screen = tmp_path / "attach.txt"
    with open(screen, "w") as sink:
        shell = subprocess.Popen([sys.executable, "-m", "berth", "attach", "bl01b-ea-sum-01"],
                                 env={**os.environ, **beamline.env}, stdin=subprocess.PIPE,
                                 stdout=sink)
    try:
        assert shell.stdin is not None
        shell.stdin.write(f"dbgf {sum_pv}\n".encode())
        shell.stdin.flush()
        wait_until(lambda: "5.86" in screen.read_text(), "the IOC's answer")
        shell.stdin.write(b"\x1d")  # Ctrl-] detaches
        shell.stdin.flush()
        assert shell.wait(timeout=30) == 0
    finally:
        shell.kill()
    assert beamline.ps()["bl01b-ea-sum-01"]["state"] == "running"  # detaching left it running

    out = beamline.ok("exec", "bl01b-ea-sum-01", "--", "sh", "-c", "echo $IOC_PREFIX; pwd")
    prefix, cwd = out.split()
    assert prefix == f"BL01B{beamline.tag}-EA-SUM-01"
    assert Path(cwd) == beamline.state / "instances" / "bl01b-ea-sum-01" / "runtime"
    failed = beamline.berth("exec", "bl01b-ea-sum-01", "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7


def test_killed_ioc_answers_again_and_counts_a_restart(beamline: Beamline) -> None:
    name = "bl01b-ea-cnt-01"
    old = beamline.ps()[name]
    os.kill(old["pid"], signal.SIGKILL)
    row = wait_until(lambda: (r := beamline.ps()[name])["state"] == "running"
                     and r["pid"] != old["pid"] and r, "the IOC restarted")
    assert row["restarts"] == old["restarts"] + 1
    ca_value(beamline.pv("EA-CNT-01:COUNT1"))
    previous = beamline.ok("logs", "--previous", name)
    assert "iocInit" in previous


def test_logs_follow_shows_the_next_run(beamline: Beamline, tmp_path: Path) -> None:
    name = "bl01b-di-wave-01"
    out = tmp_path / "follow.txt"
    with open(out, "w") as sink:
        follower = subprocess.Popen([sys.executable, "-m", "berth", "logs", "-f", name],
                                    env={**os.environ, **beamline.env}, stdout=sink)
    try:
        wait_until(lambda: out.read_text().count(IOC_READY) == 1, "the current run")
        beamline.ok("restart", name)
        wait_until(lambda: out.read_text().count(IOC_READY) == 2, "the next run, followed")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert beamline.ps()[name]["restarts"] == 0  # restarted on purpose: not a crash


def test_killed_supervisor_restores_desired_state(beamline: Beamline) -> None:
    beamline.ok("stop", "bl01b-ea-cnt-01")
    assert beamline.ps()["bl01b-ea-cnt-01"]["state"] == "stopped"
    pid = int((beamline.state / "supervisord.pid").read_text())
    old_pids = [r["pid"] for r in beamline.ps().values() if r["pid"]]
    os.kill(pid, signal.SIGKILL)
    # Its IOCs stop with it (they must not keep serving unsupervised)...
    wait_until(lambda: not any(_alive(p) for p in old_pids), "old IOCs gone")
    # ...`ps` only reads: it shows them stopped and starts nothing...
    rows = beamline.ps()
    assert all(rows[n]["state"] == "stopped" and rows[n]["pid"] is None for n in CA_PVS)
    assert "supervisor is not running" in rows["bl01b-ea-sum-01"]["reason"]
    assert supervisors(beamline.state) == []
    # ...and the next command that changes something starts supervisord, which restores every
    # instance as desired.
    beamline.ok("restart", "bl01b-ea-sum-01")
    rows = wait_until(
        lambda: (r := beamline.ps()) and all(r[n]["state"] == "running" for n in CA_PVS
                                             if n != "bl01b-ea-cnt-01") and r,
        "instances restored")
    assert int((beamline.state / "supervisord.pid").read_text()) != pid
    assert rows["bl01b-ea-cnt-01"]["state"] == "stopped"  # stop survived the restart
    ca_value(beamline.pv("EA-SUM-01:SUM"))
    with pytest.raises(TimeoutError):
        ca_get(beamline.pv("EA-CNT-01:COUNT1"), timeout=1.5)
    beamline.ok("start", "bl01b-ea-cnt-01")
    ca_value(beamline.pv("EA-CNT-01:COUNT1"))


def supervisors(state: Path) -> list[int]:
    """PIDs of the supervisord processes running for a state dir."""
    conf = str(state / "supervisord.conf").encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if conf in argv and any(b"supervisord" in a for a in argv) and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return False
    return fields[0] != "Z"  # a zombie no longer runs


def test_deploy_rollback_restores_files_and_keeps_data(beamline: Beamline) -> None:
    name = "bl01b-ea-sum-01"
    a_pv = beamline.pv("EA-SUM-01:A")
    data = beamline.state / "instances" / name / "data"
    (data / "autosave.sav").write_text("kept\n")

    beamline.ok("deploy", name, "v1")
    wait_until(lambda: ca_get(a_pv)[0] == pytest.approx(2.54), "v1 running")
    beamline.ok("deploy", name, "v2")
    wait_until(lambda: ca_get(a_pv)[0] == pytest.approx(3.25), "v2 running")
    assert beamline.ps()[name]["version"] == "v2"

    beamline.ok("rollback", name)
    wait_until(lambda: ca_get(a_pv)[0] == pytest.approx(2.54), "v1 again")
    row = beamline.ps()[name]
    assert row["version"] == "v1"
    release = Path(row["extra"]["release"])
    assert _tree(release / "services" / name) == _git_tree(beamline.repo, "v1",
                                                            f"services/{name}")
    assert not (release / "services" / name / "config" / "NOTES.md").exists()
    assert (data / "autosave.sav").read_text() == "kept\n"

    history = json.loads(beamline.ok("history", name, "--json"))
    assert [h["version"] for h in history] == ["v2", "v1", "v2", "v1"]
    assert history[-1]["current"] and "rollback" in history[-1]["note"]
    assert all(h["deployed_at"].endswith("Z") for h in history)


def test_up_keeps_a_rolled_back_version(beamline: Beamline) -> None:
    """Desired state is sacred: after `rollback`, neither `up` nor `up --latest` moves the
    instance back to v2 (only an explicit `deploy` does)."""
    name = "bl01b-ea-sum-01"
    a_pv = beamline.pv("EA-SUM-01:A")
    before = beamline.ps()[name]
    assert before["version"] == "v1" and before["extra"]["pinned"]
    ups = {r["service"]: r for r in json.loads(beamline.ok("up", "--json"))}
    assert ups[name]["version"] == "v1"
    latest = beamline.berth("up", "--latest", "-y", "--json")
    assert latest.returncode == 0, latest.stderr
    assert "pinned by a rollback" in {r["service"]: r for r in
                                      json.loads(latest.stdout)}[name]["note"]
    after = beamline.ps()[name]
    assert (after["version"], after["pid"]) == ("v1", before["pid"])  # not even restarted
    assert ca_get(a_pv)[0] == pytest.approx(2.54)
    history = json.loads(beamline.ok("history", name, "--json"))
    assert [h["version"] for h in history] == ["v2", "v1", "v2", "v1"]


def _run_log(beamline: Beamline, name: str) -> str:
    """The current run's lines of an instance's log."""
    log = (beamline.state / "instances" / name / "output.log").read_text()
    return log[log.rindex(MARKER):]


def test_an_ioc_starts_from_the_outputs_built_at_deploy(beamline: Beamline) -> None:
    """Generation happens once, right after the checks of a deploy: the IOC's start copies
    those outputs into its runtime folder (same bytes, same times) instead of generating, and
    only the current release's are kept."""
    name = "bl01b-ea-sum-01"
    a_pv = beamline.pv("EA-SUM-01:A")
    instance = beamline.state / "instances" / name
    beamline.ok("deploy", name, "v2", "--wait")
    assert ca_get(a_pv)[0] == pytest.approx(3.25)
    release = Path(beamline.ps()[name]["extra"]["release"])
    built = instance / "prebuilt" / release.name
    assert [p.name for p in (instance / "prebuilt").iterdir()] == [release.name]
    launch = json.loads((instance / "launch.json").read_text())
    assert launch["argv"][-2:] == ["--prebuilt", str(built)]
    for output in ("st.cmd", "ioc.subst", "ioc.db"):
        copy, made = instance / "runtime" / output, built / output
        assert copy.read_bytes() == made.read_bytes()
        assert copy.stat().st_mtime_ns == made.stat().st_mtime_ns, f"{output} was regenerated"
    assert '"3.25"' in (built / "st.cmd").read_text()
    assert "generating" not in _run_log(beamline, name)

    beamline.ok("rollback", name, "v1", "--wait")  # back, for the tests that follow
    assert ca_get(a_pv)[0] == pytest.approx(2.54)
    back = Path(beamline.ps()[name]["extra"]["release"]).name
    assert [p.name for p in (instance / "prebuilt").iterdir()] == [back]
    assert "generating" not in _run_log(beamline, name)


def test_deploy_refuses_what_check_rejects_and_the_ioc_keeps_running(
        beamline: Beamline) -> None:
    """deploy-local of a working copy and deploy of a tag that `berth check` rejects: exit 2,
    the problem at file:line, the running IOC untouched; --force deploys anyway."""
    name = "bl01b-ea-sum-01"
    sum_pv = beamline.pv("EA-SUM-01:SUM")
    db = beamline.repo / "services" / name / "config" / "sum.db"
    good = db.read_text()
    lines = good.splitlines()
    at = next(i for i, line in enumerate(lines) if "field(" in line)
    lines.insert(at, '  field(NOSUCHFIELD, "1")')
    db.write_text("\n".join(lines) + "\n")
    before = beamline.ps()[name]
    state_before = (beamline.state / "state.json").read_bytes()
    releases_before = sorted(p.name for p in (beamline.state / "releases").rglob("*"))
    try:
        refused = beamline.berth("deploy-local", str(db.parent.parent))
        assert refused.returncode == 2, refused.stderr
        assert f"{db}:{at + 1}" in refused.stderr and "NOSUCHFIELD" in refused.stderr
        git(beamline.repo, "commit", "-q", "-am", "broken")
        git(beamline.repo, "tag", "v3")
        refused_tag = beamline.berth("deploy", name)  # the latest tag: v3
        assert refused_tag.returncode == 2, refused_tag.stderr
        assert f"@v3/services/{name}/config/sum.db:{at + 1}" in refused_tag.stderr
        for result in (refused, refused_tag):
            assert "what runs is unchanged" in result.stderr
            assert "Traceback" not in result.stderr
        assert (beamline.state / "state.json").read_bytes() == state_before
        assert sorted(p.name for p in (beamline.state / "releases").rglob("*")) == \
            releases_before
        row = beamline.ps()[name]
        assert (row["state"], row["pid"], row["version"]) == ("running", before["pid"], "v1")
        assert ca_get(sum_pv)[0] == pytest.approx(2.54 + 2.61)

        forced = beamline.berth("deploy", "--force", name)
        assert forced.returncode == 0, forced.stderr
        assert "--force" in forced.stderr
        assert beamline.ps()[name]["version"] == "v3"
    finally:
        git(beamline.repo, "tag", "-d", "v3")
        git(beamline.repo, "reset", "-q", "--hard", "v2")
    beamline.ok("rollback", name, "v1")  # back, for the tests that follow
    wait_until(lambda: ca_get(sum_pv)[0] == pytest.approx(2.54 + 2.61), "v1 again")
    pid = beamline.ps()[name]["pid"]
    back = beamline.berth("rollback", name, "v3")  # a rollback is checked first too
    assert back.returncode == 2 and "NOSUCHFIELD" in back.stderr, back.stderr
    assert (beamline.ps()[name]["pid"], beamline.ps()[name]["version"]) == (pid, "v1")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _git_tree(repo: Path, tag: str, folder: str) -> dict[str, bytes]:
    names = git(repo, "ls-tree", "-r", "--name-only", tag, "--", folder).split()
    return {
        str(Path(n).relative_to(folder)): subprocess.run(
            ["git", "-C", str(repo), "show", f"{tag}:{n}"], check=True, capture_output=True
        ).stdout
        for n in names
    }


def test_concurrent_deploys_serialise(beamline: Beamline) -> None:
    names = ["bl01b-va-alarm-01", "bl01b-di-wave-01"]
    for name in names:  # deployed at v1 by `up`: go to the working copy and back, concurrently
        beamline.ok("deploy-local", str(beamline.repo / "services" / name))
    full_env = {**os.environ, **beamline.env}
    procs = [subprocess.Popen([sys.executable, "-m", "berth", "deploy", n, "v1"], env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    state = json.loads((beamline.state / "state.json").read_text())  # whole, valid JSON
    for name in names:
        assert state["instances"][name]["history"][-1]["version"] == "v1"
    rows = wait_until(lambda: (r := beamline.ps()) and all(r[n]["state"] == "running"
                                                           for n in names) and r,
                      "both redeployed")
    assert [rows[n]["version"] for n in names] == ["v1", "v1"]
    for name in CA_PVS:
        assert name in state["instances"]  # nobody's entry was lost


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("deploy", "bl01b-ea-sum-99"), "unknown service 'bl01b-ea-sum-99'"),
        (("deploy", "bl01b-ea-sum-01", "v9"), "unknown version 'v9'"),
        (("stop", "bl01b-nope-01"), "'bl01b-nope-01' is not deployed"),
        (("rollback", "bl01b-ea-sum-01", "v7"), "version 'v7'"),
        (("deploy", "bl01b-di-cam-01"), "not runnable here"),
    ],
)
def test_user_mistakes_change_nothing(beamline: Beamline, args: tuple[str, ...],
                                      expected: str) -> None:
    before = (beamline.state / "state.json").read_bytes()
    releases = sorted(p.name for p in (beamline.state / "releases").rglob("*"))
    result = beamline.berth(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert (beamline.state / "state.json").read_bytes() == before
    assert sorted(p.name for p in (beamline.state / "releases").rglob("*")) == releases


def test_broken_repository_is_reported_and_changes_nothing(beamline: Beamline,
                                                           tmp_path: Path) -> None:
    broken = copy_example(tmp_path / "broken", beamline.tag)
    values = broken / "services" / "bl01b-ea-sum-01" / "values.yaml"
    values.write_text("ioc-instance:\n  image: [unclosed\n")
    # (a name not deployed here: the same name from another repository is refused first)
    (broken / "services" / "bl01b-ea-cnt-01").rename(broken / "services" / "bl01b-ea-cnt-09")
    missing = broken / "services" / "bl01b-ea-cnt-09" / "config"
    for item in missing.iterdir():
        item.unlink()
    missing.rmdir()
    before = (beamline.state / "state.json").read_bytes()

    bad_yaml = run_berth("deploy", "bl01b-ea-sum-01", "-r", str(broken), env=beamline.env)
    assert bad_yaml.returncode == 2
    assert f"{values}:3" in bad_yaml.stderr and "invalid YAML" in bad_yaml.stderr

    values.write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:1\n")
    no_config = run_berth("deploy", "bl01b-ea-cnt-09", "-r", str(broken), env=beamline.env)
    assert no_config.returncode == 2
    assert "bl01b-ea-cnt-09" in no_config.stderr and "no config folder" in no_config.stderr
    assert (beamline.state / "state.json").read_bytes() == before


def test_an_ioc_that_cannot_start_backs_off_and_says_why(beamline: Beamline) -> None:
    bad = beamline.repo / "services" / "bl01b-ea-bad-01"
    (bad / "config").mkdir(parents=True)
    (bad / "values.yaml").write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:1\n")
    (bad / "config" / "ioc.yaml").write_text(
        "ioc_name: bad\nentities:\n  - type: berth.Template\n    file: missing.db\n")
    beamline.ok("deploy-local", "--force", str(bad))  # `check` refuses it: forced to run
    try:
        row = wait_until(lambda: (r := beamline.ps()["bl01b-ea-bad-01"])["state"]
                         == "crash-looping" and r["restarts"] >= 1 and r, "back-off")
        assert "failed start" in row["reason"]
        assert any("missing.db" in line for line in row["extra"]["last_log"]), row
        assert beamline.ps()["bl01b-ea-sum-01"]["state"] == "running"  # the others carry on
    finally:
        beamline.ok("delete", "-y", "bl01b-ea-bad-01")
        shutil.rmtree(bad)


def test_delete_removes_the_instance_and_keeps_its_data(beamline: Beamline) -> None:
    name = "bl01b-va-alarm-01"
    data = beamline.state / "instances" / name / "data"
    (data / "kept.sav").write_text("x\n")
    beamline.ok("delete", "-y", name)
    assert beamline.ps()[name]["state"] == "not deployed"
    with pytest.raises(TimeoutError):
        ca_get(beamline.pv("VA-ALARM-01:P1"), timeout=1.5)
    assert (data / "kept.sav").exists()
    beamline.ok("deploy", name)  # back, for the tests that follow
    wait_until(lambda: beamline.ps()[name]["state"] == "running", "redeployed")


def test_supervise_restores_the_beamline_after_a_reboot(beamline: Beamline) -> None:
    """What the systemd unit runs at boot: `berth supervise` (supervisord in the foreground)."""
    from berth.deploy.local import backend as local

    sum_pv = beamline.pv("EA-SUM-01:SUM")
    local.shutdown(beamline.state)  # a power cut: supervisor and IOCs gone, state kept
    with pytest.raises(TimeoutError):
        ca_get(sum_pv, timeout=1.5)
    unit = subprocess.Popen([sys.executable, "-m", "berth", "supervise"],
                            env={**os.environ, **beamline.env})
    try:
        ca_value(sum_pv)
        rows = wait_until(lambda: (r := beamline.ps()) and all(r[n]["state"] == "running"
                                                               for n in CA_PVS) and r,
                          "every instance back")
        assert rows["bl01b-ea-sum-01"]["version"] == "v1"  # as last deployed (rolled back)
    finally:
        unit.terminate()  # systemctl stop: supervisord stops its IOCs, then exits
        unit.wait(timeout=60)
    assert not local.shutdown(beamline.state)  # nothing left running


def test_down_stops_everything(beamline: Beamline) -> None:
    beamline.ok("up")  # (the previous test stopped its supervisor)
    wait_until(lambda: (r := beamline.ps()) and all(r[n]["state"] == "running" for n in CA_PVS),
               "every instance running")
    out = beamline.ok("down", "-y")
    assert {f"stopped {n}" for n in CA_PVS} <= set(out.splitlines())
    with pytest.raises(TimeoutError):
        ca_get(beamline.pv("EA-SUM-01:SUM"), timeout=1.5)
    assert supervisors(beamline.state) == []
    rows = beamline.ps()
    assert all(rows[n]["state"] == "stopped" for n in CA_PVS)
    for verb in (("ps",), ("history", "bl01b-ea-sum-01"), ("logs", "bl01b-ea-sum-01"),
                 ("template", "bl01b-ea-sum-01"), ("list",), ("instances", "bl01b-ea-sum-01")):
        beamline.ok(*verb)
        assert supervisors(beamline.state) == [], f"berth {verb[0]} started the supervisor"
    assert not (beamline.state / "run" / "supervisor.sock").exists()
