"""Wait for the devices of `wait_list.yaml` (ibek.wait_ip entities) to accept TCP connections."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berth.errors import BerthError, Location, Problem

RETRY_INTERVAL = 0.5


@dataclass(frozen=True)
class WaitTarget:
    device: str
    host: str
    port: int | None  # None: wait for the host to answer ping
    timeout: float  # seconds; 0 or less waits without limit
    line: int = 0


def parse_address(address: str) -> tuple[str, int | None]:
    """'host:port', '[v6]:port' or 'host' (no port)."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return address, None


def load(path: Path) -> list[WaitTarget]:
    import yaml

    try:
        with open(path) as f:
            nodes = yaml.compose(f, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BerthError(Problem(f"malformed wait list: {exc}",
                                 Location(path, mark.line + 1 if mark else 0))) from None
    if nodes is None:
        return []
    if not isinstance(nodes, yaml.SequenceNode):
        raise BerthError(Problem("a wait list is a YAML list of ibek.wait_ip entries",
                                 Location(path, nodes.start_mark.line + 1)))
    targets = []
    for index, node in enumerate(nodes.value, start=1):
        line = node.start_mark.line + 1
        entry = yaml.safe_load(yaml.serialize(node)) or {}
        where = Location(path, line)
        entity = f"entry {index} ({entry.get('device', '?')})"
        address = str(entry.get("address", ""))
        host, port = parse_address(address)
        if not host:
            raise BerthError(Problem("address is missing or empty", where, entity, "address"))
        try:
            timeout = float(entry.get("timeout", 0) or 0)
        except (TypeError, ValueError):
            raise BerthError(Problem("timeout must be a number of seconds", where, entity,
                                     "timeout")) from None
        targets.append(WaitTarget(str(entry.get("device", "")), host, port, timeout, line))
    return targets


def _ping(host: str, timeout: float) -> str | None:
    """None when `host` answers one ICMP echo (through the system's ping), else why not."""
    from berth.tools import call, find_tool

    try:
        find_tool("ping")
    except BerthError:
        return "no ping program to check a host without a port"
    seconds = max(1, int(timeout))
    try:
        done = call(["ping", "-c", "1", "-W", str(seconds), host], timeout=seconds + 5)
    except BerthError as exc:  # it hung past its own deadline, or could not start
        return str(exc)
    return None if done.returncode == 0 else "no answer to ping"


def _probe(target: WaitTarget, timeout: float) -> str | None:
    if target.port is None:
        return _ping(target.host, timeout)
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def wait_for(targets: list[WaitTarget], path: Path | None = None,
             log: Callable[[str], None] = print) -> None:
    """Block until each target accepts a TCP connection; BerthError naming the first that does
    not within its timeout."""
    for target in targets:
        where = target.host if target.port is None else f"{target.host}:{target.port}"
        log(f"berth: waiting for {target.device} at {where}"
            + (f" (up to {target.timeout:g} s)" if target.timeout > 0 else ""))
        deadline = time.monotonic() + target.timeout if target.timeout > 0 else None
        last_error = ""
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            attempt = 2.0 if remaining is None else min(2.0, max(0.05, remaining))
            why_not = _probe(target, attempt)
            if why_not is None:
                break
            last_error = why_not
            if deadline is not None and time.monotonic() >= deadline:
                raise BerthError(Problem(
                    f"device {target.device} at {where} did not answer within "
                    f"{target.timeout:g} s ({last_error})",
                    Location(path, target.line), f"wait_ip {target.device}", "address"))
            time.sleep(RETRY_INTERVAL if deadline is None
                       else max(0.0, min(RETRY_INTERVAL, deadline - time.monotonic())))
