"""`berth run` of st.cmd config folders on the embedded soft IOC: real IOC processes, real CA
and PVA clients on loopback. Helpers here are shared by the other test_run*/test_console files."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_berth

LOOPBACK_ENV = {
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_counter = itertools.count()


def unique_prefix() -> str:
    return f"BRT{os.getpid()}N{next(_counter)}:"


@pytest.fixture(autouse=True)
def loopback_epics(monkeypatch: pytest.MonkeyPatch) -> None:
    """IOCs and clients of these tests talk over loopback only."""
    for name, value in LOOPBACK_ENV.items():
        monkeypatch.setenv(name, value)


class Ioc:
    """A `berth run` process; output goes to files so a full pipe never stalls the IOC."""

    def __init__(self, config: Path, work: Path, *args: str | Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.runtime = work / "runtime"
        self.socket = work / "console.sock"
        self.out_path, self.err_path = work / "stdout.txt", work / "stderr.txt"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
                 str(self.runtime), "--console-socket", str(self.socket), *map(str, args)],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the console socket answers and start-up finished (iocInit done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"IOC exited with {self.proc.returncode}:\n{self.stdout}\n"
                                     f"{self.stderr}")
            if "iocRun: All initialization complete" in self.stdout and self.socket.exists():
                return
            time.sleep(0.1)
        raise AssertionError(f"IOC not ready in {timeout} s:\n{self.stdout}\n{self.stderr}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


@pytest.fixture
def iocs(tmp_path: Path) -> Iterator[list[Ioc]]:
    """Start IOCs with `started(...)`; all are killed at the end whatever happens."""
    started: list[Ioc] = []
    yield started
    for ioc in started:
        ioc.kill()


def start(iocs: list[Ioc], config: Path, work: Path, *args: str | Path) -> Ioc:
    ioc = Ioc(config, work, *args)
    iocs.append(ioc)
    return ioc


def stcmd_folder(folder: Path, prefix: str, extra: str = "", post: str = "") -> Path:
    """A hand-written config folder: st.cmd (as a Generic IOC image expects) + a .db."""
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text(
        'record(ao, "$(P)SETPOINT") {\n  field(VAL, "$(START=1.5)")\n  field(PREC, "3")\n}\n'
        'record(calc, "$(P)DOUBLE") {\n  field(INPA, "$(P)SETPOINT CP")\n'
        '  field(CALC, "A*2")\n}\n'
        'record(stringout, "$(P)NAME") {\n  field(VAL, "berth")\n}\n'
    )
    (config / "st.cmd").write_text(
        '# hand-written start-up\ncd "/epics/ioc"\n'
        "dbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n"
        f'{extra}dbLoadRecords /epics/ioc/config/records.db "P={prefix}"\n'
        f"iocInit\n{post}"
    )
    return config


def ca_read(pv: str, timeout: float = START_TIMEOUT) -> object:
    from caproto.sync.client import read

    deadline = time.monotonic() + timeout
    while True:
        try:
            return read(pv, timeout=2.0, repeater=False).data[0]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ca_write(pv: str, value: object) -> None:
    from caproto.sync.client import write

    write(pv, value, notify=True, timeout=5.0, repeater=False)


def pva_context():  # type: ignore[no-untyped-def]
    from p4p.client.thread import Context

    return Context("pva", nt=False)


def pva_read(ctx, pv: str, timeout: float = START_TIMEOUT) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ctx.get(pv, timeout=2.0)["value"]
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_until(check, timeout: float = 10.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def console_reader(sock: socket.socket) -> bytearray:
    """Everything read so far from a console socket, collected by a background thread."""
    import threading

    buffer = bytearray()

    def read() -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer.extend(data)

    threading.Thread(target=read, daemon=True).start()
    return buffer


# --- tests -------------------------------------------------------------------------------------


def test_stcmd_folder_serves_ca_and_pva_and_stops_on_sigterm(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", prefix), tmp_path / "work")
    ioc.wait_ready()

    assert ca_read(f"{prefix}SETPOINT") == pytest.approx(1.5)
    ctx = pva_context()
    try:
        assert pva_read(ctx, f"{prefix}NAME") == "berth"
        ca_write(f"{prefix}SETPOINT", 21.0)
        wait_until(lambda: pva_read(ctx, f"{prefix}DOUBLE") == pytest.approx(42.0),
                   what="DOUBLE to follow a CA write")
        ctx.put(f"{prefix}SETPOINT", 4.25)
        wait_until(lambda: ca_read(f"{prefix}DOUBLE") == pytest.approx(8.5),
                   what="DOUBLE to follow a PVA write")
    finally:
        ctx.close()

    # The IOC runs in the very process `berth run` started as (supervisors track that PID).
    cmdline = Path(f"/proc/{ioc.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"berth.run.runner" in cmdline

    began = time.monotonic()
    assert ioc.stop() == 0
    assert time.monotonic() - began < 5.0
    assert not ioc.socket.exists(), "the console socket is removed when the IOC stops"
    # The container paths of the hand-written st.cmd were mapped onto this machine's folders.
    assert "/epics/ioc/config" not in (ioc.runtime / "st.cmd").read_text()


def test_several_iocs_at_once_on_loopback(tmp_path: Path, iocs: list[Ioc]):
    prefixes = [unique_prefix() for _ in range(3)]
    started = [start(iocs, stcmd_folder(tmp_path / f"ioc{i}", p), tmp_path / f"work{i}")
               for i, p in enumerate(prefixes)]
    for ioc in started:
        ioc.wait_ready()
    ctx = pva_context()
    try:
        for number, prefix in enumerate(prefixes):
            ca_write(f"{prefix}SETPOINT", number + 10)
        for number, prefix in enumerate(prefixes):
            assert ca_read(f"{prefix}SETPOINT") == pytest.approx(number + 10)
            assert pva_read(ctx, f"{prefix}DOUBLE") == pytest.approx(2 * (number + 10))
    finally:
        ctx.close()
    assert [ioc.stop() for ioc in started] == [0, 0, 0]


def test_a_failing_startup_line_stops_the_ioc_naming_the_line(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    config = stcmd_folder(tmp_path / "bad", prefix, extra='dbLoadRecords("missing.db", "A=1")\n')
    ioc = start(iocs, config, tmp_path / "work")
    code = ioc.proc.wait(START_TIMEOUT)
    assert code == 2
    assert 'st.cmd:5: start-up stopped at a failing line: dbLoadRecords("missing.db", "A=1")' \
        in ioc.stderr
    assert "iocInit" not in ioc.stdout.split("missing.db")[-1], "nothing after the failing line"
    assert "Traceback" not in ioc.stderr + ioc.stdout


def test_a_failing_line_after_iocinit_also_stops_it(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    config = stcmd_folder(tmp_path / "bad", prefix, post=f'dbpf "{prefix}NO_SUCH_PV" "1"\n')
    ioc = start(iocs, config, tmp_path / "work")
    assert ioc.proc.wait(START_TIMEOUT) == 2
    assert f'st.cmd:7: start-up stopped at a failing line: dbpf "{prefix}NO_SUCH_PV"' in ioc.stderr


def test_an_unknown_command_stops_the_ioc(tmp_path: Path, iocs: list[Ioc]):
    config = stcmd_folder(tmp_path / "bad", unique_prefix(), extra="drvNoSuchDriver(1, 2)\n")
    ioc = start(iocs, config, tmp_path / "work")
    assert ioc.proc.wait(START_TIMEOUT) == 2
    assert "drvNoSuchDriver(1, 2)" in ioc.stderr
    assert "not registered" in ioc.stdout


def test_missing_config_folder_is_a_clear_error(tmp_path: Path):
    result = run_berth("run", tmp_path / "nope", "--runtime-dir", tmp_path / "rt")
    assert result.returncode == 2
    assert f"{tmp_path / 'nope'}: config folder not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_config_folder_says_what_it_expected(tmp_path: Path):
    (tmp_path / "config").mkdir()
    result = run_berth("run", tmp_path / "config", "--runtime-dir", tmp_path / "rt")
    assert result.returncode == 2
    assert "nothing to run: expected start.sh, ioc.py, an instance YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_start_sh_takes_precedence_and_keeps_the_pid(tmp_path: Path):
    config = stcmd_folder(tmp_path / "svc", unique_prefix())
    (config / "start.sh").write_text('#!/bin/sh\necho "pid=$$ ioc=$IOC_NAME"\nexit 7\n')
    (config / "start.sh").chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); print('child', p.pid);"
         " sys.exit(p.wait())",
         sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
         str(tmp_path / "rt")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 7, proc.stderr
    child = proc.stdout.split("child ")[1].split()[0]
    assert f"pid={child} ioc=svc" in proc.stdout


def test_console_socket_with_two_viewers(tmp_path: Path, iocs: list[Ioc]):
    from berth.run.console import connect

    prefix = unique_prefix()
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", prefix), tmp_path / "work")
    ioc.wait_ready()
    typist, viewer = connect(ioc.socket, timeout=10), connect(ioc.socket, timeout=10)
    try:
        typed, watched = console_reader(typist), console_reader(viewer)
        typist.sendall(b"dbl\n")
        for seen in (typed, watched):
            wait_until(lambda s=seen: f"{prefix}DOUBLE".encode() in s, what="dbl output")
            assert f"{prefix}SETPOINT".encode() in seen
        # The second viewer cannot type while the first holds the keyboard...
        viewer.sendall(f'dbpf "{prefix}SETPOINT" "99"\n'.encode())
        wait_until(lambda: b"has the keyboard" in watched, what="the read-only notice")
        # the keyboard holder's read goes through the same input after the refused line
        typist.sendall(f'dbgf "{prefix}SETPOINT"\n'.encode())
        wait_until(lambda: b"DBF_DOUBLE" in typed, what="the dbgf answer")
        assert b"DBF_DOUBLE:         1.5" in typed, bytes(typed)
        assert ca_read(f"{prefix}SETPOINT") == pytest.approx(1.5)
        # ...until it takes it over explicitly.
        viewer.sendall(b"\0take\n" + f'dbpf "{prefix}SETPOINT" "99"\n'.encode())
        wait_until(lambda: ca_read(f"{prefix}SETPOINT") == pytest.approx(99.0),
                   what="the take-over write")
        wait_until(lambda: b"took the keyboard" in typed, what="the take-over notice")
    finally:
        typist.close()
        viewer.close()
    # The console output is also the IOC's stdout (its logs).
    assert f"{prefix}DOUBLE" in ioc.stdout
    assert ioc.stop() == 0


def test_a_long_console_socket_path_works(tmp_path: Path, iocs: list[Ioc]):
    from berth.run.console import connect

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    prefix = unique_prefix()
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", prefix), tmp_path / "work",
                "--console-socket", deep / "console.sock")
    ioc.socket = deep / "console.sock"
    assert len(str(ioc.socket)) > 108
    ioc.wait_ready()
    client = connect(ioc.socket, timeout=10)
    seen = console_reader(client)
    client.sendall(b"dbl\n")
    wait_until(lambda: f"{prefix}NAME".encode() in seen, what="dbl over a long socket path")
    client.close()
    assert ioc.stop() == 0


def test_a_second_ioc_on_the_same_console_socket_is_refused(tmp_path: Path, iocs: list[Ioc]):
    ioc = start(iocs, stcmd_folder(tmp_path / "one", unique_prefix()), tmp_path / "work")
    ioc.wait_ready()
    result = run_berth("run", stcmd_folder(tmp_path / "two", unique_prefix()), "--runtime-dir",
                       tmp_path / "rt2", "--console-socket", ioc.socket, timeout=60)
    assert result.returncode == 2
    assert "another IOC is already running with console socket" in result.stderr
    assert ioc.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="capabilities are dropped only when run as root")
def test_as_root_the_ioc_runs_without_nice_and_ipc_lock(tmp_path: Path, iocs: list[Ioc]):
    from berth.run.caps import CAP_IPC_LOCK, CAP_SYS_NICE, bounding_caps

    mine = bounding_caps()
    if not (mine >> CAP_SYS_NICE) & 1 or not (mine >> CAP_IPC_LOCK) & 1:
        pytest.skip("this test process already lacks the capabilities")
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", unique_prefix()), tmp_path / "work")
    ioc.wait_ready()
    pids = [ioc.proc.pid, *(int(p) for p in
                            Path(f"/proc/{ioc.proc.pid}/task/{ioc.proc.pid}/children")
                            .read_text().split())]
    assert len(pids) == 2, "the runner (console) and the IOC process"
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        bounding = int(status.split("CapBnd:")[1].split()[0], 16)
        assert not (bounding >> CAP_SYS_NICE) & 1, f"cap_sys_nice still in CapBnd of {pid}"
        assert not (bounding >> CAP_IPC_LOCK) & 1, f"cap_ipc_lock still in CapBnd of {pid}"
        assert bounding & 1, "the other capabilities are kept (cap_chown)"
    assert ioc.stop() == 0


def test_a_generic_ioc_binary_is_exec_d_with_the_st_cmd_on_a_terminal(tmp_path: Path,
                                                                      iocs: list[Ioc]):
    """A compiled Generic IOC cannot exist here (no compiler): a stand-in executable at
    $IOC/bin/linux-x86_64/ioc shows what it is given, and the console reaches its stdin."""
    from berth.run.console import connect

    ioc_dir = tmp_path / "generic"
    binary = ioc_dir / "bin" / "linux-x86_64" / "ioc"
    binary.parent.mkdir(parents=True)
    binary.write_text(
        '#!/bin/sh\necho "generic ioc argv: $*"\necho "env: IOC=$IOC IOC_NAME=$IOC_NAME"\n'
        'if [ -t 0 ]; then echo "stdin is a terminal"; fi\n'
        'while read line; do echo "got: $line"; [ "$line" = "exit" ] && exit 3; done\n')
    binary.chmod(0o755)
    config = stcmd_folder(tmp_path / "svc", unique_prefix())
    ioc = start(iocs, config, tmp_path / "work", "--ioc-dir", ioc_dir)
    st_cmd = ioc.runtime / "st.cmd"
    wait_until(lambda: "stdin is a terminal" in ioc.stdout, timeout=30, what="the stand-in IOC")
    assert f"generic ioc argv: {st_cmd}" in ioc.stdout
    assert f"env: IOC={ioc_dir} IOC_NAME=svc" in ioc.stdout
    assert f'cd "{ioc_dir}"' in st_cmd.read_text(), "container paths mapped onto this machine"
    assert f"{config}/records.db" in st_cmd.read_text()
    client = connect(ioc.socket, timeout=10)
    client.sendall(b"hello\n")
    wait_until(lambda: "got: hello" in ioc.stdout, what="input through the console")
    client.sendall(b"exit\n")
    assert ioc.proc.wait(STOP_TIMEOUT) == 3, "the IOC's exit code is berth run's exit code"
    client.close()


def test_the_real_p47_synoptic_st_cmd_folder_runs(corpus: Path, tmp_path: Path, iocs: list[Ioc]):
    import shutil

    from berth.run.console import connect

    config = tmp_path / "bl47p-synoptic" / "config"
    shutil.copytree(corpus / "services/p47-services/services/bl47p-synoptic/config", config)
    # the corpus ioc.db is techui-builder's placeholder with no records yet: add the kind of
    # status record it generates, so there is a PV to read through the real st.cmd's load
    prefix = unique_prefix()
    with open(config / "ioc.db", "a") as db:
        db.write(f'record(stringin, "{prefix}SYNOPTIC:STATUS") {{\n  field(VAL, "ok")\n}}\n')
    ioc = start(iocs, config, tmp_path / "work")
    ioc.wait_ready()
    assert f"dbLoadRecords {config}/ioc.db" in ioc.stdout
    assert ca_read(f"{prefix}SYNOPTIC:STATUS") == b"ok"
    ctx = pva_context()
    try:
        assert pva_read(ctx, f"{prefix}SYNOPTIC:STATUS") == "ok"
    finally:
        ctx.close()
    client = connect(ioc.socket, timeout=10)  # the st.cmd's epicsEnvSet took effect
    shown = console_reader(client)
    client.sendall(b"epicsEnvShow EPICS_TZ\n")
    wait_until(lambda: b"EPICS_TZ=GMT0BST" in shown, what="EPICS_TZ in the IOC's environment")
    client.close()
    assert ioc.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a new PID namespace needs root")
def test_sigterm_stops_the_ioc_when_it_is_pid_1(tmp_path: Path):
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    prefix = unique_prefix()
    config = stcmd_folder(tmp_path / "demo", prefix)
    out = tmp_path / "stdout.txt"
    with open(out, "wb") as sink:
        outer = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m", "berth", "run",
             str(config), "--runtime-dir", str(tmp_path / "rt")],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: "iocRun: All initialization complete" in out.read_text(), 30,
                   "the IOC in its own PID namespace")
        (init,) = (int(p) for p in
                   Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split())
        status = Path(f"/proc/{init}/status").read_text()
        assert status.split("NSpid:")[1].split("\n")[0].split()[-1] == "1", status
        assert ca_read(f"{prefix}NAME") == b"berth"
        began = time.monotonic()
        os.kill(init, signal.SIGTERM)
        assert outer.wait(STOP_TIMEOUT) == 0
        assert time.monotonic() - began < 5.0
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()


ORDINARY_RUN_ARGS = [
    ["cfg"],
    ["cfg", "--runtime-dir", "/r", "--ioc-dir=/i", "--ioc-name", "n", "--strict"],
    ["--no-wait", "--defs", "a.yaml", "cfg", "--defs=b.yaml", "--console-socket", "/s.sock"],
    ["--ioc-name", "a", "cfg", "--ioc-name", "b", "--no-wait", "--no-wait"],
    ["--ioc-name=x=y", "cfg"],
    ["--", "cfg"],
    ["cfg", "--ioc-name", "a b"],
]
# (argv, what typer says about it): left to typer, which reports the mistake or prints help
UNUSUAL_RUN_ARGS = [
    (["--runtime", "/r", "cfg"], "No such option '--runtime'"),  # no abbreviations
    (["cfg", "other"], "unexpected extra argument (other)"),
    (["cfg", "--defs"], "'--defs' requires an argument"),
    (["cfg", "--bogus"], "No such option '--bogus'"),
    ([], "Missing parameter: config_dir"),
]


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The options each `berth run` parse ended in: plan(options) records them, nothing runs."""
    from berth.run import launch

    monkeypatch.setenv("IOC", "/env-ioc")
    monkeypatch.delenv("RUNTIME_DIR", raising=False)
    monkeypatch.delenv("IOC_NAME", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(launch, "plan", lambda options, env=None: seen.append(repr(options)))
    monkeypatch.setattr(launch, "prepare_runtime", lambda _launch: None)
    monkeypatch.setattr(launch, "exec_launch", lambda _launch: None)
    return seen


@pytest.mark.parametrize("args", ORDINARY_RUN_ARGS)
def test_ordinary_run_arguments_take_the_fast_path_and_read_as_typer_reads_them(
        monkeypatch: pytest.MonkeyPatch, planned: list[str], args: list[str]) -> None:
    """`berth run` reads ordinary arguments itself (no typer import at IOC start), and reads
    them as typer would."""
    from berth.cli import main, run

    # the console entry with typer unimportable: only the fast path can get to plan()
    real_typer = sys.modules.get("typer")
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as exited:
        main.main(["run", *args])
    assert exited.value.code == 0
    assert len(planned) == 1
    if real_typer is None:
        del sys.modules["typer"]
    else:
        sys.modules["typer"] = real_typer
    typer_app = main.__getattr__("app")
    run.register(typer_app)
    assert typer_app(["run", *args], standalone_mode=False) is None
    assert len(planned) == 2
    assert planned[0] == planned[1]


@pytest.mark.parametrize(("args", "complaint"), UNUSUAL_RUN_ARGS)
def test_unusual_run_arguments_are_left_to_typer(planned: list[str], args: list[str],
                                                 complaint: str) -> None:
    import click

    from berth.cli import main, run

    assert run.fast(["run", *args]) is None
    assert planned == []
    typer_app = main.__getattr__("app")
    run.register(typer_app)
    with pytest.raises(click.UsageError, match=re.escape(complaint)):
        typer_app(["run", *args], standalone_mode=False)
    assert planned == []


def test_run_help_is_left_to_typer(planned: list[str], capsys: pytest.CaptureFixture[str]
                                   ) -> None:
    from berth.cli import main, run

    assert run.fast(["run", "--help"]) is None
    typer_app = main.__getattr__("app")
    run.register(typer_app)
    assert typer_app(["run", "--help"], standalone_mode=False) == 0
    help_text = capsys.readouterr().out
    assert "CONFIG_DIR" in help_text and "--console-socket" in help_text
    assert planned == []
