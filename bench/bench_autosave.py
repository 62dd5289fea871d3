"""The CPU cost of one autosave save of 10,000 fields on the embedded soft IOC (not run by CI).

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/bench_autosave.py'

Loads 5,000 `ao` records (VAL and DESC saved: 10,000 fields) into real EPICS in this process,
runs iocInit, makes a periodic save set from a request file, then times `check(force=True)` —
what the save thread does each period: read every field with dbGetField, render the .sav text,
write .savB and .sav — as process CPU time, best and median of the rounds. Target: <= 50 ms.
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
    opts = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
