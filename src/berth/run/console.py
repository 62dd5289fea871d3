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


def peer_user(sock: socket.socket) -> str:
    """The Unix user at the other end of a Unix socket (SO_PEERCRED), by name when known."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        uid = struct.unpack("3i", creds)[1]
    except OSError:
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


class ConsoleServer:
    """Non-blocking fan-out of IOC output to socket clients, and input from the keyboard holder.
    The owner polls `fileno()`s and calls the handlers (the runner's event loop)."""

    def __init__(self, socket_path: Path, ioc_name: str) -> None:
        self.path = Path(socket_path)
        self.ioc_name = ioc_name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: `berth run` checked that no live IOC answers here
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with _short_path(self.path) as address:
            self.listener.bind(address)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.clients: dict[int, _Client] = {}
        self.keyboard: _Client | None = None
        self._numbers = 0
        # called with (user, text) for every line typed into the IOC shell
        self.on_input_line: Callable[[str, str], None] | None = None

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
        for chunk in chunks[1:]:
            command, _, rest = chunk.partition(b"\n")
            self._control(client, command.strip())
            forward += rest
        if not forward:
            return b""
        if client.read_only:
            self._tell(client, "read-only viewer: input ignored")
            return b""
        if self.keyboard is None:
            self.keyboard = client
        if self.keyboard is not client:
            self._tell(client, f"viewer {self.keyboard.number} has the keyboard; Ctrl-T takes over")
            return b""
        self._log_lines(client, bytes(forward))
        return bytes(forward)

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


def attach(socket_path: Path, read_only: bool = False) -> int:
    """Attach the terminal to an IOC console until Ctrl-] or the IOC stops. Returns an exit code:
    0 on detach or IOC exit, 1 when no IOC answers at `socket_path`."""
    import selectors
    import termios
    import tty

    try:
        sock = connect(socket_path)
    except OSError as exc:
        print(f"berth: cannot attach to {socket_path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
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
        quiet_exit = False
        while True:
            ready = selector.select(QUIET_AFTER_EOF if quiet_exit else None)
            if not ready:
                return 0
            for key, _ in ready:
                if key.fileobj is sock:
                    data = sock.recv(65536)
                    if not data:
                        return 0
                    out.write(data)
                    out.flush()
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
                        # Scripted input (`echo dbl | berth attach`): show the answer, then
                        # leave once the IOC has been quiet for a moment. Viewers keep watching.
                        quiet_exit = not read_only
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
