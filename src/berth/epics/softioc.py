"""Run an st.cmd on the embedded EPICS runtime, stopping at the first failing line.

Each line goes through `iocshCmd`, which treats a failing command as a break and returns
non-zero (measured on base 7.0.10). Running line by line instead of `iocsh(file)` with
`on error break` lets berth name the failing file, line number and text itself.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from berth.epics import libs as epics
from berth.epics.shellmark import IDLE_MARK

IOCSH_ARG_PDBBASE = 3  # iocshArgType: Int, Double, String, Pdbbase, ...


class _IocshArg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int)]


class _IocshFuncDef(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("nargs", ctypes.c_int),
        ("arg", ctypes.POINTER(ctypes.POINTER(_IocshArg))),
        ("usage", ctypes.c_char_p),
    ]


_IocshCallFunc = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class StartupFailure:
    """The first start-up line that failed."""

    def __init__(self, file: Path, line: int, text: str) -> None:
        self.file, self.line, self.text = file, line, text

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: start-up stopped at a failing line: {self.text}"


class SoftIoc:
    """The EPICS libraries loaded in this process plus the commands a Generic IOC binary would
    provide (here: `ioc_registerRecordDeviceDriver`)."""

    def __init__(self) -> None:
        self.libs = epics.load()
        self.libs.db_core.iocshRegisterCommon()
        self._keep: list[object] = []  # ctypes objects iocsh points into must stay alive
        self._register_record_device_driver()
        self.script: Path | None = None  # the start-up script run (devIocStats' ST_SCRIPT)
        from berth.epics import autosave, iocstats

        autosave.install(self)
        iocstats.install(self)

    def _register_record_device_driver(self) -> None:
        db_core, com = self.libs.db_core, self.libs.com
        db_core.registerAllRecordDeviceDrivers.argtypes = [ctypes.c_void_p]
        pdbbase = ctypes.c_void_p.in_dll(db_core, "pdbbase")

        def call(_args: int | None) -> None:
            status = db_core.registerAllRecordDeviceDrivers(pdbbase.value)
            if status:
                com.iocshSetError(status)

        arg = _IocshArg(b"pdbbase", IOCSH_ARG_PDBBASE)
        args = (ctypes.POINTER(_IocshArg) * 1)(ctypes.pointer(arg))
        definition = _IocshFuncDef(
            b"ioc_registerRecordDeviceDriver", 1, args,
            b"Register the record, device and driver support of the loaded dbd\n",
        )
        callback = _IocshCallFunc(call)
        self._keep += [arg, args, definition, callback]
        com.iocshRegister(ctypes.byref(definition), callback)

    def command(self, line: str) -> int:
        return int(self.libs.com.iocshCmd(line.encode()))

    def run_script(self, script: Path) -> StartupFailure | None:
        """Run `script` line by line, echoing each line as iocsh does for scripts."""
        self.script = script
        lines = script.read_text(errors="replace").splitlines()
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            print(raw, flush=True)
            if not line or line.startswith("#"):
                continue
            if self.command(line) != 0:
                return StartupFailure(script, number, line)
        sys.stdout.flush()
        return None

    def interactive(self) -> None:
        """The `epics>` shell on stdin/stdout; returns on `exit` or end of input.

        On a terminal this is a readline shell (line editing, arrow-key history, as a Generic IOC
        built with readline has; the PyPI EPICS has none) running each line through `iocshCmd`.
        Before each prompt it writes IDLE_MARK with the number of lines read so far: the runner
        strips it from the output and so knows when a piped command's output is complete."""
        if not os.isatty(0):
            self.libs.com.iocsh(None)
            return
        os.environ.setdefault("TERM", "vt100")  # readline needs a terminal type for its keys
        import readline  # importing it gives input() line editing and history

        # no terminal modes switched around each prompt: the log stays free of escape codes
        readline.parse_and_bind("set enable-bracketed-paste off")
        readline.parse_and_bind("set enable-meta-key off")

        libc = ctypes.CDLL(None)
        prompt = os.environ.get("IOCSH_PS1", "epics> ")
        lines = 0
        while True:
            sys.stdout.flush()
            libc.fflush(None)  # EPICS's own output (C stdio) first, then the mark
            os.write(1, IDLE_MARK % lines)
            try:
                line = input(prompt)
            except EOFError:
                return
            lines += 1
            if line.strip() in ("exit", "quit") or line.strip().startswith("exit "):
                return
            if line.strip():
                self.command(line)

    def exit(self, code: int) -> None:
        """Stop the IOC the EPICS way (runs its exit handlers), then the process."""
        from berth.epics import autosave

        autosave.at_exit()
        sys.stdout.flush()
        self.libs.com.epicsExit(code)
