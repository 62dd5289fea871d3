"""Does the IOC answer? The runner's readiness probe and the status file it publishes.

After `iocInit` the runner looks for one of the IOC's own PVs over Channel Access and
pvAccess with a single UDP name search each, sent only to the IOC's own server addresses
(EPICS_CAS_INTF_ADDR_LIST / EPICS_PVAS_INTF_ADDR_LIST, else the loopback broadcast address, which
reaches every server bound to all interfaces of this host) and server ports. A search reply
for that very name proves that the server runs and has the record. The result goes to a small
JSON file (`status.json` in the runtime folder), replaced atomically, which `berth ps` reads.

A name search only proves the server threads run. When the IOC serves devIocStats' health PVs,
the IOC process copies `$(IOC):HEARTBEAT` (a record processed once a second) into a shared page
(`Heartbeat`) each second, and the runner checks it advances: records no longer processing, or
a frozen IOC, make it `not answering` within `STALE_AFTER` seconds. The runner then republishes
the status every `PUBLISH_EVERY` seconds, so a stale file (a hung runner) reads as not answering.

Standard library only: the runner imports this on every IOC start.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from pathlib import Path

TYPE_CHECKING = False  # typing stays off the IOC start-up path
if TYPE_CHECKING:
    import mmap
    from collections.abc import Callable

STATUS_FILE = "status.json"
INIT_DONE = b"iocRun: All initialization complete"  # printed by EPICS base's iocInit
LOOPBACK_BROADCAST = "127.255.255.255"
CA_PORT, PVA_PORT = 5064, 5076
CA_MINOR_VERSION = 13
CA_SEARCH, CA_DONT_REPLY = 6, 5
PVA_SEARCH, PVA_SEARCH_RESPONSE = 3, 4
RECORD = re.compile(r'^\s*g?record\s*\(\s*[\w"]+\s*,\s*"?([^",)\s]+)"?\s*\)', re.MULTILINE)

# phases, as `berth ps` shows them; UNPROBED: a start.sh, which no runner watches
STARTING, READY, NOT_ANSWERING, UNPROBED = "starting", "ready", "not answering", "unprobed"
BEAT_EVERY = 1.0  # devIocStats' HEARTBEAT is processed once a second
STALE_AFTER = 5 * BEAT_EVERY  # seconds without an advance: the IOC is hung
PUBLISH_EVERY = 2.0  # status.json rewrites while a heartbeat is watched
STATUS_STALE = 5 * PUBLISH_EVERY  # an older status file: its runner is hung


class Heartbeat:
    """A page shared by the runner and its IOC process (made before the fork): the IOC writes
    its heartbeat's value and a count of writes; the runner reads them. No file, no socket."""

    LAYOUT = "<dQ"
    SIZE = 16  # struct.calcsize(LAYOUT)

    def __init__(self, page: mmap.mmap) -> None:
        self.page = page

    def write(self, value: float, count: int) -> None:
        struct.pack_into(self.LAYOUT, self.page, 0, value, count)

    def read(self) -> tuple[float, int]:
        value, count = struct.unpack_from(self.LAYOUT, self.page, 0)
        return float(value), int(count)


def first_record(db: Path) -> str | None:
    """The name of the first record of an expanded database file (None when there is none)."""
    from berth.fsutil import read_text

    try:
        text = read_text(db, errors="replace")
    except OSError:
        return None
    for match in RECORD.finditer(text):
        if "$(" not in match.group(1):
            return match.group(1)
    return None


def _targets(env: dict[str, str], intf: str, port_vars: tuple[str, ...],
             default_port: int) -> list[tuple[str, int]]:
    port = default_port
    for var in port_vars:
        if env.get(var, "").strip().isdigit():
            port = int(env[var])
            break
    addresses = [a.split(":")[0] for a in env.get(intf, "").split()
                 if a.split(":")[0] not in ("", "0.0.0.0")]
    return [(a, port) for a in (addresses or [LOOPBACK_BROADCAST])]


def ca_targets(env: dict[str, str]) -> list[tuple[str, int]]:
    return _targets(env, "EPICS_CAS_INTF_ADDR_LIST",
                    ("EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT"), CA_PORT)


def pva_targets(env: dict[str, str]) -> list[tuple[str, int]]:
    return _targets(env, "EPICS_PVAS_INTF_ADDR_LIST",
                    ("EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT"), PVA_PORT)


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("0.0.0.0", 0))
    return sock


def _await_reply(sock: socket.socket, timeout: float, found: Callable[[bytes], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            return False
        if found(data):
            return True
    return False


def ca_search(name: str, targets: list[tuple[str, int]], timeout: float = 0.5) -> bool:
    """True when a CA server at `targets` answers a search for `name`."""
    cid = os.getpid() & 0x7FFFFFFF
    padded = name.encode() + b"\0"
    padded += b"\0" * (-len(padded) % 8)
    message = struct.pack(">HHHHII", 0, 0, 0, CA_MINOR_VERSION, 0, 0) + struct.pack(
        ">HHHHII", CA_SEARCH, len(padded), CA_DONT_REPLY, CA_MINOR_VERSION, cid, cid) + padded

    def found(data: bytes) -> bool:
        offset = 0
        while offset + 16 <= len(data):
            command, size, _, _, _, p2 = struct.unpack_from(">HHHHII", data, offset)
            if command == CA_SEARCH and p2 == cid:
                return True
            offset += 16 + size
        return False

    return _search(lambda _port: message, targets, timeout, found)


def _search(message: Callable[[int], bytes], targets: list[tuple[str, int]], timeout: float,
            found: Callable[[bytes], bool]) -> bool:
    """Send `message(our port)` to every target; True when a reply `found` arrives in time."""
    with _udp() as sock:
        request = message(sock.getsockname()[1])
        try:
            for target in targets:
                sock.sendto(request, target)
        except OSError:
            return False
        return _await_reply(sock, timeout, found)


def _pva_string(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw)]) + raw  # names are < 254 bytes


def pva_search(name: str, targets: list[tuple[str, int]], timeout: float = 0.5) -> bool:
    """True when a pvAccess server at `targets` answers a search for `name`."""
    sequence = search_id = os.getpid() & 0x7FFFFFFF

    def found(data: bytes) -> bool:
        if len(data) < 8 or data[0] != 0xCA or data[3] != PVA_SEARCH_RESPONSE:
            return False
        order = ">" if data[2] & 0x80 else "<"
        body = data[8:]
        try:
            (seq,) = struct.unpack_from(order + "I", body, 12)
            at = 12 + 4 + 16 + 2
            at += 1 + body[at]  # protocol name
            hit = body[at]
            (count,) = struct.unpack_from(order + "H", body, at + 1)
            ids = struct.unpack_from(order + f"{count}I", body, at + 3)
        except (struct.error, IndexError):
            return False
        return seq == sequence and bool(hit) and search_id in ids

    def message(port: int) -> bytes:  # replies come to our own port
        payload = (struct.pack("<I", sequence) + b"\0" * 4 + b"\0" * 16 + struct.pack("<H", port)
                   + b"\x01" + _pva_string("tcp") + struct.pack("<HI", 1, search_id)
                   + _pva_string(name))
        return struct.pack("<BBBBI", 0xCA, 2, 0, PVA_SEARCH, len(payload)) + payload

    return _search(message, targets, timeout, found)


def write_status(path: Path, status: dict[str, object]) -> None:
    """Replace the status file atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(status) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only runtime folder must not stop the IOC


def read_status(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def publish_unprobed(runtime_dir: Path) -> None:
    write_status(runtime_dir / STATUS_FILE, {"pid": os.getpid(), "phase": UNPROBED,
                                             "time": time.time()})


def health(runtime_dir: Path, pid: int | None, now: float | None = None) -> str:
    """What the runner of process `pid` last published: one of the phases. A file left by an
    earlier process (another pid) says nothing about this one: it is still starting. With a
    heartbeat watched, a heartbeat or a file older than its bound means not answering."""
    status = read_status(runtime_dir / STATUS_FILE)
    if pid is None or status is None or status.get("pid") != pid:
        return STARTING
    phase = status.get("phase")
    if phase == READY and isinstance(beat_at := status.get("heartbeat_time"), (int, float)):
        now = time.time() if now is None else now
        written = status.get("time")
        if now - beat_at > STALE_AFTER or (
                isinstance(written, (int, float)) and now - written > STATUS_STALE):
            return NOT_ANSWERING
    return str(phase) if phase in (STARTING, READY, NOT_ANSWERING, UNPROBED) else STARTING


class Prober:
    """Runs in a thread of the runner once iocInit completed: probe, publish, repeat."""

    FIRST_GRACE = 5.0  # seconds after iocInit before a silent IOC counts as not answering
    RECHECK = 10.0  # seconds between probes once answered

    def __init__(self, status_path: Path, pid: int, env: dict[str, str], pv: str | None,
                 heartbeat: Heartbeat | None = None, ioc_pid: int | None = None) -> None:
        self.path, self.pid, self.env, self.pv = status_path, pid, env, pv
        self.wants_pva = env.get("PVXS_QSRV_ENABLE", "").upper() == "YES"
        self.stopped = False
        self.heartbeat, self.ioc_pid = heartbeat, ioc_pid
        self.beat: tuple[float, int] = (0.0, 0)  # last value and write count seen
        self.beat_at = 0.0  # wall time it last advanced

    def publish(self, phase: str, **fields: object) -> None:
        extra: dict[str, object] = {} if self.ioc_pid is None else {"ioc_pid": self.ioc_pid}
        if self.beat_at:
            extra.update(heartbeat=self.beat[0], heartbeat_time=self.beat_at)
        write_status(self.path, {"pid": self.pid, "phase": phase, "pv": self.pv,
                                 "time": time.time(), **extra, **fields})

    def beat_fresh(self) -> bool | None:
        """Has the heartbeat advanced lately? None: the IOC has none (no health PVs)."""
        if self.heartbeat is None:
            return None
        value, count = self.heartbeat.read()
        if count == 0:
            return None
        now = time.time()
        if value != self.beat[0] or not self.beat_at:
            self.beat_at = now
        self.beat = (value, count)
        return now - self.beat_at <= STALE_AFTER

    def probe(self) -> dict[str, bool]:
        assert self.pv is not None
        result = {"ca": ca_search(self.pv, ca_targets(self.env))}
        if self.wants_pva:
            result["pva"] = pva_search(self.pv, pva_targets(self.env))
        return result

    def run(self) -> None:
        if self.pv is None:  # nothing to ask for: iocInit completing is all we know
            self.publish(READY, ioc_init=True)
            return
        init_at = time.monotonic()
        delay = 0.05
        phase, last, answers = STARTING, dict[str, bool](), dict[str, bool]()
        probe_at = published_at = 0.0
        while not self.stopped:
            now = time.monotonic()
            if now >= probe_at:
                answers = self.probe()
            fresh = self.beat_fresh()
            if all(answers.values()) and fresh is not False:
                new_phase = READY
            elif phase == READY or now - init_at > self.FIRST_GRACE:
                new_phase = NOT_ANSWERING
            else:
                new_phase = STARTING
            if new_phase != phase or answers != last or (
                    fresh is not None and now - published_at >= PUBLISH_EVERY):
                self.publish(new_phase, ioc_init=True, **answers)
                published_at = now
            if now >= probe_at:
                delay = self.RECHECK if new_phase == READY else min(delay * 2, 2.0)
                probe_at = now + delay
            phase, last = new_phase, answers
            time.sleep(min(delay, BEAT_EVERY) if self.heartbeat is not None else delay)


def _process_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def alive(runtime_dir: Path, env: dict[str, str], pv: str | None = None,
          timeout: float = 1.0) -> tuple[bool, str]:
    """The liveness probe (the image's liveness.sh): does the IOC answer a CA search for its
    own PV now? `pv` overrides the one its runner probes. Without a PV to ask for, a runner
    that saw iocInit complete (or runs a start.sh) and still runs counts as alive."""
    status = read_status(runtime_dir / STATUS_FILE)
    if status is None:
        return False, f"no {STATUS_FILE} in {runtime_dir}: no IOC started here"
    pv = pv or (str(status["pv"]) if status.get("pv") else None)
    if pv:
        if ca_search(pv, ca_targets(env), timeout):
            return True, f"{pv} answers"
        return False, f"{pv} does not answer a Channel Access search"
    if status.get("phase") in (READY, UNPROBED) and _process_alive(status.get("pid")):
        return True, f"the IOC runs (pid {status.get('pid')}; no PV to ask for)"
    return False, f"the IOC is {status.get('phase')} and has no PV to ask for"


def stop(runtime_dir: Path, timeout: float = 10.0) -> tuple[bool, str]:
    """End the IOC cleanly (the image's stop.sh): SIGTERM to its runner, which stops EPICS and
    exits; wait until it has ended."""
    import signal

    status = read_status(runtime_dir / STATUS_FILE)
    pid = status.get("pid") if status else None
    if not _process_alive(pid):
        return True, "no IOC runs here"
    assert isinstance(pid, int)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True, f"the IOC (pid {pid}) had already ended"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True, f"the IOC (pid {pid}) ended"
        time.sleep(0.05)
    return False, f"the IOC (pid {pid}) did not end within {timeout:.0f} s of SIGTERM"
