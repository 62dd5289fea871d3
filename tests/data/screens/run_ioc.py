"""Run a real embedded EPICS IOC for a test: `python run_ioc.py ST_CMD`.

Loads EPICS base and pvxs through berth.epics.libs, runs the st.cmd, then waits until it
is killed. SIGTERM/SIGINT are blocked before EPICS starts its threads and then awaited here,
so the IOC exits cleanly when the test stops it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def main() -> int:
    from berth.epics import libs as epics

    os.environ.setdefault("EPICS_DB_INCLUDE_PATH", epics.dbd_search_path())
    os.environ.setdefault("PVXS_QSRV_ENABLE", "YES")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    libs = epics.load()
    libs.db_core.iocshRegisterCommon()
    iocsh = libs.com.iocsh
    iocsh.argtypes = [ctypes.c_char_p]
    status = iocsh(sys.argv[1].encode())
    if status != 0:
        print(f"st.cmd failed with status {status}", file=sys.stderr, flush=True)
        return 1
    print("IOC READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    libs.com.epicsExit.argtypes = [ctypes.c_int]
    libs.com.epicsExit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
