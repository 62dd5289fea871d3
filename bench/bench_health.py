"""devIocStats' health PVs (with autosave) on the embedded soft IOC: `berth run` start to first CA
answer, IOC memory and idle CPU, next to the same IOC without them, in one run (not run by CI).

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_health.py'

Both instances are instance YAMLs with 100 `ao` records; "with health PVs" adds
`autosave.Autosave` (a monitor set of the records' VAL) and `devIocStats.iocAdminSoft` (119
records, served by berth.epics.iocstats). Alternating rounds, medians. Idle CPU: the IOC
process's user+system time over a quiet window after start-up (the statistics thread, the
1 Hz/10 Hz scans). Targets: <= +10 % start time, <= +5 MB RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import LOOPBACK, alternating_starts, children, rss_kb  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def config(folder: Path, prefix: str, records: int, health: bool) -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    info = '  info(autosaveFields, "VAL")\n' if health else ""
    (config / "records.db").write_text("".join(
        f'record(ao, "{prefix}R{n:03d}") {{\n  field(VAL, "{n}")\n{info}}}\n'
        for n in range(records)))
    entities: list[dict[str, object]] = [
        {"type": "berth.Template", "file": "records.db", "macros": {}}]
    if health:
        entities = [{"type": "autosave.Autosave", "P": f"{prefix}AS:"},
                    {"type": "devIocStats.iocAdminSoft", "IOC": f"{prefix}STATS"}, *entities]
    (config / "ioc.yaml").write_text(yaml.safe_dump(
        {"ioc_name": "bench-health", "description": "bench", "entities": entities}))
    return config


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU window")
    opts = parser.parse_args()
    os.environ.update(LOOPBACK)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached
    work = Path(tempfile.mkdtemp(prefix="bench-health-"))
    os.environ["AUTOSAVE_DIR"] = str(work / "data")
    (work / "data").mkdir()
    prefix = f"HLB{os.getpid()}:"
    runs = {}
    for kind in ("without health PVs", "with health PVs"):
        folder = config(work / kind.split()[0], prefix, opts.records, kind.startswith("with "))
        runs[kind] = [sys.executable, "-m", "berth", "run", str(folder), "--runtime-dir",
                      str(folder.parent / "runtime")]
    last_pv = f"{prefix}R{opts.records - 1:03d}"
    times: dict[str, list[float]] = {k: [] for k in runs}
    rss: dict[str, list[int]] = {k: [] for k in runs}
    idle: dict[str, list[float]] = {k: [] for k in runs}
    def measure(name: str, elapsed: float, proc: subprocess.Popen[bytes]) -> None:
        (child,) = children(proc.pid)
        times[name].append(elapsed)
        rss[name].append(rss_kb(child))
        before = cpu_seconds(child)
        time.sleep(opts.idle)
        idle[name].append((cpu_seconds(child) - before) / opts.idle)

    alternating_starts(runs, opts.rounds, last_pv, measure)
    base_t = statistics.median(times["without health PVs"])
    base_m = statistics.median(rss["without health PVs"])
    print(f"{opts.records} records, {opts.rounds} rounds, medians; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name in runs:
        t, m = statistics.median(times[name]), statistics.median(rss[name])
        cpu = statistics.median(idle[name]) * 100
        print(f"{name:<19} start to first CA answer {t:.3f} s ({(t / base_t - 1) * 100:+.1f} %)"
              f", IOC RSS {m / 1024:.1f} MB ({(m - base_m) / 1024:+.1f} MB)"
              f", idle CPU {cpu:.2f} %")
    print("(targets: <= +10 % start time, <= +5 MB RSS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
