"""The local backend under faults (issue 12): a stopped supervisor gets no twin, sockets stay
private, crash loops back off, a restore spares `exec` sessions, a full disk or a read-only
state folder gives one line, a state folder path with a space works, a broken state.json is
reported. Real supervisord, real IOCs, a real CA client; the shared beamline's state folder
has a space in its path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_local import (
    LOOPBACK,
    SERVER_LOOPBACK,
    Beamline,
    _alive,
    ca_get,
    ca_value,
    supervisors,
    wait_until,
)

from conftest import REPO_ROOT, run_berth

KEEP = ("bl01b-ea-sum-01", "bl01b-ea-cnt-01", "bl01b-di-wave-01")
PVS = {"bl01b-ea-sum-01": "EA-SUM-01:SUM", "bl01b-ea-cnt-01": "EA-CNT-01:COUNT1",
       "bl01b-di-wave-01": "DI-WAVE-01:SIGNAL"}


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    from berth.deploy.local import backend as local

    root = tmp_path_factory.mktemp("faults")
    # repro 8: supervisord split [include] at the space
    line = Beamline.of_example(root, root / "state with space")
    for folder in (line.repo / "services").iterdir():
        if folder.is_dir() and folder.name not in KEEP:
            shutil.rmtree(folder)
    try:
        line.ok("up", "--wait", "--timeout", "60")
        yield line
    finally:
        local.shutdown(line.state)


def _identity_counts(state: Path) -> dict[str, int]:
    from berth.deploy.local.launcher import identity_processes

    counts: dict[str, int] = {}
    for name in identity_processes(str(state)).values():
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_a_path_with_a_space_runs_every_instance(beamline: Beamline) -> None:
    assert " " in str(beamline.state)
    rows = beamline.ps()
    assert all(rows[n]["state"] == "running" and rows[n]["ready"] for n in KEEP), rows
    for suffix in PVS.values():
        ca_value(beamline.pv(suffix))
    from berth.deploy.state import StateDir

    sockets = StateDir(beamline.state).socket_dir
    assert (sockets.stat().st_mode & 0o777) == 0o700
    assert ((sockets / "supervisor.sock").stat().st_mode & 0o777) == 0o600
    assert all((sockets / f"{n}.sock").stat().st_mode & 0o777 == 0o600 for n in KEEP)


def test_a_stopped_supervisor_gets_no_twin(beamline: Beamline) -> None:
    """Repro 1: SIGSTOP the supervisord, run `berth ps` (and a verb that would start one),
    SIGCONT: still one supervisor, every IOC once."""
    [pid] = supervisors(beamline.state)
    before = _identity_counts(beamline.state)
    assert set(before) == set(KEEP)
    env = {**beamline.env, "BERTH_SUPERVISOR_TIMEOUT": "3"}
    os.kill(pid, signal.SIGSTOP)
    try:
        for verb in (("ps",), ("restart", "bl01b-ea-sum-01"), ("up",)):
            started = time.monotonic()
            result = run_berth(*verb, env=env)
            took = time.monotonic() - started
            assert result.returncode == 1, (verb, result.stdout, result.stderr)
            assert "is not answering" in result.stderr and "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert took < 12, (verb, took)
            assert supervisors(beamline.state) == [pid], verb
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(2)  # what a twin's IOCs would need to show up
    assert supervisors(beamline.state) == [pid]
    assert _identity_counts(beamline.state) == before
    rows = beamline.ps()
    assert not any("strays" in r["extra"] for r in rows.values())
    for suffix in PVS.values():
        ca_value(beamline.pv(suffix))


def test_ps_reports_a_stray_and_the_launcher_refuses_its_duplicate(beamline: Beamline) -> None:
    """An IOC process of this state folder the supervisor does not own is shown; a start of
    that instance waits for it, and does not run a second copy."""
    name = "bl01b-ea-cnt-01"
    stray = subprocess.Popen(["sleep", "300"], env={**os.environ, "BERTH_STATE":
                                                    str(beamline.state), "BERTH_INSTANCE": name})
    try:
        row = wait_until(lambda: (r := beamline.ps()[name]).get("extra", {}).get("strays")
                         and r, "the stray shown")
        assert row["extra"]["strays"] == [stray.pid]
        assert f"pid {stray.pid}" in row["reason"]
        old = row["pid"]
        beamline.ok("restart", name)
        time.sleep(3)
        waiting = beamline.ps()[name]["pid"]
        assert waiting not in (None, old)
        assert b"launcher" in Path(f"/proc/{waiting}/cmdline").read_bytes()  # not yet the IOC
        assert set(_identity(beamline.state).items()) >= {(stray.pid, name)}
        assert [n for n in _identity(beamline.state).values()].count(name) == 1
        with pytest.raises(TimeoutError):  # the launcher waits: no IOC serves the PV yet
            ca_get(beamline.pv(PVS[name]), timeout=1.0)
    finally:
        stray.kill()
        stray.wait()
    wait_until(lambda: beamline.ps()[name]["ready"], "started once the stray is gone")
    ca_value(beamline.pv(PVS[name]))


def _identity(state: Path) -> dict[int, str]:
    from berth.deploy.local.launcher import identity_processes

    return identity_processes(str(state))


def test_restore_spares_exec_sessions_and_is_quick(beamline: Beamline) -> None:
    """Repro 6: kill -9 of the supervisor with an operator's `berth exec` running; the restore
    neither kills nor waits for it."""
    session = subprocess.Popen([sys.executable, "-m", "berth", "exec", "bl01b-ea-sum-01", "--",
                                "sleep", "300"], env={**os.environ, **beamline.env})
    try:
        wait_until(lambda: any(b"sleep" in Path(f"/proc/{c}/cmdline").read_bytes()
                               for c in _children(session.pid)), "the exec session")
        [pid] = supervisors(beamline.state)
        old = [r["pid"] for r in beamline.ps().values() if r["pid"]]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not any(_alive(p) for p in old), "old IOCs gone")
        started = time.monotonic()
        beamline.ok("up")
        took = time.monotonic() - started
        assert took < 8, took  # (it waited 12 s for exec sessions, then SIGKILLed them)
        assert session.poll() is None, "the exec session was killed"
        wait_until(lambda: all(r["ready"] for n, r in beamline.ps().items() if n in KEEP),
                   "restored")
        assert session.poll() is None
    finally:
        session.terminate()
        session.wait(timeout=30)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in
                Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_killed_ioc_restarts_at_once_and_counts(beamline: Beamline) -> None:
    name = "bl01b-di-wave-01"
    old = wait_until(lambda: (r := beamline.ps()[name])["ready"] and r, "the IOC ready")
    os.kill(old["pid"], signal.SIGKILL)
    started = time.monotonic()
    row = wait_until(lambda: (r := beamline.ps()[name])["ready"] and r["pid"] != old["pid"]
                     and r, "the IOC back")
    assert time.monotonic() - started < 9  # no back-off: the first crash of an IOC that came up
    assert row["restarts"] == old["restarts"] + 1


@contextlib.contextmanager
def _looping(beamline: Beamline, name: str, backoff: str, files: dict[str, str],
             log_line: str, failures: int) -> Iterator[Callable[[float], int]]:
    """Deploy instance `name` (config `files`, back-off `backoff`), wait until `ps` says it is
    crash-looping with `log_line` in its last lines and has failed `failures` times; yields
    a function counting its starts over some seconds. Deleted afterwards."""
    bad = beamline.repo / "services" / name
    (bad / "config").mkdir(parents=True)
    (bad / "values.yaml").write_text(
        "ioc-instance:\n  image: ghcr.io/berth/softioc:1\n"
        f"berth:\n  restart_backoff: {backoff}\n")
    for file, text in files.items():
        (bad / "config" / file).write_text(text)
        (bad / "config" / file).chmod(0o755)
    beamline.ok("deploy-local", "--force", str(bad))

    def starts_over(seconds: float) -> int:
        first = beamline.ps()[name]["restarts"]
        time.sleep(seconds)
        return int(beamline.ps()[name]["restarts"] - first)

    try:
        row = wait_until(lambda: (r := beamline.ps()[name])["state"] == "crash-looping" and r,
                         "crash-looping", timeout=40)
        assert any(log_line in line for line in row["extra"]["last_log"]), row
        assert "failed start" in row["reason"]
        assert "crash-looping" in beamline.ok("ps")
        wait_until(lambda: beamline.ps()[name]["extra"].get("failures", 0) >= failures,
                   "the back-off at its maximum", timeout=60)
        yield starts_over
    finally:
        beamline.ok("delete", "-y", name)
        shutil.rmtree(bad)


def test_a_crash_loop_backs_off_and_says_so(beamline: Beamline) -> None:
    """Repro 4: an IOC failing in its start-up restarted every 1-2 s forever. Now: back-off
    (here 2 s doubling to 4 s, set in its values), `crash-looping` with its last log lines."""
    ioc_yaml = "ioc_name: bad\nentities:\n  - type: berth.Template\n    file: missing.db\n"
    with _looping(beamline, "bl01b-ea-bad-01", "{initial: 2, max: 4}",
                  {"ioc.yaml": ioc_yaml}, "missing.db", 3) as starts_over:
        # At most one start per 4 s back-off (plus its ~1 s start-up): 20 s → ≤ 5, where
        # startsecs=1 gave 10-20.
        assert 2 <= starts_over(20) <= 5
        assert beamline.ps()["bl01b-ea-sum-01"]["ready"]  # the others carry on


def test_an_ioc_that_comes_up_then_dies_ends_in_a_slow_loop(beamline: Beamline) -> None:
    """Repro 4, second form: a start that gets through (here a start.sh, unprobed) and exits 2 s
    later was a good start as soon as it outlived the initial back-off, so it restarted at once,
    forever. Only a run of `reset_after` seconds ends a streak now: it backs off and says so."""
    start_sh = "#!/bin/sh\necho short-lived IOC up\nsleep 2\nexit 1\n"
    with _looping(beamline, "bl01b-ea-short-01", "{initial: 1, max: 4}",
                  {"start.sh": start_sh}, "short-lived IOC up", 4) as starts_over:
        # A 4 s back-off plus a 2 s run: 18 s → at most 4 starts, where restarting at once
        # gave 9.
        assert 1 <= starts_over(18) <= 4


def test_log_retention_comes_from_the_values(beamline: Beamline) -> None:
    values = beamline.repo / "services" / "bl01b-ea-cnt-01" / "values.yaml"
    text = values.read_text()
    try:
        values.write_text(text + "berth:\n  log: {max_bytes: 1MB, backups: 3}\n")
        out = beamline.ok("template", "bl01b-ea-cnt-01")
        assert "stdout_logfile_maxbytes=1048576\n" in out
        assert "stdout_logfile_backups=3\n" in out
        values.write_text(text + "berth:\n  log: {max_bytes: lots}\n")
        bad = beamline.berth("template", "bl01b-ea-cnt-01")
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert "berth.log.max_bytes" in bad.stderr and str(values) in bad.stderr
    finally:
        values.write_text(text)
    default = beamline.ok("template", "bl01b-ea-cnt-01")
    assert f"stdout_logfile_maxbytes={20 * 1024 * 1024}\n" in default


# -- without the shared beamline -----------------------------------------------------------


@pytest.mark.parametrize("content", ["[]", "null", '{"instances": []}',
                                     '{"instances": {"../../../x": {"name": "../../../x"}}}',
                                     '{"instances": {"a": {"name": "b"}}}'])
def test_a_broken_state_file_is_one_line(tmp_path: Path, content: str) -> None:
    """Repros 10 and 13: names read back are validated; odd JSON is reported, exit 2."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.json").write_text(content)
    for verb in (("ps", "--all"), ("stop", "x"), ("up", "--all")):
        result = run_berth(*verb, env={"BERTH_STATE_DIR": str(state)}, cwd=tmp_path)
        assert result.returncode == 2, (verb, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and str(state / "state.json") in result.stderr
    assert sorted(p.name for p in state.iterdir()) in (["state.json"],
                                                       ["lock", "state.json"])
    assert not (tmp_path / "x").exists()


def _long_state(tmp_path: Path) -> Path:
    """A state folder whose `run` path is too long for sockets: the fallback is used."""
    state = tmp_path / ("s" * 60) / ("t" * 30)
    state.mkdir(parents=True)
    return state


def test_a_fallback_socket_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    """Repro 2: someone else made the fallback folder first."""
    if os.getuid() != 0:
        pytest.skip("making a folder owned by another user needs root")
    import tempfile

    from berth.deploy.state import StateDir

    state = _long_state(tmp_path)
    runtime = Path(tempfile.mkdtemp(prefix="xdg-"))  # short, as /run/user/<uid> is
    request_cleanup = runtime
    env = {"BERTH_STATE_DIR": str(state), "XDG_RUNTIME_DIR": str(runtime)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", str(runtime))
        assert StateDir(state).make_socket_dir().parent == runtime / "berth"
        shutil.rmtree(runtime / "berth")
    foreign = runtime / "berth"
    foreign.mkdir(mode=0o777)
    os.chown(foreign, 65534, 65534)
    (state / "state.json").write_text('{"instances": {}}')
    result = run_berth("ps", "--all", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "belongs to uid 65534" in result.stderr and str(foreign) in result.stderr
    assert "Traceback" not in result.stderr

    # Without XDG_RUNTIME_DIR: /tmp/berth-<uid>/<digest>, here the digest folder is foreign.
    plain = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("XDG_RUNTIME_DIR", raising=False)
        folder = StateDir(state).make_socket_dir()
    assert folder.parent == Path("/tmp") / f"berth-{os.getuid()}"
    assert (folder.stat().st_mode & 0o777) == 0o700
    try:
        os.chown(folder, 65534, 65534)
        result = subprocess.run([sys.executable, "-m", "berth", "ps", "--all"],
                                env={**plain, "BERTH_STATE_DIR": str(state)}, cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "belongs to uid 65534" in result.stderr
    finally:
        folder.rmdir()
        shutil.rmtree(request_cleanup)


def test_a_symlinked_socket_folder_is_refused(tmp_path: Path) -> None:
    import tempfile

    from berth.deploy.state import StateDir
    from berth.errors import BerthError

    state = Path(tempfile.mkdtemp(prefix="st-"))  # short: its own run/ folder holds sockets
    try:
        (tmp_path / "elsewhere").mkdir()
        (state / "run").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(BerthError, match="symbolic link"):
            StateDir(state).make_socket_dir()
    finally:
        shutil.rmtree(state)


def test_console_socket_is_private_under_umask_000(tmp_path: Path) -> None:
    """Repro 3: `berth run --runtime-dir X` under umask 000."""
    config = REPO_ROOT / "examples" / "bl01b" / "services" / "bl01b-ea-sum-01" / "config"
    runtime = tmp_path / "rt"
    env = {**os.environ, **LOOPBACK, **SERVER_LOOPBACK,
           "IOC_PREFIX": f"UMASK{uuid.uuid4().hex[:5].upper()}"}
    ioc = subprocess.Popen([sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
                            str(runtime)], env=env, stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0))
    try:
        sock = runtime / "console.sock"
        wait_until(sock.exists, "the console socket")
        assert (sock.stat().st_mode & 0o777) == 0o600
        # Others may read the outputs, but not replace the socket in its folder.
        assert (runtime.stat().st_mode & 0o777) == 0o755
    finally:
        ioc.terminate()
        ioc.wait(timeout=30)


def _as_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


@pytest.mark.parametrize("kind", ["foreign", "foreign parent"])
def test_a_runtime_dir_others_control_is_refused(tmp_path: Path, kind: str) -> None:
    """Repro 3, other forms: a --runtime-dir another user owns, or can swap out of its parent,
    would let them replace the console socket. Refused before anything starts."""
    if os.getuid() != 0:
        pytest.skip("making a folder owned by another user needs root")
    config = REPO_ROOT / "examples" / "bl01b" / "services" / "bl01b-ea-sum-01" / "config"
    runtime = tmp_path / "rt"
    if kind == "foreign":
        runtime.mkdir()
        os.chown(runtime, 65534, 65534)
    else:
        parent = tmp_path / "shared"
        parent.mkdir(mode=0o777)
        parent.chmod(0o777)  # writable by all, no sticky bit
        runtime = parent / "rt"
    result = run_berth("run", config, "--runtime-dir", runtime, cwd=tmp_path,
                       env={**LOOPBACK, **SERVER_LOOPBACK}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{runtime}: refusing to use this runtime folder" in result.stderr, result.stderr
    assert not (runtime / "console.sock").exists()


def test_attach_refuses_a_console_another_user_serves(tmp_path: Path) -> None:
    """A planted console (a socket served by another user) gets no keystrokes."""
    if os.getuid() != 0:
        pytest.skip("serving as another user needs root")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="berth-plant-"))
    try:
        folder.chmod(0o777)
        sock = folder / "console.sock"
        server = subprocess.Popen(  # the system's Python: nobody may not enter berth's venv
            ["/usr/bin/python3", "-c", "import socket, sys, time\n"
             "s = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(1)\n"
             "print('listening', flush=True)\nc, _ = s.accept()\ntime.sleep(5)\n", str(sock)],
            preexec_fn=_as_nobody, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None and server.stdout.readline() == "listening\n"
            result = subprocess.run(
                [sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                 "from berth.run.console import attach\nsys.exit(attach(Path(sys.argv[1])))",
                 str(sock)], input="dbl\n", capture_output=True, text=True, timeout=30)
        finally:
            server.kill()
            server.wait()
        assert result.returncode == 2, result.stderr
        assert "served by uid 65534" in result.stderr and "refusing to attach" in result.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        from berth.deploy.local import backend as local

        local.shutdown(mount / "state")
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)


def test_stop_works_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    """Repro 7: the state folder's disk is full; `stop` still stops the IOC."""
    line = Beamline.of_example(tmp_path, small_disk / "state")
    line.ok("deploy", "bl01b-ea-sum-01", "--wait", "--timeout", "60")
    ca_value(line.pv("EA-SUM-01:SUM"))
    _fill(small_disk)
    result = line.berth("stop", "bl01b-ea-sum-01")
    assert "Traceback" not in result.stderr
    assert result.returncode == 0 or len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(TimeoutError):
        ca_get(line.pv("EA-SUM-01:SUM"), timeout=1.5)
    (small_disk / "filler").unlink()


def test_a_read_only_state_folder_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    state = small_disk / "state"
    state.mkdir()
    (state / "state.json").write_text('{"instances": {}}')
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_berth("stop", "x", env={"BERTH_STATE_DIR": str(state)}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert "Read-only file system" in result.stderr and str(state) in result.stderr
    assert json.loads((state / "state.json").read_text()) == {"instances": {}}
