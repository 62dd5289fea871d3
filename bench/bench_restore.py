"""Benchmark of recovery on the local backend (not CI):
`python bench/bench_restore.py [--counts 50,100] [--crash-seconds 300]`.

In one run:
  1. for each COUNT: a cold `berth up` of COUNT soft IOCs until every IOC answers Channel
     Access, then `kill -9` of supervisord and `berth up` until every IOC answers again
     (restore), side by side (target: restore ≤ 1.5 × cold up);
  2. the CPU of one crash-looping IOC over CRASH_SECONDS, twice: one whose start-up fails (a
     missing database file) and a real IOC that comes up and dies 3 s later; the supervisor's
     process tree, reaped children included (target ≤ 1 % of a core), and how many starts it
     made.
Public tools only: the CA client (aioca, caproto) and /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_local import (  # noqa: E402
    LOOPBACK,
    SERVER_LOOPBACK,
    alive,
    berth,
    make_beamline,
    tree_cpu,
    wait_all,
)


def restore(count: int, scratch: Path) -> dict[str, float]:
    from berth.deploy.local import backend as local

    tag = uuid.uuid4().hex[:4].upper()
    repo = scratch / f"repo{count}"
    pvs = make_beamline(repo, count, 20, tag)
    state = scratch / f"state{count}"
    env = {**os.environ, **LOOPBACK, "BERTH_STATE_DIR": str(state), "BERTH_REPO": str(repo)}
    figures: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        berth("up", env=env)
        wait_all(pvs, 600)
        figures["cold_up_s"] = time.monotonic() - t0
        time.sleep(12)  # every IOC a good start (ran ≥ the initial back-off)
        rows = json.loads(berth("ps", "--json", env=env).stdout)
        old = [r["pid"] for r in rows if r["pid"]]
        supervisor = int((state / "supervisord.pid").read_text())
        t0 = time.monotonic()
        os.kill(supervisor, signal.SIGKILL)
        while any(alive(p) for p in old):
            time.sleep(0.01)
        figures["old_iocs_gone_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        berth("up", env=env)
        figures["restoring_up_command_s"] = time.monotonic() - t1
        wait_all(pvs, 600)
        figures["restore_until_all_answer_s"] = time.monotonic() - t0
        figures["restore_over_cold_up"] = (figures["restore_until_all_answer_s"]
                                           / figures["cold_up_s"])
    finally:
        local.shutdown(state)
    return figures


def crash_loop_cpu(seconds: float, scratch: Path, kind: str) -> dict[str, float]:
    """A crash loop of one IOC for `seconds`. `kind` "failing": its start-up fails (a missing
    database file); "short": a real IOC that comes up and is killed 3 s later (a start.sh
    running `berth run` under `timeout`)."""
    from berth.deploy.local import backend as local

    repo = scratch / f"crash-{kind}"
    bad = repo / "services" / "bench-bad-01"
    (bad / "config").mkdir(parents=True)
    (repo / "services" / "values.yaml").write_text(SERVER_LOOPBACK)
    (bad / "values.yaml").write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:bench\n")
    if kind == "failing":
        (bad / "config" / "ioc.yaml").write_text(
            "ioc_name: bad\nentities:\n  - type: berth.Template\n    file: missing.db\n")
    else:
        inner = scratch / f"inner-{kind}"
        make_beamline(inner, 1, 100, uuid.uuid4().hex[:4].upper())
        config = next((inner / "services").glob("*/config"))
        start = bad / "config" / "start.sh"
        start.write_text(f'#!/bin/sh\nexec timeout -s KILL 3 {sys.executable} -m berth run '
                         f'{config} --runtime-dir "$RUNTIME_DIR/inner"\n')
        start.chmod(0o755)
    state = scratch / f"crash-state-{kind}"
    env = {**os.environ, **LOOPBACK, "BERTH_STATE_DIR": str(state), "BERTH_REPO": str(repo)}
    try:
        berth("deploy-local", "--force", str(bad), env=env)
        supervisor = int((state / "supervisord.pid").read_text())
        # supervisord's own idle CPU is counted too: it is what the loop costs in all.
        cpu0, t0 = tree_cpu(supervisor, reaped=True), time.monotonic()
        time.sleep(seconds)
        cpu = tree_cpu(supervisor, reaped=True) - cpu0
        took = time.monotonic() - t0
        row = json.loads(berth("ps", "--json", env=env).stdout)[0]
        return {"crash_loop_seconds": took, "crash_loop_cpu_percent": 100 * cpu / took,
                "crash_loop_starts": float(row["restarts"] + 1)}
    finally:
        local.shutdown(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="50,100")
    parser.add_argument("--crash-seconds", type=float, default=300.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="berth-restore-"))
    results: dict[str, dict[str, float]] = {}
    try:
        print(f"local backend recovery, load average before: {load_before:.1f}", flush=True)
        for count in (int(c) for c in args.counts.split(",") if c):
            results[f"{count} IOCs"] = restore(count, scratch)
            _show(f"{count} IOCs", results[f"{count} IOCs"])
        for kind in ("failing", "short") if args.crash_seconds > 0 else ():
            title = f"crash loop ({kind})"
            results[title] = crash_loop_cpu(args.crash_seconds, scratch, kind)
            _show(title, results[title])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _show(title: str, figures: dict[str, float]) -> None:
    print(title)
    for key, value in figures.items():
        print(f"  {key:32s} {value:8.3f}", flush=True)


if __name__ == "__main__":
    main()
