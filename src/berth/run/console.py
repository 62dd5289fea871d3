"""The IOC shell over a Unix socket, like procServ: several viewers watch, one types.

Server side (`ConsoleServer`, used by the runner's parent process): every client receives all
IOC output. The keyboard belongs to one client at a time: the first client that types while
nobody holds it, until it leaves; another client may take it over explicitly. Clients that
declared themselves read-only never get it.

Control messages are lines starting with a NUL byte, which no one types into an IOC shell:
`\\0ro\\n` (I only watch) and `\\0take\\n` (give me the keyboard).

Client side: `attach(socket_path)`; Ctrl-] detaches, Ctrl-T takes the keyboard.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

DETACH_KEY = b"\x1d"  # Ctrl-]
TAKE_KEY = b"\x14"  # Ctrl-T
CONTROL_RO = b"\0ro\n"
CONTROL_TAKE = b"\0take\n"
# After its piped input a client asks to be told when the shell has read it all and waits again
# (`\0sync\n`); the answer is `\0done\n`, or `\0nosync\n` from a shell that cannot tell.
CONTROL_SYNC = b"\0sync\n"
REPLY_DONE = b"\0done\n"
REPLY_NOSYNC = b"\0nosync\n"
MAX_PENDING = 1 << 20  # a viewer this far behind is dropped rather than stall the IOC
SUN_PATH_MAX = 107
QUIET_AFTER_EOF = 1.0  # seconds of IOC silence after the end of piped input before detaching


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """A path to `path` short enough for a Unix socket address (108 bytes): long paths are
    reached through /proc/self/fd/<dirfd>/<name>."""
    text = os.fsencode(path)
    if len(text) <= SUN_PATH_MAX:
        yield str(path)
        return
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


def connect(socket_path: Path, timeout: float | None = None) -> socket.socket:
    """A client connection to an IOC console (raises OSError when no IOC listens there)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _short_path(Path(socket_path)) as address:
            sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def is_live(socket_path: Path) -> bool:
    """True when an IOC console answers at `socket_path`."""
    try:
        connect(socket_path, timeout=1.0).close()
    except OSError:
        return False
    return True


ESCAPE_SEQUENCE = re.compile(rb"\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)")


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


def peer_user(sock: socket.socket) -> str:
    """The Unix user at the other end of a Unix socket (SO_PEERCRED), by name when known."""
    uid = peer_uid(sock)
    if uid is None:
        return "unknown user"
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def typed_text(keys: bytes) -> str:
    """What a line of keystrokes reads as: escape sequences dropped, backspaces applied."""
    text: list[str] = []
    for char in ESCAPE_SEQUENCE.sub(b"", keys).decode(errors="replace"):
        if char in "\x7f\x08":
            if text:
                text.pop()
        elif char.isprintable():
            text.append(char)
    return "".join(text)


class _Client:
    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.read_only = False
        self.pending = bytearray()
        self.user = peer_user(sock)
        self.typed = bytearray()  # the keyboard holder's current line, for the log
        self.sync_at: int | None = None  # tell it `done` once the shell has read this many lines


class ConsoleServer:
    """Non-blocking fan-out of IOC output to socket clients, and input from the keyboard holder.
    The owner polls `fileno()`s and calls the handlers (the runner's event loop)."""

    def __init__(self, socket_path: Path, ioc_name: str) -> None:
        self.path = Path(socket_path)
        self.ioc_name = ioc_name
        if not self.path.parent.exists():  # a folder of berth's own: private (0700)
            from berth.paths import private_dir

            private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: `berth run` checked that no live IOC answers here
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _short_path(self.path) as address:
            self.listener.bind(address)
            # Owner only, whatever the umask: whoever can connect types into the IOC shell. No
            # one can connect before listen(), so the mode is right before the first client.
            os.chmod(address, 0o600)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.clients: dict[int, _Client] = {}
        self.keyboard: _Client | None = None
        self._numbers = 0
        # called with (user, text) for every line typed into the IOC shell
        self.on_input_line: Callable[[str, str], None] | None = None
        self.lines_sent = 0  # lines given to the IOC shell (by the owner)
        self.lines_read = 0  # lines the shell said it has read
        self.shell_reports = False  # berth's own shell says so; a Generic IOC's does not

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._drop(client)
        self.listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self._numbers += 1
        client = _Client(sock, self._numbers)
        self.clients[sock.fileno()] = client
        self._tell(client, f"attached to IOC {self.ioc_name} (viewer {client.number}); "
                   "typing takes the keyboard when free; Ctrl-] detaches, Ctrl-T takes over")

    def _tell(self, client: _Client, message: str) -> None:
        self._queue(client, f"\r\n[berth] {message}\r\n".encode())

    def broadcast(self, data: bytes) -> None:
        for client in list(self.clients.values()):
            self._queue(client, data)

    def _queue(self, client: _Client, data: bytes) -> None:
        client.pending += data
        self.flush(client)

    def flush(self, client: _Client) -> None:
        while client.pending:
            try:
                sent = client.sock.send(client.pending)
            except BlockingIOError:
                break
            except OSError:
                self._drop(client)
                return
            del client.pending[:sent]
        if len(client.pending) > MAX_PENDING:
            self._drop(client)

    def wants_write(self) -> list[int]:
        return [fd for fd, c in self.clients.items() if c.pending]

    def writable(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client:
            self.flush(client)

    def readable(self, fd: int) -> bytes:
        """Input from client `fd`: returns what should go to the IOC shell."""
        client = self.clients.get(fd)
        if client is None:
            return b""
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return b""
        forward = bytearray()
        chunks = data.split(b"\0")
        forward += chunks[0]
        sync = False
        for chunk in chunks[1:]:
            command, _, rest = chunk.partition(b"\n")
            sync = sync or command.strip() == b"sync"
            self._control(client, command.strip())
            forward += rest
        accepted = self._accept_keys(client, bytes(forward)) if forward else b""
        if sync:  # the owner sends `accepted` to the shell right after this returns
            lines = accepted.count(b"\r") + accepted.count(b"\n")
            client.sync_at = self.lines_sent + lines
            self._answer_sync(client)
        return accepted

    def _accept_keys(self, client: _Client, keys: bytes) -> bytes:
        if client.read_only:
            self._tell(client, "read-only viewer: input ignored")
            return b""
        if self.keyboard is None:
            self.keyboard = client
        if self.keyboard is not client:
            self._tell(client, f"viewer {self.keyboard.number} has the keyboard; Ctrl-T takes over")
            return b""
        self._log_lines(client, keys)
        return keys

    def shell_idle(self, lines_read: int) -> None:
        """The IOC shell waits for input, having read `lines_read` lines."""
        self.lines_read = lines_read
        for client in list(self.clients.values()):
            self._answer_sync(client)

    def _answer_sync(self, client: _Client) -> None:
        if client.sync_at is None:
            return
        if not self.shell_reports:
            self._queue(client, REPLY_NOSYNC)
        elif self.lines_read >= client.sync_at:
            self._queue(client, REPLY_DONE)
        else:
            return
        client.sync_at = None

    def _log_lines(self, client: _Client, keys: bytes) -> None:
        client.typed += keys
        *lines, rest = re.split(rb"\r\n?|\n", bytes(client.typed))
        client.typed = bytearray(rest)
        if self.on_input_line is not None:
            for line in lines:
                self.on_input_line(client.user, typed_text(line))

    def _control(self, client: _Client, command: bytes) -> None:
        if command == b"ro":
            client.read_only = True
            if self.keyboard is client:
                self.keyboard = None
        elif command == b"take" and not client.read_only:
            previous = self.keyboard
            self.keyboard = client
            self._tell(client, "you have the keyboard")
            if previous is not None and previous is not client:
                self._tell(previous, f"viewer {client.number} took the keyboard")

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        if self.keyboard is client:
            self.keyboard = None
        with contextlib.suppress(OSError):
            client.sock.close()


class _Replies:
    """Takes the console's replies (`\\0done\\n`, `\\0nosync\\n`) out of the output stream, also
    when one arrives cut in two."""

    def __init__(self) -> None:
        self.held = b""

    def take(self, data: bytes) -> tuple[bytes, bytes | None]:
        data, self.held = self.held + data, b""
        found = None
        for reply in (REPLY_DONE, REPLY_NOSYNC):
            if reply in data:
                found = reply
                data = data.replace(reply, b"")
        start = data.rfind(b"\0", max(0, len(data) - len(REPLY_NOSYNC)))
        if start >= 0 and any(r.startswith(data[start:]) for r in (REPLY_DONE, REPLY_NOSYNC)):
            data, self.held = data[:start], data[start:]
        return data, found


def attach(socket_path: Path, read_only: bool = False) -> int:
    """Attach the terminal to an IOC console until Ctrl-] or the IOC stops. Returns an exit code:
    0 on detach or IOC exit, 1 when no IOC answers at `socket_path`, 2 when the console is
    served by another user (not root)."""
    import selectors
    import termios
    import tty

    try:
        sock = connect(socket_path)
    except OSError as exc:
        print(f"berth: cannot attach to {socket_path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    server = peer_uid(sock)
    if server not in (os.getuid(), 0):
        sock.close()
        print(f"berth: {socket_path}: refusing to attach: this console is served by uid "
              f"{server}, not by you (uid {os.getuid()}) or root; it could record what you type",
              file=sys.stderr)
        return 2
    if read_only:
        sock.sendall(CONTROL_RO)
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if is_tty else None
    out = sys.stdout.buffer
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    stdin_open = True
    try:
        selector.register(stdin, selectors.EVENT_READ)
    except (ValueError, PermissionError, OSError):
        stdin_open = False  # e.g. /dev/null cannot be polled on some systems
    try:
        if is_tty:
            tty.setraw(stdin)
        quiet_exit = False  # the shell cannot say when it is done: leave after a quiet while
        replies = _Replies()
        while True:
            ready = selector.select(QUIET_AFTER_EOF if quiet_exit else None)
            if not ready:
                return 0
            for key, _ in ready:
                if key.fileobj is sock:
                    data = sock.recv(65536)
                    if not data:
                        return 0
                    data, reply = replies.take(data)
                    out.write(data)
                    out.flush()
                    if reply == REPLY_DONE:
                        return 0
                    if reply == REPLY_NOSYNC:
                        quiet_exit = True
                elif stdin_open:
                    data = os.read(stdin, 4096)
                    if not data or DETACH_KEY in data:
                        if data and DETACH_KEY in data:
                            before = data.split(DETACH_KEY, 1)[0]
                            if before and not read_only:
                                sock.sendall(before)
                            return 0
                        selector.unregister(stdin)
                        stdin_open = False
                        if read_only:
                            continue  # viewers keep watching
                        # Scripted input (`echo dbl | berth attach`): show the answer, then
                        # leave as soon as the shell has read every line and waits again.
                        sock.sendall(CONTROL_SYNC)
                        continue
                    if TAKE_KEY in data and not read_only:
                        sock.sendall(CONTROL_TAKE)
                        data = data.replace(TAKE_KEY, b"")
                    if data and not read_only:
                        sock.sendall(data)
    except OSError as exc:
        if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
            raise
        return 0
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()
