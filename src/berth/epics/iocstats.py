"""devIocStats on the embedded soft IOC: its device support and subroutines, written in Python.

The databases (assets/softioc/iocStats/db) keep devIocStats' record names, types and DTYPs, so
this module registers, through ctypes, what the compiled module would: the dsets "IOC stats"
(ai, ao, stringin, waveform), "IOC env var", "IOC epics var" (stringin) and the subroutines
`rebootProc`, `scanMonInit`, `scanMon`. Values are read from /proc and EPICS the way
devIocStats' Linux code reads them, by one thread at devIocStats' rates (memory and CPU every
10 s, file descriptors 20 s, CA 15 s, queues 1 s; the *_UPD_TIME PVs change them), which then
asks EPICS to process the "I/O Intr" records of that group. `$(IOC):HEARTBEAT`, TOD and
STARTTOD are base records (calcout, Soft Timestamp) and need nothing from here.

START_CNT also survives restarts without autosave: it is kept in the data folder
($AUTOSAVE_DIR). SYSRESET stops the IOC (as SIGTERM does) so its supervisor starts it again.
Nothing here stops the IOC: a problem is one log line prefixed `iocStats:`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from pathlib import Path

from berth.epics import libs as epics

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from berth.epics.autosave import Database
    from berth.epics.softioc import SoftIoc

HOOK_AFTER_INIT_DEV_SUP, HOOK_AFTER_IOC_RUNNING = 6, 16  # initHookState (initHooks.h)
NO_CONVERT = 2  # read_ai's "VAL is set, do not convert RVAL"
NOT_AVAILABLE = "Not available"
# group -> seconds between updates (devIocStats' defaults, before the *_UPD_TIME records' PINI)
RATES = {"memory": 10.0, "load": 20.0, "fd": 10.0, "ca": 15.0, "queue": 1.0}
RATE_PARMS = {"memory_scan_rate": "memory", "cpu_scan_rate": "load", "fd_scan_rate": "fd",
              "ca_scan_rate": "ca"}
GROUP = {
    **dict.fromkeys(("free_bytes", "allocated_bytes", "total_bytes"), "memory"),
    **dict.fromkeys(("sys_cpuload", "ioc_cpuload", "cpu", "no_of_cpus", "suspended_tasks"),
                    "load"),
    "fd": "fd", "maxfd": "fd", "ca_clients": "ca", "ca_connections": "ca",
    **{f"{q}Queue{what}": "queue" for q in ("scanOnce", "cbLow", "cbMedium", "cbHigh")
       for what in ("HiWtrMrk", "Used", "Overruns")},
}
COUNT_FILE = "iocStats-{}.count"  # START_CNT of record {} in the data folder


def log(message: str) -> None:
    print(f"iocStats: {message}", flush=True)


class _Dset(ctypes.Structure):
    _fields_ = [("number", ctypes.c_long), *((n, ctypes.c_void_p) for n in (
        "report", "init", "init_record", "get_ioint_info", "io", "special_linconv"))]


class _ScanOnceStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("size", "numUsed", "maxUsed", "numOverflow")]


class _CallbackStats(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int), ("numUsed", ctypes.c_int * 3),
                ("maxUsed", ctypes.c_int * 3), ("numOverflow", ctypes.c_int * 3)]


_RecordFunc = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p)
_IointFunc = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_TaskFault = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class _Record:
    """One record our device support serves: its parameter and field addresses."""

    __slots__ = ("name", "parm", "kind", "fields")

    def __init__(self, name: str, parm: str, kind: str) -> None:
        self.name, self.parm, self.kind = name, parm, kind
        self.fields: dict[str, tuple[int, int]] = {}  # field -> (address, elements)


def _uptime(seconds: float) -> str:
    """devIocStats' UPTIME text: `[N days, ]HH:MM:SS`."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    if not days:
        return clock
    return f"{'1 day' if days == 1 else f'{days} days'}, {clock}"


def memory() -> dict[str, float]:
    """This process's resident memory; the host's free (free + buffers + cached) and total."""
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGESIZE")
    info: dict[str, float] = {}
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemFree", "Buffers", "Cached"):
                info[key] = float(rest.split()[0]) * 1024
    free = info.get("MemFree", 0.0) + info.get("Buffers", 0.0) + info.get("Cached", 0.0)
    return {"allocated_bytes": float(resident), "free_bytes": free,
            "total_bytes": info.get("MemTotal", 0.0)}


def host_cpu_seconds() -> float:
    """user + nice + system time of all CPUs, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return sum(int(v) for v in fields[1:4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def file_descriptors() -> dict[str, float]:
    import resource

    used = len(os.listdir("/proc/self/fd")) - 1  # not the one listdir itself holds
    return {"fd": float(used), "maxfd": float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])}


def epics_version() -> str:
    """EPICS_VERSION_STRING of the loaded base (devIocStats' EPICS_VERS)."""
    header = epics.base_dbd_dir().parent / "include" / "epicsVersion.h"
    with contextlib.suppress(OSError):
        for line in header.read_text().splitlines():
            if line.startswith("#define EPICS_VERSION_STRING"):
                return line.split('"')[1]
    return NOT_AVAILABLE


class IocStats:
    """The devIocStats state of this IOC process (one per process, as in the module)."""

    def __init__(self, ioc: SoftIoc) -> None:
        from berth.epics.autosave import Database

        self.ioc = ioc
        self.db: Database = Database(ioc.libs)
        self.dbc, self.com = ioc.libs.db_core, ioc.libs.com
        vp, cp = ctypes.c_void_p, ctypes.c_char_p
        for lib, name, args, res in (
                (self.dbc, "registryDeviceSupportAdd", [cp, vp], ctypes.c_int),
                (self.dbc, "registryFunctionAdd", [cp, vp], ctypes.c_int),
                (self.dbc, "dbGetString", [vp], cp),
                (self.dbc, "dbGetRecordTypeName", [vp], cp),
                (self.dbc, "dbGetNRecords", [vp], ctypes.c_int),
                (self.dbc, "scanIoInit", [vp], None),
                (self.dbc, "scanIoRequest", [vp], ctypes.c_uint),
                (self.dbc, "scanPeriod", [ctypes.c_int], ctypes.c_double),
                (self.dbc, "casStatsFetch", [vp, vp], None),
                (self.dbc, "scanOnceQueueStatus", [ctypes.c_int, vp], ctypes.c_int),
                (self.dbc, "callbackQueueStatus", [ctypes.c_int, vp], ctypes.c_int),
                (self.com, "envGetConfigParamPtr", [vp], cp),
                (self.com, "taskwdAnyInsert", [vp, _TaskFault, vp], None)):
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
        self.started = time.time()
        self.rates = dict(RATES)
        self.values: dict[str, float] = {}
        self.strings: dict[str, str] = {}
        self.records: dict[int, _Record] = {}
        self.scan_mon: dict[int, tuple[float, float]] = {}  # sub record -> (period, last time)
        self.suspended = 0
        self.cpu_mark = (time.monotonic(), host_cpu_seconds(), process_cpu_seconds())
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.scan_script: str | None = None
        self._keep: list[object] = []
        self.pvt = {group: ctypes.c_void_p() for group in RATES}
        for pvt in self.pvt.values():
            self.dbc.scanIoInit(ctypes.byref(pvt))
        self._register()

    # ---- registration ---------------------------------------------------------------------
    def _register(self) -> None:
        init = _RecordFunc(self._init_record)
        ioint = _IointFunc(self._ioint)
        dsets = {
            "devAiStats": (init, ioint, _RecordFunc(self._read_ai)),
            "devAoStats": (init, None, _RecordFunc(self._write_ao)),
            "devStringinStats": (init, None, _RecordFunc(self._read_string(self._stat))),
            "devStringinEnvVar": (init, None, _RecordFunc(self._read_string(self._env))),
            "devStringinEpics": (init, None, _RecordFunc(self._read_string(self._epics))),
            "devWaveformStats": (init, None, _RecordFunc(self._read_waveform)),
        }
        for name, (init_fn, ioint_fn, io_fn) in dsets.items():
            dset = _Dset(6, None, None, ctypes.cast(init_fn, ctypes.c_void_p),
                         ctypes.cast(ioint_fn, ctypes.c_void_p) if ioint_fn else None,
                         ctypes.cast(io_fn, ctypes.c_void_p), None)
            key = ctypes.create_string_buffer(name.encode())  # the registry keeps the pointer
            self._keep += [dset, io_fn, key]
            self.dbc.registryDeviceSupportAdd(key, ctypes.byref(dset))
        for name, fn in (("rebootProc", self._reboot), ("scanMonInit", self._scan_mon_init),
                         ("scanMon", self._scan_mon)):
            callback = _RecordFunc(fn)
            key = ctypes.create_string_buffer(name.encode())
            self._keep += [callback, key]
            self.dbc.registryFunctionAdd(key, ctypes.cast(callback, ctypes.c_void_p))
        fault = _TaskFault(self._task_fault)
        self.com.taskwdAnyInsert(None, fault, None)
        hook_type = ctypes.CFUNCTYPE(None, ctypes.c_int)
        hook = hook_type(self._hook)
        self._keep += [init, ioint, fault, hook]
        register = self.com.initHookRegister
        register.argtypes = [hook_type]
        register(hook)

    def _hook(self, state: int) -> None:
        try:
            if state == HOOK_AFTER_INIT_DEV_SUP:
                self._restore_start_counts()
            elif state == HOOK_AFTER_IOC_RUNNING:
                self._save_start_counts()
                threading.Thread(target=self._loop, name="iocStats", daemon=True).start()
        except Exception as err:  # nothing here stops the IOC
            log(f"unexpected error at init hook {state}: {err!r}")

    # ---- record access ---------------------------------------------------------------------
    def _field(self, rec: _Record, field: str) -> tuple[int, int]:
        found = rec.fields.get(field)
        if found is None:
            addr = self.db.address(f"{rec.name}.{field}")
            found = (addr.pfield or 0, int(addr.no_elements)) if addr else (0, 0)
            rec.fields[field] = found
        return found

    def _record(self, prec: int) -> _Record:
        rec = self.records.get(prec)
        if rec is None:  # a sub record: known by its address only
            rec = self.records[prec] = _Record(ctypes.string_at(prec).decode(), "", "sub")
        return rec

    def _put_double(self, rec: _Record, field: str, value: float) -> None:
        address = self._field(rec, field)[0]
        if address:
            ctypes.c_double.from_address(address).value = value

    def _get_double(self, rec: _Record, field: str) -> float:
        address = self._field(rec, field)[0]
        return float(ctypes.c_double.from_address(address).value) if address else 0.0

    def _defined(self, rec: _Record) -> None:
        address = self._field(rec, "UDF")[0]
        if address:
            ctypes.c_ubyte.from_address(address).value = 0

    def _init_record(self, prec: int) -> int:
        try:
            name = ctypes.string_at(prec).decode()
            with self.db.entry() as entry:
                link = ""
                for field in ("INP", "OUT"):
                    if self.dbc.dbFindRecord(entry, f"{name}.{field}".encode()) == 0:
                        link = (self.dbc.dbGetString(entry) or b"").decode()
                        break
            self.records[prec] = _Record(name, link.strip().lstrip("@").strip(), "")
        except Exception as err:
            log(f"record init: {err!r}")
            return 1
        return 0

    def _ioint(self, _cmd: int, prec: int, ppvt: int) -> int:
        rec = self.records.get(prec)
        group = GROUP.get(rec.parm) if rec else None
        if group is not None and ppvt:
            ctypes.c_void_p.from_address(ppvt).value = self.pvt[group].value
        return 0

    def _read_ai(self, prec: int) -> int:
        rec = self.records.get(prec)
        if rec is None:
            return 1
        with self.lock:
            value = self.values.get(rec.parm)
        if value is None:
            value = self._static(rec.parm)
        self._put_double(rec, "VAL", value)
        self._defined(rec)
        return NO_CONVERT

    def _write_ao(self, prec: int) -> int:
        rec = self.records.get(prec)
        group = RATE_PARMS.get(rec.parm) if rec else None
        if rec is not None and group is not None:
            seconds = self._get_double(rec, "VAL")
            if seconds >= 1:
                self.rates[group] = seconds
                self.wake.set()
        return 0

    def _read_string(self, source: Callable[[str], str]) -> Callable[[int], int]:
        def read(prec: int) -> int:
            rec = self.records.get(prec)
            if rec is None:
                return 1
            address = self._field(rec, "VAL")[0]
            if address:
                data = source(rec.parm).encode(errors="replace")[:39] + b"\0"
                ctypes.memmove(address, data, len(data))
                self._defined(rec)
            return 0
        return read

    def _read_waveform(self, prec: int) -> int:
        rec = self.records.get(prec)
        if rec is None:
            return 1
        address, count = self._field(rec, "VAL")
        nord = self._field(rec, "NORD")[0]
        if address and nord and count:
            data = self._stat(rec.parm).encode(errors="replace")[:count - 1] + b"\0"
            ctypes.memmove(address, data, len(data))
            ctypes.c_uint32.from_address(nord).value = len(data)
            self._defined(rec)
        return 0

    # ---- values ----------------------------------------------------------------------------
    def _static(self, parm: str) -> float:
        if parm == "records":
            return float(self.record_count())
        if parm == "proc_id":
            return float(os.getpid())
        if parm == "parent_proc_id":
            return float(os.getppid())
        if parm == "no_of_cpus":
            return float(os.cpu_count() or 1)
        if parm == "scanOnceQueueSize":
            return float(self._queues().get("scanOnceQueueSize", 0.0))
        if parm == "cbQueueSize":
            return float(self._queues().get("cbQueueSize", 0.0))
        return 0.0  # a vxWorks/RTEMS-only statistic

    def record_count(self) -> int:
        count = 0
        with self.db.entry() as entry:
            status = self.dbc.dbFirstRecordType(entry)
            while status == 0:
                count += self.dbc.dbGetNRecords(entry)
                status = self.dbc.dbNextRecordType(entry)
        return count

    def _stat(self, parm: str) -> str:
        if parm == "up_time":
            return _uptime(time.time() - self.started)
        cached = self.strings.get(parm)
        if cached is None:
            cached = self.strings[parm] = self._text(parm)
        return cached

    def _text(self, parm: str) -> str:
        env = os.environ
        if parm == "epics_ver":
            return epics_version()
        if parm == "kernel_ver":
            uname = os.uname()
            return f"{uname.sysname} {uname.release} {uname.version}"
        if parm == "hostname":
            return os.uname().nodename
        if parm in ("pwd", "pwd1", "pwd2"):
            return _part(parm, os.getcwd())
        if parm in ("startup_script", "startup_script_1", "startup_script_2"):
            return _part(parm, self.startup_script())
        if parm == "engineer":
            return env.get("ENGINEER") or env.get("LOGNAME") or env.get("USER") or NOT_AVAILABLE
        if parm == "location":
            return env.get("LOCATION") or NOT_AVAILABLE
        return NOT_AVAILABLE

    def startup_script(self) -> str:
        folder = os.environ.get("STARTUP") or os.environ.get("IOCSH_STARTUP_SCRIPT")
        name = os.environ.get("ST_CMD")
        script = getattr(self.ioc, "script", None)
        if not folder and script is not None:
            folder, name = str(Path(script).parent), name or Path(script).name
        if not folder:
            return NOT_AVAILABLE
        return f"{folder}/{name}" if name else folder

    @staticmethod
    def _env(parm: str) -> str:
        return os.environ.get(parm, "")

    def _epics(self, parm: str) -> str:
        """An EPICS_* setting, with base's default when unset (envGetConfigParamPtr)."""
        with contextlib.suppress(ValueError):
            param = ctypes.c_void_p.in_dll(self.com, parm)
            value = self.com.envGetConfigParamPtr(ctypes.addressof(param))
            return value.decode(errors="replace") if value else ""
        return os.environ.get(parm, "")

    def _queues(self) -> dict[str, float]:
        once, cb = _ScanOnceStats(), _CallbackStats()
        out: dict[str, float] = {}
        if self.dbc.scanOnceQueueStatus(0, ctypes.byref(once)) == 0:
            out.update(scanOnceQueueSize=once.size, scanOnceQueueHiWtrMrk=once.maxUsed,
                       scanOnceQueueUsed=once.numUsed, scanOnceQueueOverruns=once.numOverflow)
        if self.dbc.callbackQueueStatus(0, ctypes.byref(cb)) == 0:
            out["cbQueueSize"] = cb.size
            for i, name in enumerate(("cbLow", "cbMedium", "cbHigh")):
                out.update({f"{name}QueueHiWtrMrk": cb.maxUsed[i],
                            f"{name}QueueUsed": cb.numUsed[i],
                            f"{name}QueueOverruns": cb.numOverflow[i]})
        return out

    def _cpu(self) -> dict[str, float]:
        then, host_then, ioc_then = self.cpu_mark
        now, host, ioc = time.monotonic(), host_cpu_seconds(), process_cpu_seconds()
        self.cpu_mark = (now, host, ioc)
        cpus = os.cpu_count() or 1
        scale = 100.0 / ((now - then) * cpus) if now > then else 0.0
        ioc_load = (ioc - ioc_then) * scale
        return {"sys_cpuload": (host - host_then) * scale, "ioc_cpuload": ioc_load,
                "cpu": ioc_load, "no_of_cpus": float(cpus),
                "suspended_tasks": float(self.suspended)}

    def refresh(self, group: str) -> dict[str, float]:
        """New values of one group."""
        if group == "memory":
            return memory()
        if group == "load":
            return self._cpu()
        if group == "fd":
            return file_descriptors()
        if group == "ca":
            channels, circuits = ctypes.c_uint(), ctypes.c_uint()
            self.dbc.casStatsFetch(ctypes.byref(channels), ctypes.byref(circuits))
            return {"ca_clients": float(circuits.value),
                    "ca_connections": float(channels.value)}
        return self._queues()

    def _loop(self) -> None:
        due = dict.fromkeys(self.rates, 0.0)
        while True:
            now = time.monotonic()
            for group, at in due.items():
                if now < at:
                    continue
                try:
                    values = self.refresh(group)
                except (OSError, ValueError) as err:
                    log(f"cannot read the {group} statistics: {err}")
                    values = {}
                with self.lock:
                    self.values.update(values)
                self.dbc.scanIoRequest(self.pvt[group])
                due[group] = now + self.rates[group]
            self.wake.wait(max(0.05, min(due.values()) - time.monotonic()))
            if self.wake.is_set():  # a new rate: apply it from now
                self.wake.clear()
                due = {g: min(at, time.monotonic() + self.rates[g]) for g, at in due.items()}

    def _task_fault(self, _usr: int | None, _tid: int | None) -> None:
        self.suspended += 1

    # ---- subroutines -------------------------------------------------------------------------
    def _reboot(self, prec: int) -> int:
        rec = self._record(prec)
        inhibit = any(self._get_double(rec, f) >= 0.5 for f in "ABCDEF")
        if not inhibit and self._get_double(rec, "L") > 0.5:
            log("IOC reboot started (SYSRESET): stopping, for the supervisor to start it again")
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return 0

    def _scan_mon_init(self, prec: int) -> int:
        self.scan_mon[prec] = (-1.0, 0.0)
        return 0

    def _scan_mon(self, prec: int) -> int:
        """The time between two passes of the record's periodic scan (minus the period when
        input A, the mode, is 0) with alarm limits at B % (minor) and C % (major) of it."""
        rec = self._record(prec)
        scan = self._field(rec, "SCAN")[0]
        period = float(self.dbc.scanPeriod(ctypes.c_ushort.from_address(scan).value)) \
            if scan else 0.0
        if period <= 0:
            period = max(0.0, self._get_double(rec, "D"))
        now = time.monotonic()
        known, last = self.scan_mon.get(prec, (-1.0, 0.0))
        self.scan_mon[prec] = (period, now)
        if known != period:
            return 0
        absolute = self._get_double(rec, "A") >= 0.5
        centre = period if absolute else 0.0
        self._put_double(rec, "VAL", (now - last) - (0.0 if absolute else period))
        minor, major = (period * self._get_double(rec, f) / 100 for f in "BC")
        for field, value in (("HIGH", centre + minor), ("HIHI", centre + major),
                             ("LOW", centre - minor), ("LOLO", centre - major)):
            self._put_double(rec, field, value)
        return 0

    # ---- START_CNT in the data folder --------------------------------------------------------
    def _count_records(self) -> list[str]:
        names = []
        with self.db.entry() as entry:
            for _ in self.db.records(entry):
                name = self.dbc.dbGetRecordName(entry).decode()
                if name.endswith(":START_CNT") and not self.dbc.dbIsAlias(entry) and \
                        self.dbc.dbGetRecordTypeName(entry) == b"calcout":
                    names.append(name)
        return names

    @staticmethod
    def _count_file(name: str) -> Path | None:
        data = os.environ.get("AUTOSAVE_DIR")
        return Path(data) / COUNT_FILE.format(name) if data else None

    def _restore_start_counts(self) -> None:
        """Before record init (START_CNT's PINI adds one): the larger of the kept count and
        what autosave restored."""
        for name in self._count_records():
            path = self._count_file(name)
            if path is None:
                return
            try:
                kept = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                continue
            with self.db.entry() as entry:
                if self.dbc.dbFindRecord(entry, f"{name}.VAL".encode()):
                    continue
                try:
                    current = float((self.dbc.dbGetString(entry) or b"0").decode() or 0)
                except ValueError:
                    current = 0.0
                if kept > current:
                    self.dbc.dbPutString(entry, str(kept).encode())

    def _save_start_counts(self) -> None:
        from berth.fsutil import atomic_write

        for name in self._count_records():
            path = self._count_file(name)
            addr = self.db.address(f"{name}.VAL")
            if path is None or addr is None:
                return
            value = ctypes.c_double.from_address(addr.pfield).value
            try:
                atomic_write(path, f"{int(value)}\n")
            except OSError as err:
                log(f"cannot keep START_CNT in {path}: {err.strerror}")


def _part(parm: str, text: str) -> str:
    """devIocStats' 40-character halves (`…1`, `…2`) of a long text."""
    if parm.endswith("1"):
        return text[:39]
    if parm.endswith("2"):
        return text[39:78]
    return text


def feed_heartbeat(db: Database, write: Callable[[float, int], None],
                   every: float = 1.0) -> bool:
    """Copy the first `$(IOC):HEARTBEAT` record's value to `write` every `every` seconds, from
    a thread of this IOC process (the runner checks it advances). False when there is none."""
    from berth.epics.autosave import Field

    name = None
    with db.entry() as entry:
        for _ in db.records(entry):
            pv = db.db.dbGetRecordName(entry).decode()
            if pv.endswith(":HEARTBEAT") and not db.db.dbIsAlias(entry):
                name = pv
                break
    addr = db.address(name) if name else None
    if addr is None:
        return False
    field = Field(name or "", addr)

    def feed() -> None:
        count = 0
        while True:
            value = field.read(db.get_field)
            count += 1
            with contextlib.suppress(TypeError, ValueError):
                write(float(str(value)), count)
            time.sleep(every)

    threading.Thread(target=feed, name="heartbeat", daemon=True).start()
    return True


_instance: IocStats | None = None


def install(ioc: SoftIoc) -> IocStats | None:
    """Register devIocStats' device support, subroutines and init hooks here (once)."""
    global _instance
    if _instance is None:
        try:
            _instance = IocStats(ioc)
        except (AttributeError, OSError, ValueError) as err:
            log(f"not available in this IOC: {err}")
            return None
    return _instance
