"""The readiness probe against a real IOC (`berth run` of the example), and the log filters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.deploy.logs import LogQuery, select, strip_ansi
from berth.run import ready
from conftest import REPO_ROOT

CONFIG = REPO_ROOT / "examples" / "bl01b" / "services" / "bl01b-di-wave-01" / "config"


@pytest.fixture(scope="module")
def ioc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    runtime = tmp_path_factory.mktemp("ready") / "runtime"
    proc = subprocess.Popen([sys.executable, "-m", "berth", "run", str(CONFIG), "--runtime-dir",
                             str(runtime)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while ready.health(runtime, proc.pid) != ready.READY:
            assert proc.poll() is None, "the IOC exited"
            assert time.monotonic() < deadline, "the IOC never became ready"
            time.sleep(0.05)
        yield runtime
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_runner_publishes_ready_with_the_pv_it_asked_for(ioc: Path) -> None:
    status = json.loads((ioc / ready.STATUS_FILE).read_text())
    assert status["phase"] == "ready" and status["ca"] is True and status["pva"] is True
    assert status["pv"].startswith("BL01B-DI-WAVE-01:")


def test_searches_find_the_ioc_s_pv_and_not_others(ioc: Path) -> None:
    pv = json.loads((ioc / ready.STATUS_FILE).read_text())["pv"]
    env = dict(os.environ)
    assert ready.ca_search(pv, ready.ca_targets(env))
    assert ready.pva_search(pv, ready.pva_targets(env))
    assert not ready.ca_search(pv + "_NO_SUCH", ready.ca_targets(env), timeout=0.3)
    assert not ready.pva_search(pv + "_NO_SUCH", ready.pva_targets(env), timeout=0.3)


def test_a_status_file_of_another_process_means_starting(tmp_path: Path) -> None:
    ready.write_status(tmp_path / ready.STATUS_FILE, {"pid": 1, "phase": ready.READY})
    assert ready.health(tmp_path, 1) == ready.READY
    assert ready.health(tmp_path, 2) == ready.STARTING  # left by an earlier run
    assert ready.health(tmp_path / "missing", 1) == ready.STARTING


def test_probe_targets_follow_the_ioc_s_own_settings() -> None:
    env = {"EPICS_CAS_INTF_ADDR_LIST": "127.0.0.5", "EPICS_CAS_SERVER_PORT": "5100",
           "EPICS_PVAS_BROADCAST_PORT": "5200"}
    assert ready.ca_targets(env) == [("127.0.0.5", 5100)]
    assert ready.pva_targets(env) == [(ready.LOOPBACK_BROADCAST, 5200)]
    assert ready.ca_targets({}) == [(ready.LOOPBACK_BROADCAST, 5064)]


def test_log_selection_by_count_time_and_colour() -> None:
    text = ("[2026-12-04T10:00:00.000Z] one\n"
            "[2026-12-04T10:05:00.000Z] \x1b[31mtwo\x1b[0m\n"
            "  continued\n"
            "[2026-12-04T10:09:59.500Z] three\n")
    now = 1796379000.0  # 2026-12-04T10:10:00Z
    assert select(text, LogQuery(tail=2)).splitlines() == ["  continued",
                                                           "[2026-12-04T10:09:59.500Z] three"]
    assert len(select(text, LogQuery(since=300), now=now).splitlines()) == 3
    assert len(select(text, LogQuery(since=60), now=now).splitlines()) == 1
    assert strip_ansi(text).count("\x1b") == 0 and "two\n" in strip_ansi(text)
