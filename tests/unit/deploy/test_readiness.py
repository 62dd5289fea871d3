"""Readiness, `--wait` and logs on the local backend, end to end: the example beamline under a real
supervisord, real IOCs, a real CA client. The runner of each IOC probes one of its own PVs after
iocInit; `ps` shows what it found, `--wait` returns only once every PV answers."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_local import (
    CA_PVS,
    Beamline,
    ca_get,
    wait_until,
)

STAMPED = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] ")


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    from berth.deploy.local import backend as local

    line = Beamline.of_example(tmp_path_factory.mktemp("ready"))
    try:
        yield line
    finally:
        local.shutdown(line.state)


def test_up_wait_returns_once_every_pv_answers(beamline: Beamline) -> None:
    beamline.ok("up", "--wait", "--timeout", "60")
    # No retry: when --wait has returned, every IOC answers at once.
    for name, pvs in CA_PVS.items():
        assert ca_get(beamline.pv(pvs[0]), timeout=2.0) is not None, name
    rows = beamline.ps()
    assert {n for n, r in rows.items() if r["ready"]} == set(CA_PVS)
    assert all(rows[n]["health"] == "ready" for n in CA_PVS)
    table = beamline.ok("ps")
    assert table.splitlines()[0].split()[:3] == ["NAME", "STATE", "READY"]


def _ioc_child(runner_pid: int) -> int:
    children = Path(f"/proc/{runner_pid}/task/{runner_pid}/children").read_text().split()
    return int(children[0])


def test_a_hung_ioc_is_shown_not_answering_and_recovers(beamline: Beamline) -> None:
    name = "bl01b-ea-cnt-01"
    ioc = _ioc_child(beamline.ps()[name]["pid"])
    os.kill(ioc, signal.SIGSTOP)  # alive, but answers nothing: what a hung IOC looks like
    try:
        row = wait_until(lambda: (r := beamline.ps()[name])["health"] == "not answering" and r,
                         "not answering", timeout=40)
        assert row["state"] == "running" and row["ready"] is False
        assert beamline.ps()["bl01b-ea-sum-01"]["ready"]  # the others are not affected
    finally:
        os.kill(ioc, signal.SIGCONT)
    wait_until(lambda: beamline.ps()[name]["ready"], "ready again", timeout=40)


def test_restart_wait_and_a_wait_that_fails_with_the_log(beamline: Beamline) -> None:
    name = "bl01b-ea-sum-01"
    beamline.ok("restart", name, "--wait")
    assert beamline.ps()[name]["ready"]
    assert ca_get(beamline.pv("EA-SUM-01:SUM"), timeout=2.0) is not None

    bad = beamline.repo / "services" / "bl01b-ea-bad-01"
    (bad / "config").mkdir(parents=True)
    (bad / "values.yaml").write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:1\n")
    (bad / "config" / "ioc.yaml").write_text(
        "ioc_name: bad\nentities:\n  - type: berth.Template\n    file: missing.db\n")
    try:
        started = time.monotonic()
        result = beamline.berth("deploy-local", "--force", "--wait", "--timeout", "6", str(bad))
        assert result.returncode == 1, result.stderr
        assert time.monotonic() - started < 30
        assert "bl01b-ea-bad-01 is not ready after 6 s" in result.stderr
        assert "missing.db" in result.stdout  # the end of its log
        assert "Traceback" not in result.stderr
    finally:
        beamline.ok("delete", "-y", "bl01b-ea-bad-01")
        shutil.rmtree(bad)


def test_log_lines_are_time_stamped_and_can_be_cut(beamline: Beamline) -> None:
    name = "bl01b-va-alarm-01"
    lines = beamline.ok("logs", name).splitlines()
    assert any("iocInit" in line for line in lines)
    assert lines and all(STAMPED.match(line) for line in lines), lines[:5]
    assert len(beamline.ok("logs", name, "--tail", "2").splitlines()) == 2
    assert beamline.ok("logs", name, "--since", "1h").splitlines() == lines
    time.sleep(1.1)
    assert beamline.ok("logs", name, "--since", "0s").strip() == ""
    bad = beamline.berth("logs", name, "--since", "soon")
    assert bad.returncode == 2 and "expected a duration" in bad.stderr


def test_console_input_is_logged_with_the_unix_user(beamline: Beamline) -> None:
    name = "bl01b-mo-sim-01"
    shell = subprocess.run([sys.executable, "-m", "berth", "attach", name], input=b"dbl\n",
                           env={**os.environ, **beamline.env}, capture_output=True, timeout=30)
    assert shell.returncode == 0, shell.stderr
    assert beamline.pv("MO-SIM-01:X").encode() in shell.stdout
    user = pwd.getpwuid(os.getuid()).pw_name
    wait_until(lambda: f"console input from {user}: dbl" in beamline.ok("logs", name),
               "the logged input")
