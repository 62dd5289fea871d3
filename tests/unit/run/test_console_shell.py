"""The IOC shell of the embedded runtime through `berth attach`, driven through real
pseudo-terminals as an operator's terminal would: line editing and arrow-key history, input typed
before the banner, piped commands that return as soon as their output is complete."""

from __future__ import annotations

import contextlib
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

from berth.run import ready
from conftest import REPO_ROOT

CONFIG = REPO_ROOT / "examples" / "bl01b" / "services" / "bl01b-ea-cnt-01" / "config"
PV = "BL01B-EA-CNT-01:ENABLE"
ANSWER = b'DBF_STRING:         "On"'


class Terminal:
    """A program on a pseudo-terminal of its own; what it printed so far in `screen`."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.screen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait_for(self, text: bytes, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.screen.count(text) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r} x{count}; screen: {self.screen!r}"
            readable, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if readable:
                try:
                    self.screen += os.read(self.fd, 65536)
                except OSError:  # the program ended
                    assert self.screen.count(text) >= count, self.screen
                    return

    def close(self) -> int:
        try:
            return os.waitpid(self.pid, 0)[1]
        finally:
            os.close(self.fd)


def _run_argv(runtime: Path) -> list[str]:
    return [sys.executable, "-m", "berth", "run", str(CONFIG), "--runtime-dir", str(runtime)]


@pytest.fixture(scope="module")
def ioc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    runtime = tmp_path_factory.mktemp("shell") / "runtime"
    proc = subprocess.Popen(_run_argv(runtime), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while ready.health(runtime, proc.pid) != ready.READY:
            assert proc.poll() is None and time.monotonic() < deadline, "the IOC never got ready"
            time.sleep(0.05)
        yield runtime / "console.sock"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_arrow_up_repeats_the_last_command_through_attach(ioc: Path) -> None:
    term = Terminal([sys.executable, "-m", "berth", "attach", "--socket", str(ioc)])
    try:
        term.wait_for(b"attached to IOC")
        term.type(f"dbgf {PV}\r".encode())
        term.wait_for(ANSWER)
        term.type(b"\x1b[A\r")  # arrow up, Enter: the IOC shell's history
        term.wait_for(ANSWER, count=2)
        term.type(b"dbgf BL01B-EA-CNT-01:COUNTX\x7f1\r")  # backspace edits the line
        term.wait_for(b"DBF_DOUBLE")  # COUNT1's value, not COUNTX1's "not found"
        term.type(b"\x1d")  # Ctrl-] detaches
        assert term.close() == 0
    finally:
        with_kill(term)


def with_kill(term: Terminal) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(term.pid, signal.SIGKILL)


def test_a_piped_command_returns_as_soon_as_its_output_is_complete(ioc: Path) -> None:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "berth", "--version"], check=True,
                   capture_output=True)
    start_up = time.monotonic() - started
    for _ in range(3):
        started = time.monotonic()
        shell = subprocess.run([sys.executable, "-m", "berth", "attach", "--socket", str(ioc)],
                               input=b"dbl\n", capture_output=True, timeout=30)
        took = time.monotonic() - started
        assert shell.returncode == 0
        assert b"BL01B-EA-CNT-01:COUNT2" in shell.stdout
        assert b"\0" not in shell.stdout  # the shell's marks never reach anyone
        # Well under the 1 s of silence a shell that cannot tell would need.
        assert took - start_up < 0.8, (took, start_up)


def test_input_typed_before_the_banner_is_not_lost(tmp_path: Path) -> None:
    term = Terminal(_run_argv(tmp_path / "runtime"))
    try:
        term.type(f"dbgf {PV}\r".encode())  # at once, long before iocInit
        term.wait_for(b"iocRun: All initialization complete")
        term.wait_for(ANSWER)
        term.type(b"exit\r")
        assert term.close() == 0
    finally:
        with_kill(term)
