"""Benchmark: `berth expand` against EPICS's own dbLoadTemplate on a 10,000-instance file.

    .venv/bin/python bench/bench_expand.py [--instances N] [--repeat R]

Both read the same substitution file and template (4 records, 26 macro references per
instance). berth expands it to text; EPICS's dbLoadTemplate (in a subprocess, after base.dbd)
expands it *and* creates the records. Both are timed around the work alone, best of R runs, and
the whole `berth expand` command line is timed too. Not run by CI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = """\
record(ai, "$(P)$(R)Value") {
    field(DESC, "$(DESC=channel)")
    field(INP, "$(P)$(R)Raw CP MS")
    field(EGU, "$(EGU=mm)")
    field(PREC, "$(PREC=3)")
    field(HOPR, "$(HIGH)")
    field(LOPR, "$(LOW=0)")
    field(SCAN, "$(SCAN=1 second)")
}
record(ao, "$(P)$(R)Raw") {
    field(DRVH, "$(HIGH)")
    field(DRVL, "$(LOW=0)")
    field(FLNK, "$(P)$(R)Calc")
}
record(calc, "$(P)$(R)Calc") {
    field(INPA, "$(P)$(R)Raw")
    field(CALC, "A*$(SCALE=1)")
}
record(bi, "$(P)$(R)Alarm") {
    field(ZNAM, "$(ZNAM=OK)")
    field(ONAM, "$(ONAM=ALARM)")
    field(DESC, "$(P)$(R) alarm")
}
"""
RECORDS_PER_INSTANCE = 4

EPICS_TIMER = r"""
import ctypes, os, sys, time
from berth.epics import libs as epics
os.environ["EPICS_DB_INCLUDE_PATH"] = epics.dbd_search_path()
libs = epics.load()
db = libs.db_core
db.iocshRegisterCommon()
assert db.dbLoadDatabase(b"base.dbd", None, None) == 0
db.registerAllRecordDeviceDrivers.argtypes = [ctypes.c_void_p]
db.registerAllRecordDeviceDrivers(ctypes.c_void_p.in_dll(db, "pdbbase"))
os.environ["EPICS_DB_INCLUDE_PATH"] = sys.argv[2]
db.dbLoadTemplate.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
start, start_cpu = time.perf_counter(), time.process_time()
status = db.dbLoadTemplate(sys.argv[1].encode(), None)
print(time.perf_counter() - start, time.process_time() - start_cpu, status)
"""


def write_inputs(folder: Path, instances: int) -> Path:
    (folder / "channel.template").write_text(TEMPLATE)
    rows = "\n".join(
        f'    {{ "BL01T-EA-DEV-{i // 100:02d}:", "CH{i % 100:02d}:", "{i * 10}", '
        f'"channel {i}", "{1 + i % 7}" }}' for i in range(instances))
    subst = folder / "bench.substitutions"
    subst.write_text(f'global {{ EGU=mA }}\nfile "channel.template" {{\n'
                     f'    pattern {{ P, R, HIGH, DESC, SCALE }}\n{rows}\n}}\n')
    return subst


def time_berth(subst: Path, repeat: int) -> tuple[float, float]:
    from berth.epics.substitutions import expand_substitutions

    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        expand_substitutions(subst, [subst.parent])
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    return best, best_cpu


def time_berth_cli(subst: Path, repeat: int) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "berth", "expand", "-S", str(subst), "-I",
                        str(subst.parent), "-o", str(subst.parent / "out.db")], check=True)
        best = min(best, time.perf_counter() - start)
    return best, float("nan")  # a whole process: wall time only


def time_epics(subst: Path, repeat: int) -> tuple[float, float]:
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", EPICS_TIMER, str(subst), str(subst.parent)],
                              capture_output=True, text=True, check=True)
        seconds, cpu, status = done.stdout.split()
        if status != "0":
            raise SystemExit(f"dbLoadTemplate failed: {done.stderr[-2000:]}")
        best, best_cpu = min(best, float(seconds)), min(best_cpu, float(cpu))
    return best, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subst = write_inputs(Path(tmp), args.instances)
        records = args.instances * RECORDS_PER_INSTANCE
        rows = [
            ("berth expand_substitutions (in process)", time_berth(subst, args.repeat)),
            ("berth expand (whole command line)", time_berth_cli(subst, args.repeat)),
            ("EPICS dbLoadTemplate (expands + creates records)", time_epics(subst, args.repeat)),
        ]
    print(f"{args.instances} instances, {records} records, best of {args.repeat}")
    print(f"{'what':50} {'wall s':>7} {'records/s':>10} {'cpu s':>7} {'records/cpu s':>14}")
    for name, (wall, cpu) in rows:
        cpu_text = f"{cpu:7.3f} {records / cpu:14,.0f}" if cpu == cpu else f"{'-':>7} {'-':>14}"
        print(f"{name:50} {wall:7.3f} {records / wall:10,.0f} {cpu_text}")
    berth, epics = rows[0][1], rows[2][1]
    print(f"EPICS / berth (in process): {epics[0] / berth[0]:.1f}x wall, "
          f"{epics[1] / berth[1]:.1f}x cpu")


if __name__ == "__main__":
    main()
