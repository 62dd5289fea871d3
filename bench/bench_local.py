"""Benchmark of the local backend (not CI): `python bench/bench_local.py [--count 50]`.

In one run, on a generated beamline of COUNT soft IOCs of RECORDS records each:
  1. `berth up --wait` (returns once every IOC's runner has seen it answer), and until a fresh
     Channel Access client reads every IOC, next to starting the same IOCs as bare `berth run`
     processes without the supervisor (the ratio is the supervisor's cost);
  2. `berth ps` over all instances (median of 5);
  3. idle CPU of the IOCs plus supervisord over 10 s (percent of one core);
  4. time for a killed IOC (kill -9) to answer CA again (median of 3);
  5. `berth attach NAME` of a piped `dbl` (whole command, median of 5);
  6. `berth down -y` of every instance (until each IOC process has ended).
Targets: up ≤ 12 s for 50, ps (with readiness) ≤ 0.3 s, idle ≤ 10 %, killed IOC ≤ 3 s,
attach of a piped dbl ≤ 0.3 s, down of 6 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

LOOPBACK = {
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
}
os.environ.update(LOOPBACK)  # before aioca loads libca
# The IOCs' own settings: beacons stay on loopback (the repository's values, and bare runs' env)
SERVER_ENV = {
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
}
SERVER_LOOPBACK = "global:\n  env:\n" + "".join(
    f'    - {{name: {k}, value: "{v}"}}\n' for k, v in SERVER_ENV.items())


def _scan(i: int) -> str:
    return "1 second" if i % 10 == 0 else "Passive"  # a tenth of the records scan


def _set_prefix(repo: Path, old: str, new: str) -> None:
    for ioc_yaml in (repo / "services").glob("*/config/ioc.yaml"):
        ioc_yaml.write_text(ioc_yaml.read_text().replace(old, new))


def make_beamline(root: Path, count: int, records: int, tag: str) -> list[str]:
    """A Helm-layout repo of `count` soft IOCs; returns one PV per IOC (its last record)."""
    (root / "services").mkdir(parents=True)
    (root / "services" / "values.yaml").write_text(SERVER_LOOPBACK)
    db = "".join(
        f'record(calc, "$(P)CALC{i:03d}") {{\n  field(SCAN, "{_scan(i)}")\n'
        f'  field(INPA, "$(P)CALC{i:03d} NPP")\n  field(CALC, "A+1")\n}}\n'
        for i in range(records)
    )
    pvs = []
    for n in range(count):
        name = f"bench-ioc-{n:02d}"
        prefix = f"BENCH{tag}-IOC-{n:02d}"
        config = root / "services" / name / "config"
        config.mkdir(parents=True)
        (root / "services" / name / "values.yaml").write_text(
            "ioc-instance:\n  image: ghcr.io/berth/softioc:bench\n  env:\n"
            f"    - name: IOC_PREFIX\n      value: {prefix}\n")
        (config / "records.db").write_text(db)
        (config / "ioc.yaml").write_text(
            f"ioc_name: {name}\nentities:\n  - type: berth.Template\n    file: records.db\n"
            f'    macros: {{ P: "{prefix}:" }}\n')
        pvs.append(f"{prefix}:CALC{records - 1:03d}")
    return pvs


async def _wait_all(pvs: list[str], timeout: float) -> float:
    from aioca import caget

    start = time.monotonic()
    pending = list(pvs)
    while pending:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{len(pending)} PVs still silent, e.g. {pending[0]}")
        results = await caget(pending, timeout=1.0, throw=False)
        pending = [pv for pv, r in zip(pending, results, strict=True) if not r.ok]
    return time.monotonic() - start


_LOOP = asyncio.new_event_loop()  # aioca binds to one loop: use it for every wait


def wait_all(pvs: list[str], timeout: float = 120.0) -> float:
    return _LOOP.run_until_complete(_wait_all(pvs, timeout))


def _answers(pv: str, timeout: float) -> bool:
    """A fresh client's read (caproto: its own search each time, no channel cache)."""
    from caproto.sync.client import read

    try:
        read(pv, timeout=timeout, repeater=False)
    except Exception:  # noqa: BLE001 - any failure means: not answering
        return False
    return True


def killed_ioc_answers_again(pid: int, pv: str) -> float:
    """kill -9 an instance; seconds until a client's read of its PV succeeds again from the
    new process (the old one may answer a few ms while it dies: wait for the silence first)."""
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while _answers(pv, 0.2) and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    while not _answers(pv, 0.5):
        if time.monotonic() - t0 > 60:
            raise TimeoutError(f"{pv} silent 60 s after kill")
    return time.monotonic() - t0


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def berth(*args: str, env: dict[str, str], stdin: str | None = None
          ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "berth", *args], env=env, input=stdin,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"berth {' '.join(args)} failed: {result.stderr}")
    return result


def bare_runners(repo: Path, scratch: Path, pvs: list[str], env: dict[str, str]) -> float:
    """Start every instance as a bare `berth run` (no supervisor); seconds until all answer."""
    procs = []
    start = time.monotonic()
    for folder in sorted((repo / "services").iterdir()):
        if not folder.is_dir():
            continue
        runtime = scratch / folder.name
        run_env = {**env, **SERVER_ENV, "IOC_NAME": folder.name}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "berth", "run", str(folder / "config"), "--runtime-dir",
             str(runtime), "--console-socket", str(scratch / f"{folder.name[-2:]}.sock")],
            env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        wait_all(pvs)
        return time.monotonic() - start
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def tree_cpu(root_pid: int, reaped: bool = False) -> float:
    """CPU seconds (user+system) used so far by a process and all its live descendants; with
    `reaped`, also what their children that already ended used (a crash loop's short lives)."""
    ticks = os.sysconf("SC_CLK_TCK")
    last = 15 if reaped else 13  # stat fields 14-15 utime/stime, 16-17 cutime/cstime
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = sum(int(f) for f in fields[11:last]) / ticks
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()

    from berth.deploy.local import backend as local

    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    tag = uuid.uuid4().hex[:4].upper()
    repo = scratch / "repo"
    pvs = make_beamline(repo, args.count, args.records, tag)
    state = scratch / "state"
    env = {**os.environ, **LOOPBACK, "BERTH_STATE_DIR": str(state), "BERTH_REPO": str(repo)}
    figures: dict[str, float] = {}
    try:
        # Bare runners before and after the supervised run (the machine is shared and noisy),
        # with other PV prefixes so the runs never answer for each other.
        bare_root = scratch / "bare"
        bare_pvs = [pv.replace(f"BENCH{tag}-IOC", "BENCH-IOC") for pv in pvs]

        def bare() -> float:
            _set_prefix(repo, f"BENCH{tag}-IOC", "BENCH-IOC")
            shutil.rmtree(bare_root, ignore_errors=True)
            bare_root.mkdir()
            try:
                return bare_runners(repo, bare_root, bare_pvs, env)
            finally:
                _set_prefix(repo, "BENCH-IOC", f"BENCH{tag}-IOC")
                time.sleep(2)

        bare_times = [bare()]

        start = time.monotonic()
        berth("up", "--wait", "--timeout", "120", env=env)
        figures["up_wait_all_ready_s"] = time.monotonic() - start
        wait_all(pvs)
        figures["up_until_all_answer_s"] = time.monotonic() - start

        times = []
        for _ in range(5):
            t0 = time.monotonic()
            rows = json.loads(berth("ps", "--json", env=env).stdout)
            times.append(time.monotonic() - t0)
        assert sum(r["state"] == "running" for r in rows) == args.count, rows
        assert sum(bool(r.get("ready")) for r in rows) == args.count, "not all ready"
        figures["ps_median_s"] = statistics.median(times)
        backend = local.LocalBackend(repo, state)
        t0 = time.monotonic()
        backend.ps()
        figures["ps_backend_call_s"] = time.monotonic() - t0  # without interpreter start-up

        time.sleep(3)  # let start-up settle
        supervisor = int((state / "supervisord.pid").read_text())
        cpu0, t0 = tree_cpu(supervisor), time.monotonic()
        time.sleep(10)
        figures["idle_cpu_percent_of_a_core"] = 100 * (tree_cpu(supervisor) - cpu0) / (
            time.monotonic() - t0)

        kills = []
        for victim in (0, 1, 2):
            row = next(r for r in rows if r["name"] == f"bench-ioc-{victim:02d}")
            kills.append(killed_ioc_answers_again(row["pid"], pvs[victim]))
        figures["killed_ioc_answers_again_s"] = statistics.median(kills)

        wait_all(pvs)
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            out = berth("attach", "bench-ioc-03", env=env, stdin="dbl\n").stdout
            times.append(time.monotonic() - t0)
            assert pvs[3] in out, out
        figures["attach_piped_dbl_median_s"] = statistics.median(times)

        pids = [r["pid"] for r in json.loads(berth("ps", "--json", env=env).stdout)]
        t0 = time.monotonic()
        berth("down", "-y", env=env)
        while any(alive(pid) for pid in pids):
            time.sleep(0.01)
        figures["down_all_s"] = time.monotonic() - t0
        local.shutdown(state)
        bare_times.append(bare())
        figures["bare_runners_before_s"], figures["bare_runners_after_s"] = bare_times
    finally:
        local.shutdown(state)
        shutil.rmtree(scratch, ignore_errors=True)

    figures["up_over_bare_ratio"] = figures["up_until_all_answer_s"] / statistics.mean(bare_times)
    print(f"local backend, {args.count} IOCs x {args.records} records, "
          f"load average before: {load_before:.1f}")
    for key, value in figures.items():
        print(f"  {key:32s} {value:8.3f}")


if __name__ == "__main__":
    main()
