"""The lean process an IOC runs in: `python -m berth.run.runner`.

`berth run` prepares everything, then exec's this module (same PID, so supervisors keep
tracking it). It imports only what it needs — no typer, jinja or yaml — to keep each IOC small.

    python -m berth.run.runner --name NAME --socket PATH [--after PID:FD] --startup ST_CMD
    python -m berth.run.runner --name NAME --socket PATH [--after PID:FD] --exec BINARY ...

`--after PID:FD`: process PID (our child, forked by `berth run` before it exec'd us) is still
building the runtime folder; it writes "1" on pipe FD when done, or exits with an error code.
Meanwhile the IOC process loads EPICS, then waits; so both overlap.

The process forks. The child runs the IOC with a pseudo-terminal as stdin/stdout/stderr, so the
IOC shell stays interactive after start-up: either the embedded soft IOC (`--startup`) or a
Generic IOC binary (`--exec`). The parent is safe as PID 1: it forwards SIGTERM/SIGINT to the
child, reaps every zombie, copies the IOC's output to its own stdout (the logs) and to every
console client, passes the keyboard holder's input to the IOC, and exits with the child's code.
"""

from __future__ import annotations

import contextlib
import os
import pty
import selectors
import signal
import sys
import time
from pathlib import Path

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    from typing import Any

    from berth.run.console import ConsoleServer

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
KILL_AFTER = 10.0  # seconds between forwarding SIGTERM and SIGKILL
EXIT_STARTUP_FAILED = 2  # a failing start-up line is a mistake in the user's files


def _usage(message: str) -> int:
    print(f"berth runner: {message}", file=sys.stderr)
    print(__doc__, file=sys.stderr)
    return 2


def _parse(argv: list[str]) -> dict[str, object] | str:
    opts: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--exec":
            opts["exec"] = argv[i + 1:]
            break
        if arg in ("--name", "--socket", "--startup", "--after") and i + 1 < len(argv):
            opts[arg[2:]] = argv[i + 1]
            i += 2
            continue
        return f"unexpected argument {arg!r}"
    if not opts.get("socket") or not opts.get("name"):
        return "--name and --socket are required"
    if bool(opts.get("exec")) == bool(opts.get("startup")):
        return "give exactly one of --startup ST_CMD or --exec BINARY [ARG...]"
    if opts.get("after"):
        pid, _, fd = str(opts["after"]).partition(":")
        if not (pid.isdigit() and fd.isdigit()):
            return "--after takes PID:FD"
        opts["after"] = (int(pid), int(fd))
    return opts


def _wait_for_go(go_fd: int | None) -> None:
    """Block until the runtime folder is built; leave quietly if it never will be."""
    if go_fd is None:
        return
    if os.read(go_fd, 1) != b"1":
        os._exit(0)
    os.close(go_fd)


def _run_embedded(startup: Path, err_fd: int, go_fd: int | None, pv_fd: int,
                  heartbeat: Any = None) -> None:
    """Child: the soft IOC. Never returns."""
    # Block the stop signals before EPICS starts threads, so every thread inherits the mask and
    # only the main thread's sigwait sees them (otherwise SIGTERM is lost when this is PID 1).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    from berth.epics.softioc import SoftIoc

    ioc = SoftIoc()
    _wait_for_go(go_fd)
    failure = ioc.run_script(startup)
    if failure is not None:
        message = f"berth: {failure}\n".encode()
        os.write(1, message)
        os.write(err_fd, message)
        sys.stdout.flush()
        os._exit(EXIT_STARTUP_FAILED)
    from berth.epics.autosave import Database

    database = Database(ioc.libs)
    # start-up (with its iocInit) is done: tell the parent which PV to probe
    _write_all(pv_fd, f"{database.first_record() or ''}\n".encode())
    os.close(pv_fd)
    if heartbeat is not None:  # with health PVs loaded, the runner watches them advance
        from berth.epics.iocstats import feed_heartbeat
        from berth.run.ready import Heartbeat

        feed_heartbeat(database, Heartbeat(heartbeat).write)

    import threading

    def shell() -> None:
        ioc.interactive()
        ioc.exit(0)  # `exit` typed in the shell stops the IOC, as in a softIoc

    threading.Thread(target=shell, name="iocsh", daemon=True).start()
    signal.sigwait(STOP_SIGNALS)
    ioc.exit(0)
    os._exit(0)


def _child(opts: dict[str, object], slave_fd: int, err_fd: int, go_fd: int | None,
           pv_fd: int) -> None:
    os.setsid()
    import fcntl
    import termios

    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave_fd, fd)
    if slave_fd > 2:
        os.close(slave_fd)
    try:
        if opts.get("exec"):
            argv = [str(a) for a in opts["exec"]]  # type: ignore[attr-defined]
            _wait_for_go(go_fd)
            os.close(pv_fd)
            os.execv(argv[0], argv)
        _run_embedded(Path(str(opts["startup"])), err_fd, go_fd, pv_fd, opts.get("heartbeat"))
    except BaseException as exc:  # the child must never return into the parent's code
        os.write(err_fd, f"berth: the IOC could not start: {exc}\n".encode())
    os._exit(1)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _pass_keys_through(fd: int) -> list[Any] | None:
    """Let the IOC's own terminal (the pty) echo and edit lines, not ours: no local echo, no
    line buffering. Ctrl-C still signals us (and we stop the IOC). Returns the old settings."""
    import termios

    try:
        saved = termios.tcgetattr(fd)
        changed = termios.tcgetattr(fd)
        changed[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(fd, termios.TCSADRAIN, changed)
    except termios.error:
        return None
    return saved


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # logs going nowhere must not stop the IOC
        while data:
            data = data[os.write(fd, data):]


def log_stamp(now: float) -> bytes:
    """procServ's --logstamp habit: each log line starts with its UTC time."""
    millis = int(now * 1000) % 1000
    return time.strftime(f"[%Y-%m-%dT%H:%M:%S.{millis:03d}Z] ", time.gmtime(now)).encode()


class Log:
    """The IOC's output on our stdout (supervisord's output.log), each line time-stamped when
    stdout is not a terminal; notes of our own go on lines of their own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stamp = not os.isatty(fd)
        self.at_line_start = True

    def write(self, data: bytes) -> None:
        if not self.stamp:
            _write_all(self.fd, data)
            return
        out = bytearray()
        stamp = log_stamp(time.time())
        for line in data.splitlines(keepends=True):
            if self.at_line_start:
                out += stamp
            out += line
            self.at_line_start = line.endswith(b"\n")
        _write_all(self.fd, bytes(out))

    def note(self, text: str) -> None:
        self.write((b"" if self.at_line_start else b"\n") + f"[berth] {text}\n".encode())


class Supervisor:
    """The parent: event loop over the pty, the console socket and signals."""

    def __init__(self, child: int, master_fd: int, console: ConsoleServer,
                 builder: tuple[int, int] | None = None, go_fd: int | None = None) -> None:
        self.child = child
        self.builder_pid = builder[0] if builder else None
        self.go_fd = go_fd  # write "1" to let the IOC process run its start-up script
        self.forced_exit: int | None = None  # the builder's failure code
        self.stopping = False  # a stop was asked for: the builder's death is no failure
        self.reaped: dict[int, int] = {}
        self.master = master_fd
        self.console = console
        self.log = Log(1)
        console.on_input_line = self._note_input
        self.status_path = _status_path()
        self.init_seen = b""  # the end of the output, while waiting for iocInit's message
        self.init_done = False
        self.started_fd_open = False
        self.prober: Any = None
        self.heartbeat: Any = None  # the page the embedded IOC copies its heartbeat into
        self.held = b""  # output that may be the start of a shell mark cut in two
        self.selector_clients: dict[int, int] = {}  # console client fd → events registered
        self.selector = selectors.DefaultSelector()
        self.exit_status: int | None = None
        self.kill_at: float | None = None
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_r = wake_r
        signal.set_wakeup_fd(wake_w)
        for sig in (*STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        self.selector.register(self.master, selectors.EVENT_READ, "pty")
        self.selector.register(wake_r, selectors.EVENT_READ, "signal")
        self.selector.register(console.listener, selectors.EVENT_READ, "listen")
        if builder is not None:
            self.selector.register(builder[1], selectors.EVENT_READ, "builder")
        self.saved_tty: list[Any] | None = None
        if os.isatty(0):  # `docker run -it` / `kubectl attach`: the terminal types too
            self.selector.register(0, selectors.EVENT_READ, "stdin")
            self.saved_tty = _pass_keys_through(0)

    def run(self) -> int:
        try:
            return self._loop()
        finally:
            if self.saved_tty is not None:
                import termios

                with contextlib.suppress(termios.error):
                    termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)

    def _loop(self) -> int:
        while self.exit_status is None:
            timeout = None if self.kill_at is None else max(0.0, self.kill_at - time.monotonic())
            self._sync_clients()
            for key, events in self.selector.select(timeout):
                self._handle(key, events)
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child, signal.SIGKILL)
                self.kill_at = None
        self._drain()
        if self.prober is not None:
            self.prober.stopped = True
        self.console.close()
        if self.forced_exit is not None:
            return self.forced_exit
        return _exit_code(self.exit_status)

    def _sync_clients(self) -> None:
        # Keyed by socket object, not fd: a client that left frees its fd, and the next one may
        # get the same number (epoll forgot the closed one; the selector's map did not).
        registered = {k.fd: k for k in self.selector.get_map().values() if k.data == "client"}
        for fd, key in registered.items():
            client = self.console.clients.get(fd)
            if client is None or key.fileobj is not client.sock:
                self.selector.unregister(key.fileobj)
                del self.selector_clients[fd]
        want_write = set(self.console.wants_write())
        for fd, client in self.console.clients.items():
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if fd in want_write else 0)
            if fd not in self.selector_clients:
                self.selector.register(client.sock, events, "client")
                self.selector_clients[fd] = events
            elif self.selector_clients[fd] != events:
                self.selector.modify(client.sock, events, "client")
                self.selector_clients[fd] = events

    def _handle(self, key: selectors.SelectorKey, events: int) -> None:
        if key.data == "pty":
            self._read_pty()
        elif key.data == "signal":
            self._signals()
        elif key.data == "builder":
            self._builder_done(key.fd)
        elif key.data == "started":
            self._started(key.fd)
        elif key.data == "listen":
            self.console.accept()
        elif key.data == "stdin":
            data = b""
            with contextlib.suppress(OSError):
                data = os.read(0, 4096)
            if data:
                self._to_ioc(data)
            else:
                self.selector.unregister(0)
        elif key.data == "client":
            if events & selectors.EVENT_WRITE:
                self.console.writable(key.fd)
            if events & selectors.EVENT_READ:
                data = self.console.readable(key.fd)
                if data:
                    self._to_ioc(data)

    def _take_message(self, fd: int, size: int) -> bytes:
        """The one message a helper pipe carries (b"" when its writer closed it unwritten)."""
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(fd, size)
        self.selector.unregister(fd)
        os.close(fd)
        return data

    def _builder_done(self, fd: int) -> None:
        """The runtime folder is built (go), or its builder failed (stop with its code)."""
        status = self._take_message(fd, 1)
        code = None
        if self.builder_pid is not None:  # it exits right after reporting: reap it now
            code = self.reaped.pop(self.builder_pid, None)
            if code is None:
                with contextlib.suppress(ChildProcessError):
                    code = os.waitpid(self.builder_pid, 0)[1]
        if status == b"1" and self.go_fd is not None:
            _write_all(self.go_fd, b"1")
        elif self.builder_pid is not None and not self.stopping:
            self.forced_exit = _exit_code(code) if code is not None else 1
        self._release_ioc()

    def _release_ioc(self) -> None:
        """Closing the go pipe without "1" makes a waiting IOC process leave quietly."""
        if self.go_fd is not None:
            os.close(self.go_fd)
            self.go_fd = None

    def _read_pty(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its side (exited)
            data = b""
        if not data:
            self.selector.unregister(self.master)
            self._wait_child(block=True)
            return False
        self._output(data)
        return True

    def _to_ioc(self, data: bytes) -> None:
        """Keys for the IOC shell; each CR or LF ends one line it will read."""
        _write_all(self.master, data)
        self.console.lines_sent += data.count(b"\r") + data.count(b"\n")

    def _output(self, data: bytes) -> None:
        from berth.epics.shellmark import take_marks

        data, idle, self.held = take_marks(self.held + data)
        if data:
            self.log.write(data)
            self.console.broadcast(data)
        for lines_read in idle:
            self.console.shell_idle(lines_read)
        if self.prober is None:
            self._look_for_init(data)

    def watch_started(self, fd: int) -> None:
        """The embedded IOC writes a PV name on `fd` when its start-up is done; a Generic IOC
        binary closes it unwritten (then iocInit's message in the output starts the probe)."""
        self.selector.register(fd, selectors.EVENT_READ, "started")
        self.started_fd_open = True

    def _started(self, fd: int) -> None:
        data = self._take_message(fd, 4096)
        self.started_fd_open = False
        if data.strip():
            self._start_probe(data.decode(errors="replace").strip())
        elif self.init_done:
            self._start_probe_from_files()

    def _look_for_init(self, data: bytes) -> None:
        from berth.run.ready import INIT_DONE

        seen = self.init_seen + data
        self.init_seen = seen[-len(INIT_DONE):]
        if self.init_done or INIT_DONE not in seen:
            return
        self.init_done = True
        if not self.started_fd_open:  # else the embedded IOC names its PV when all is done
            self._start_probe_from_files()

    def _start_probe_from_files(self) -> None:
        from berth.run.ready import first_record

        self._start_probe(first_record(self.status_path.parent / "ioc.db"))

    def _start_probe(self, pv: str | None) -> None:
        if self.prober is not None:
            return
        import threading

        from berth.run.ready import Heartbeat, Prober

        beat = Heartbeat(self.heartbeat) if self.heartbeat is not None else None
        self.prober = Prober(self.status_path, os.getpid(), dict(os.environ), pv, beat,
                             self.child)
        threading.Thread(target=self.prober.run, name="probe", daemon=True).start()

    def _note_input(self, user: str, line: str) -> None:
        self.log.note(f"console input from {user}: {line}")

    def _drain(self) -> None:
        """Forward what the IOC wrote before it exited."""
        os.set_blocking(self.master, False)
        with contextlib.suppress(OSError):
            while True:
                data = os.read(self.master, 65536)
                if not data:
                    break
                self._output(data)

    def _signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            received = os.read(self.wake_r, 256)
            for number in received:
                if number in STOP_SIGNALS:
                    self.stopping = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.child, signal.SIGTERM)
                    if self.builder_pid is not None and self.go_fd is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(self.builder_pid, signal.SIGTERM)
                        self._release_ioc()
                    if self.kill_at is None:
                        self.kill_at = time.monotonic() + KILL_AFTER
        self._wait_child(block=False)

    def _wait_child(self, block: bool) -> None:
        """Reap every exited process (we may be PID 1); note our IOC's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.exit_status = status
                return
            self.reaped[pid] = status


def _status_path() -> Path:
    """Where readiness is published: the runtime folder (the runner's working directory)."""
    from berth.run.ready import STATUS_FILE

    return Path(os.environ.get("RUNTIME_DIR") or os.getcwd()) / STATUS_FILE


def main(argv: list[str] | None = None) -> int:
    parsed = _parse(sys.argv[1:] if argv is None else argv)
    if isinstance(parsed, str):
        return _usage(parsed)
    opts = parsed
    err_fd = os.dup(2)
    master_fd, slave_fd = pty.openpty()
    pv_r, pv_w = os.pipe()  # the embedded IOC names a PV to probe once its start-up is done
    builder = opts.get("after")
    go_r, go_w = os.pipe() if builder else (None, None)
    if not opts.get("exec"):  # the page the embedded IOC copies its heartbeat into (ready.py)
        import mmap

        opts["heartbeat"] = mmap.mmap(-1, 16)  # shared (MAP_SHARED) with the forked IOC
    sys.stdout.flush()
    sys.stderr.flush()
    # The IOC process is forked first, so that it loads EPICS while this one sets up the console
    # (importing socket).
    child = os.fork()
    if child == 0:
        os.close(master_fd)
        if go_w is not None:
            os.close(go_w)
            os.close(builder[1])  # type: ignore[index]
        os.close(pv_r)
        _child(opts, slave_fd, err_fd, go_r, pv_w)
    os.close(slave_fd)
    os.close(pv_w)
    os.close(err_fd)
    if go_r is not None:
        os.close(go_r)
    from berth.run.console import ConsoleServer
    from berth.run.ready import STARTING, write_status

    write_status(_status_path(), {"pid": os.getpid(), "phase": STARTING, "ioc_init": False,
                                  "time": time.time()})

    try:
        console = ConsoleServer(Path(str(opts["socket"])), str(opts["name"]))
    except BaseException:  # no console: the IOC must not run (it waits for its go, or starts)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        raise
    console.shell_reports = not opts.get("exec")  # the embedded shell marks its prompts
    supervisor = Supervisor(child, master_fd, console, builder, go_w)  # type: ignore[arg-type]
    supervisor.heartbeat = opts.get("heartbeat")
    supervisor.watch_started(pv_r)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
