"""Benchmark of `berth run` (not run by CI): start-up time to the first Channel Access answer and
memory of the running IOC, next to a bare ctypes start of the same st.cmd, side by side in one run.

    .venv/bin/python bench/bench_run.py [--rounds 5] [--records 100]

(a) time from process start until a CA client reads the last of N records: `berth run` of an
    instance YAML (generation + ioc.db expansion + runner) vs. a minimal Python process that
    loads EPICS through ctypes and runs the generated st.cmd with `iocsh` — the floor for an
    IOC on the PyPI wheels. Targets: overhead <= 20 %, absolute <= 1.2 s.
(b) RSS of the process running EPICS (the runner's child) with N records. Target <= 45 MB.
Falls back to an st.cmd folder when berth.ioc.generate is not available.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# clients search, and the IOCs beacon, on loopback only
LOOPBACK = {
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
}

BARE = r"""
import ctypes, os, signal, sys
from berth.epics import libs as epics
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
os.environ["EPICS_DB_INCLUDE_PATH"] = sys.argv[2] + os.pathsep + epics.dbd_search_path()
os.environ["PVXS_QSRV_ENABLE"] = "YES"
libs = epics.load()
libs.db_core.iocshRegisterCommon()
if libs.com.iocsh(sys.argv[1].encode()):
    sys.exit(1)
signal.sigwait({signal.SIGINT, signal.SIGTERM})
libs.com.epicsExit(0)
"""


def instance_yaml(config: Path, prefix: str, records: int) -> None:
    (config / "records.db").write_text(
        'record(ao, "$(P)$(N)") {\n  field(VAL, "$(V)")\n  field(DESC, "bench record")\n}\n')
    lines = ["ioc_name: bench", "description: benchmark IOC", "entities:",
             "  - type: berth.Templates", "    templates:"]
    for n in range(records):
        macros = f"{{P: '{prefix}', N: 'R{n:03d}', V: '{n}'}}"
        lines.append(f"      - {{file: records.db, macros: {macros}}}")
    (config / "ioc.yaml").write_text("\n".join(lines) + "\n")


def stcmd_folder(config: Path, prefix: str, records: int) -> None:
    db = "".join(f'record(ao, "{prefix}R{n:03d}") {{\n  field(VAL, "{n}")\n'
                 f'  field(DESC, "bench record")\n}}\n' for n in range(records))
    (config / "records.db").write_text(db)
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        "dbLoadRecords records.db\niocInit\n")


def first_ca_answer(pv: str, began: float, proc: subprocess.Popen[bytes],
                    timeout: float = 30.0) -> float:
    from caproto.sync.client import read

    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"IOC exited with {proc.returncode}")
        try:
            read(pv, timeout=0.05, repeater=False)
            return time.monotonic() - began
        except Exception:
            pass
    raise RuntimeError(f"no CA answer from {pv} within {timeout} s")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def alternating_starts(runs: dict[str, list[str]], rounds: int, last_pv: str,
                       measure: Callable[[str, float, subprocess.Popen[bytes]], None]) -> None:
    """Start each command of *runs* in turn, once per round, and call ``measure(name, seconds to
    the first CA answer on last_pv, process)`` once the IOC has settled for a second. Round 0
    warms caches and is not measured; the order flips every round so that neither side always
    runs on the warmer machine."""
    for round_number in range(rounds + 1):
        for name in (list(runs) if round_number % 2 else list(reversed(runs))):
            began = time.monotonic()
            proc = subprocess.Popen(runs[name], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            try:
                elapsed = first_ca_answer(last_pv, began, proc)
                time.sleep(1.0)
                if round_number:
                    measure(name, elapsed, proc)
            finally:
                stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=100)
    args = parser.parse_args()
    os.environ.update(LOOPBACK)
    # Bytecode caching on, as in an installed berth (pip compiles it): with
    # PYTHONDONTWRITEBYTECODE set, every module of the editable install edited since its last
    # cached compile would be compiled again at every start of every IOC.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    use_yaml = all(importlib.util.find_spec(m) for m in ("berth.ioc.generate",
                                                          "berth.epics.substitutions"))
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    prefix = f"BENCH{os.getpid()}:"
    last_pv = f"{prefix}R{args.records - 1:03d}"
    runs: dict[str, list[str]] = {}
    for kind, make in (("instance YAML", instance_yaml), ("st.cmd + .db", stcmd_folder)):
        if kind == "instance YAML" and not use_yaml:
            continue
        config = work / kind.split()[0].replace(".", "") / "config"
        config.mkdir(parents=True)
        make(config, prefix, args.records)
        runs[f"berth run ({kind})"] = [sys.executable, "-m", "berth", "run", str(config),
                                       "--runtime-dir", str(config.parent / "runtime")]
    # The bare start runs the st.cmd of the st.cmd folder as berth maps it (same records).
    st_folder = work / "stcmd" / "config"
    bare_st_cmd = work / "bare.st.cmd"
    bare = [sys.executable, "-c", BARE, str(bare_st_cmd), str(st_folder)]
    if os.geteuid() == 0:  # same footing as berth run: no mlockall, no real-time priority
        bare = ["setpriv", "--bounding-set", "-sys_nice,-ipc_lock", *bare]
    runs["bare ctypes iocsh (st.cmd + .db)"] = bare
    # The floor loads EPICS base and QSRV only: berth's ioc.dbd also names devIocStats' device
    # support, which berth itself provides, so a bare process could not register it.
    floor_dbd = work / "floor.dbd"
    floor_dbd.write_text('include "base.dbd"\ninclude "pvxsIoc.dbd"\n')
    text = (st_folder / "st.cmd").read_text()
    bare_st_cmd.write_text(text.replace('cd "/epics/ioc"', f'cd "{st_folder}"').replace(
        "dbd/ioc.dbd", str(floor_dbd)).replace(
        "ioc_registerRecordDeviceDriver", "registerAllRecordDeviceDrivers"))

    times: dict[str, list[float]] = {name: [] for name in runs}
    rss: dict[str, list[int]] = {}

    def measure(name: str, elapsed: float, proc: subprocess.Popen[bytes]) -> None:
        times[name].append(elapsed)
        if name.startswith("berth"):
            (child,) = children(proc.pid)
            rss.setdefault(f"{name}: IOC process", []).append(rss_kb(child))
            rss.setdefault(f"{name}: console parent", []).append(rss_kb(proc.pid))
        else:
            rss.setdefault(name, []).append(rss_kb(proc.pid))

    alternating_starts(runs, args.rounds, last_pv, measure)

    bare_t = statistics.median(times["bare ctypes iocsh (st.cmd + .db)"])
    load = os.getloadavg()[0]
    print(f"\n{args.records} records; {args.rounds} rounds, medians; "
          f"{'root' if os.geteuid() == 0 else 'non-root'}; load average {load:.1f}\n")
    width = max(len(n) for n in [*times, *rss]) + 2
    print(f"{'start to first CA answer':<{width}}{'seconds':>9}{'overhead':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<{width}}{median:>9.3f}{(median / bare_t - 1) * 100:>9.1f}%")
    print("(targets: overhead <= 20 %, absolute <= 1.2 s)\n")
    print(f"{'resident memory (VmRSS)':<{width}}{'MB':>9}")
    for name, sizes in rss.items():
        print(f"{name:<{width}}{statistics.median(sizes) / 1024:>9.1f}")
    print("(target: IOC process <= 45 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
