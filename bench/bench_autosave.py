"""The CPU cost of one autosave save of 10,000 fields on the embedded soft IOC (not run by CI);
with --startup, also `berth run` start to first CA answer and IOC memory with autosave in use
next to the same IOC without it.

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_autosave.py [--startup]'

Loads 5,000 `ao` records (VAL and DESC saved: 10,000 fields) into real EPICS in this process,
runs iocInit, makes a periodic save set from a request file, then times `check(force=True)` —
what the save thread does each period: read every field with dbGetField, render the .sav text,
write .savB and .sav — as process CPU time, best and median of the rounds. Target: <= 50 ms.
--startup: 100 `ao` records in an st.cmd folder, once plain and once with their VAL and DESC
autosaved (pass 0 + pass 1 restore of a .sav written by an earlier round, a monitor set from the
info tags), alternating, medians (bench_run.py's measurements). Targets: <= +10 % start time,
<= +5 MB RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--startup-rounds", type=int, default=5)
    opts = parser.parse_args()
    if opts.startup:
        startup(opts.startup_rounds)
    os.environ.update({"EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
                       "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
                       "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
                       "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1"})
    from berth import paths
    from berth.epics import autosave, libs
    from berth.epics.softioc import SoftIoc

    work = Path(tempfile.mkdtemp(prefix="bench-autosave-"))
    (work / "bench.db").write_text("".join(
        f'record(ao, "B:{i}") {{ field(VAL, "{i * 0.001}") field(DESC, "record {i}") }}\n'
        for i in range(opts.records)))
    (work / "bench.req").write_text("".join(f"B:{i}.VAL\nB:{i}.DESC\n"
                                            for i in range(opts.records)))
    os.environ["EPICS_DB_INCLUDE_PATH"] = libs.dbd_search_path()
    ioc = SoftIoc()
    saver = autosave.install(ioc)
    assert saver is not None
    for line in (f'dbLoadDatabase "{paths.ASSETS / "ioc" / "dbd" / "ioc.dbd"}"',
                 "ioc_registerRecordDeviceDriver pdbbase", f'dbLoadRecords "{work}/bench.db"',
                 f'set_requestfile_path "{work}" ""', f'set_savefile_path "{work}" ""',
                 "iocInit", "create_manual_set bench.req"):
        if ioc.command(line):
            print(f"failed: {line}", file=sys.stderr)
            return 1
    save_set = saver.sets["bench.req"]
    fields = len(save_set.fields)
    cpu = []
    for _ in range(opts.rounds):
        start = time.process_time()
        saver.check(save_set, force=True)
        cpu.append(time.process_time() - start)
    size = (work / "bench.sav").stat().st_size
    print(f"fields saved        {fields}")
    print(f".sav size           {size / 1e6:.2f} MB")
    print(f"CPU per save        best {min(cpu) * 1e3:.1f} ms, median "
          f"{statistics.median(cpu) * 1e3:.1f} ms over {opts.rounds} rounds (target <= 50 ms)")
    print(f"load average        {os.getloadavg()[0]:.1f}")
    sys.stdout.flush()
    os._exit(0)  # no EPICS exit handlers needed; the temporary folder is left for inspection


def startup(rounds: int, records: int = 100) -> None:
    """Start time and RSS of `berth run` with and without autosave, in subprocesses."""
    import subprocess

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_run import LOOPBACK, alternating_starts, children, rss_kb

    os.environ.update(LOOPBACK)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached
    work = Path(tempfile.mkdtemp(prefix="bench-autosave-start-"))
    prefix = f"ASB{os.getpid()}:"
    runs: dict[str, list[str]] = {}
    for kind in ("without autosave", "with autosave"):
        on = kind == "with autosave"
        config = work / kind.split()[0] / "config"
        config.mkdir(parents=True)
        info = '  info(autosaveFields, "VAL DESC")\n' if on else ""
        (config / "records.db").write_text("".join(
            f'record(ao, "{prefix}R{n:03d}") {{\n  field(VAL, "{n}")\n'
            f'  field(DESC, "bench record")\n{info}}}\n' for n in range(records)))
        pre = (f'set_savefile_path("{config.parent}", "")\n'
               "set_pass0_restoreFile autosave_settings.sav\n"
               "set_pass1_restoreFile autosave_settings.sav\n") if on else ""
        post = "create_monitor_set autosave_settings.req, 5\n" if on else ""
        (config / "st.cmd").write_text(
            'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\n'
            f"ioc_registerRecordDeviceDriver pdbbase\ndbLoadRecords records.db\n{pre}iocInit\n"
            f"{post}")
        runs[kind] = [sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
                      str(config.parent / "runtime")]
    last_pv = f"{prefix}R{records - 1:03d}"
    times: dict[str, list[float]] = {k: [] for k in runs}
    rss: dict[str, list[int]] = {k: [] for k in runs}
    def measure(name: str, elapsed: float, proc: subprocess.Popen[bytes]) -> None:
        times[name].append(elapsed)
        (child,) = children(proc.pid)
        rss[name].append(rss_kb(child))

    alternating_starts(runs, rounds, last_pv, measure)  # its round 0 also writes the .sav
    base_t = statistics.median(times["without autosave"])
    base_m = statistics.median(rss["without autosave"])
    print(f"{records} records, {rounds} rounds, medians; load average {os.getloadavg()[0]:.1f}")
    for name in runs:
        t, m = statistics.median(times[name]), statistics.median(rss[name])
        print(f"{name:<18} start to first CA answer {t:.3f} s ({(t / base_t - 1) * 100:+.1f} %)"
              f", IOC RSS {m / 1024:.1f} MB ({(m - base_m) / 1024:+.1f} MB)")
    print("(targets: <= +10 % start time, <= +5 MB RSS)\n")


if __name__ == "__main__":
    sys.exit(main())
