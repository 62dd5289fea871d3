"""`berth.run.console.attach`, the client others register as `berth attach`, against a real
IOC started by `berth run`."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from test_run import Ioc, console_reader, iocs, start, stcmd_folder, unique_prefix, wait_until

__all__ = ["iocs"]  # the fixture, imported for use here

ATTACH = "import sys; from pathlib import Path; from berth.run.console import attach; " \
         "sys.exit(attach(Path(sys.argv[1]), read_only=sys.argv[2] == 'ro'))"


def attach_process(socket: Path, mode: str, stdin: str | None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", ATTACH, str(socket), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_piped_attach_runs_a_command_and_detaches(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", prefix), tmp_path / "work")
    ioc.wait_ready()
    client = attach_process(ioc.socket, "rw", None)
    out, _ = client.communicate("dbl\n", timeout=30)
    assert client.returncode == 0
    assert f"{prefix}SETPOINT" in out and f"{prefix}NAME" in out
    assert ioc.proc.poll() is None, "detaching leaves the IOC running"
    assert ioc.stop() == 0


def test_read_only_attach_watches_but_never_types(tmp_path: Path, iocs: list[Ioc]):
    from berth.run.console import connect

    prefix = unique_prefix()
    ioc = start(iocs, stcmd_folder(tmp_path / "demo", prefix), tmp_path / "work")
    ioc.wait_ready()
    watcher = attach_process(ioc.socket, "ro", None)
    assert watcher.stdin is not None and watcher.stdout is not None
    watched: list[str] = []
    reader = threading.Thread(target=lambda: watched.extend(watcher.stdout or ()), daemon=True)
    reader.start()
    watcher.stdin.write(f'dbpf "{prefix}NAME" "typed by a viewer"\n')
    watcher.stdin.flush()
    watcher.stdin.close()  # the line and then end of input: a viewer keeps watching
    wait_until(lambda: any("attached to IOC" in line for line in watched),
               what="the viewer's attach")
    # A read-only viewer never holds the keyboard: a second client can type at once.
    typist = connect(ioc.socket, timeout=10)
    typed = console_reader(typist)
    typist.sendall(f'dbgf "{prefix}NAME"\n'.encode())
    wait_until(lambda: b'"berth"' in typed, what="dbgf answer with the unchanged value")
    assert b"has the keyboard" not in typed
    typist.close()
    assert ioc.stop() == 0
    assert watcher.wait(30) == 0, "the viewer leaves when the IOC stops"
    reader.join(10)
    assert f'dbgf "{prefix}NAME"' in "".join(watched), "the viewer saw the other client's command"


def test_exit_typed_in_the_console_stops_the_ioc_cleanly(tmp_path: Path, iocs: list[Ioc]):
    from berth.run.console import connect

    ioc = start(iocs, stcmd_folder(tmp_path / "demo", unique_prefix()), tmp_path / "work")
    ioc.wait_ready()
    client = connect(ioc.socket, timeout=10)
    client.sendall(b"exit\n")
    assert ioc.proc.wait(20) == 0
    client.close()


def test_attach_to_nothing_fails_cleanly(tmp_path: Path):
    client = attach_process(tmp_path / "none.sock", "rw", None)
    _, _ = client.communicate("", timeout=30)
    assert client.returncode == 1
