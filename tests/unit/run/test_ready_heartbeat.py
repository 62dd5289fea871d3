"""Readiness from devIocStats' heartbeat: a real embedded IOC with the health PVs under `berth run`;
frozen (SIGSTOP), it is `not answering` within a bound; resumed, `ready` again."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from test_run import Ioc, iocs, loopback_epics, start, unique_prefix

from berth.run import ready

__all__ = ["iocs", "loopback_epics"]  # fixtures

# the prober looks every second; a heartbeat is stale after STALE_AFTER s
BOUND = ready.STALE_AFTER + 2 * ready.BEAT_EVERY + 1.0


def _status(ioc: Ioc) -> dict[str, object]:
    return json.loads((ioc.runtime / ready.STATUS_FILE).read_text())  # type: ignore[no-any-return]


def _until(check: Callable[[], bool], what: str, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not {what} within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_frozen_ioc_is_not_answering_within_a_bound_and_recovers(
        tmp_path: Path, iocs: list[Ioc]) -> None:
    config = tmp_path / "svc" / "config"
    config.mkdir(parents=True)
    prefix = unique_prefix()
    (config / "ioc.yaml").write_text(yaml.safe_dump({
        "ioc_name": "beat-test", "description": "readiness from the heartbeat",
        "entities": [{"type": "devIocStats.iocAdminSoft", "IOC": f"{prefix}STATS"}]}))
    ioc = start(iocs, config, tmp_path / "run")
    ioc.wait_ready()
    health: Callable[[], str] = lambda: ready.health(ioc.runtime, ioc.proc.pid)  # noqa: E731
    _until(lambda: health() == ready.READY and "heartbeat" in _status(ioc), "ready", 20)
    first = _status(ioc)
    assert isinstance(first["heartbeat"], float) and isinstance(first["heartbeat_time"], float)
    _until(lambda: _status(ioc)["heartbeat"] != first["heartbeat"], "a new heartbeat", 5)

    child = int(first["ioc_pid"])  # type: ignore[call-overload]
    os.kill(child, signal.SIGSTOP)  # its records stop processing; the runner still runs
    try:
        took = _until(lambda: health() == ready.NOT_ANSWERING, "not answering", BOUND)
        assert took >= ready.STALE_AFTER - ready.PUBLISH_EVERY - 1.0  # not at the first doubt
        # the runner says so too (ps may see the old heartbeat up to a check earlier)
        _until(lambda: _status(ioc)["phase"] == ready.NOT_ANSWERING, "published",
               2 * ready.BEAT_EVERY + 1)
    finally:
        os.kill(child, signal.SIGCONT)
    _until(lambda: health() == ready.READY, "ready again", BOUND)


def test_a_stale_status_file_or_heartbeat_reads_as_not_answering(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / ready.STATUS_FILE
    fresh = {"pid": 7, "phase": ready.READY, "time": now, "heartbeat": 3.0, "heartbeat_time": now}
    ready.write_status(path, fresh)
    assert ready.health(tmp_path, 7, now=now + 1) == ready.READY
    # the runner stopped writing (hung): the file itself grows old
    ready.write_status(path, {**fresh, "heartbeat_time": now + ready.STATUS_STALE})
    assert ready.health(tmp_path, 7, now=now + ready.STATUS_STALE + 1) == ready.NOT_ANSWERING
    # the runner writes, but the heartbeat stopped advancing
    ready.write_status(path, {**fresh, "time": now + ready.STALE_AFTER + 1})
    assert ready.health(tmp_path, 7, now=now + ready.STALE_AFTER + 1) == ready.NOT_ANSWERING
    # no heartbeat watched (no health PVs): the published phase alone counts
    ready.write_status(path, {"pid": 7, "phase": ready.READY, "time": now - 3600})
    assert ready.health(tmp_path, 7) == ready.READY
