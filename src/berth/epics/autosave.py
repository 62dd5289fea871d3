"""Autosave on the embedded soft IOC, compatible with the autosave module in files and commands.

The iocsh commands autosave users type are registered here (`set_requestfile_path`,
`set_savefile_path`, `set_pass0_restoreFile`, `create_monitor_set`, `save_restoreSet_*`, ...).
Restores happen inside `iocInit` through initHooks, as the module does: pass 0 after device
support init (before records initialise) through static database access (`dbPutString` on a
DBENTRY), pass 1 after record init through `dbNameToAddr` + `dbPut` (arrays need the records'
storage, which exists only then). Save sets run in one thread that reads fields with
`dbGetField` and writes `.sav`/`.savB` (autosave_file) into the save path, by default
$AUTOSAVE_DIR (the instance's data folder).

Nothing here stops the IOC: every problem is one log line prefixed `autosave:`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from berth.epics import autosave_file as savefile
from berth.epics import autosave_request as request
from berth.epics.libs import EpicsLibs

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    from collections.abc import Callable

    from berth.epics.softioc import SoftIoc

# initHookState values (initHooks.h, base 7.0)
HOOK_AFTER_INIT_DEV_SUP = 6  # autosave pass 0
HOOK_AFTER_INIT_DATABASE = 7  # autosave pass 1
HOOK_AFTER_IOC_RUNNING = 16

# DBF_ / DBR_ codes (dbFldTypes.h)
DBF_STRING, DBF_CHAR, DBF_FLOAT, DBF_DOUBLE, DBF_ENUM, DBF_MENU = 0, 1, 9, 10, 11, 12
DBF_INT64, DBF_UINT64, DBF_INLINK, DBF_FWDLINK, DBF_NOACCESS = 7, 8, 14, 16, 17
MAX_STRING_SIZE = 40
SPC_SCAN = 3  # special.h: a scan-related field

ARG_INT, ARG_STRING = 0, 2
STATUS_FAIL, STATUS_WARN, STATUS_OK = 1, 2, 4  # SR_status / SR_rebootStatus states  # iocshArgType
CONTAINER_SAVE_PATH = "/autosave"  # where the ioc-instance chart mounts the data volume
CONTAINER_RUNTIME = "/epics/runtime"
# ibek's generate-autosave writes these request files from the databases' info tags
IBEK_REQUESTS = {"autosave_positions.req": "autosaveFields_pass0",
                 "autosave_settings.req": "autosaveFields"}


def log(message: str) -> None:
    print(f"autosave: {message}", flush=True)


class _DbAddr(ctypes.Structure):
    _fields_ = [("precord", ctypes.c_void_p), ("pfield", ctypes.c_void_p),
                ("pfldDes", ctypes.c_void_p), ("no_elements", ctypes.c_long),
                ("field_type", ctypes.c_short), ("field_size", ctypes.c_short),
                ("special", ctypes.c_short), ("dbr_field_type", ctypes.c_short)]


class _ArgBuf(ctypes.Union):
    _fields_ = [("ival", ctypes.c_int), ("dval", ctypes.c_double), ("sval", ctypes.c_char_p),
                ("vval", ctypes.c_void_p), ("aval", ctypes.c_byte * 16)]


class Database:
    """The ctypes calls into libdbCore this module makes, declared once."""

    def __init__(self, libs: EpicsLibs) -> None:
        db = self.db = libs.db_core
        self.pdbbase = ctypes.c_void_p.in_dll(db, "pdbbase")
        vp, cp, lg = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_long
        for name, args, res in (
                ("dbAllocEntry", [vp], vp), ("dbFreeEntry", [vp], None),
                ("dbFindRecord", [vp, cp], lg), ("dbPutString", [vp, cp], lg),
                ("dbFirstRecordType", [vp], lg), ("dbNextRecordType", [vp], lg),
                ("dbFirstRecord", [vp], lg), ("dbNextRecord", [vp], lg),
                ("dbGetRecordName", [vp], cp), ("dbFindInfo", [vp, cp], lg),
                ("dbGetInfoString", [vp], cp), ("dbNameToAddr", [cp, vp], lg),
                ("dbIsAlias", [vp], ctypes.c_int),
                ("dbGetField", [vp, ctypes.c_short, vp, vp, vp, vp], lg),
                ("dbPut", [vp, ctypes.c_short, vp, lg], lg),
                ("dbPutField", [vp, ctypes.c_short, vp, lg], lg)):
            fn = getattr(db, name)
            fn.argtypes, fn.restype = args, res
        # The save loop's call, without argtypes: ctypes converting each argument costs more
        # than the call itself, 10,000 times per save (`short` goes as an int in a register).
        self.get_field = db["dbGetField"]
        self.get_field.restype = lg

    @contextlib.contextmanager
    def entry(self) -> Iterator[int]:
        """A DBENTRY for static database access, freed after use."""
        entry = int(self.db.dbAllocEntry(self.pdbbase.value))
        try:
            yield entry
        finally:
            self.db.dbFreeEntry(entry)

    def records(self, entry: int) -> Iterator[None]:
        """Moves `entry` to each record in turn (record types, then records, in load order)."""
        status = self.db.dbFirstRecordType(entry)
        while status == 0:
            rec = self.db.dbFirstRecord(entry)
            while rec == 0:
                yield
                rec = self.db.dbNextRecord(entry)
            status = self.db.dbNextRecordType(entry)

    def first_record(self) -> str | None:
        """The name of one record of the loaded database (None when none is loaded)."""
        if not self.pdbbase.value:
            return None
        with self.entry() as entry:
            for _ in self.records(entry):
                return str(self.db.dbGetRecordName(entry).decode())
        return None

    def put_static(self, entry: int, pv: str, value: str) -> str | None:
        """Pass 0: the value into the record's field before it initialises; an error or None."""
        if self.db.dbFindRecord(entry, pv.encode()):
            return "no such record or field"
        if self.db.dbPutString(entry, value.encode()):
            return f"the value {value!r} is refused"
        return None

    def address(self, pv: str) -> _DbAddr | None:
        addr = _DbAddr()
        return addr if self.db.dbNameToAddr(pv.encode(), ctypes.byref(addr)) == 0 else None

    def put(self, addr: _DbAddr, value: savefile.Value) -> bool:
        if addr.field_type == DBF_CHAR and isinstance(value, str):  # a long string (FIELD$)
            data = value.encode()[:max(0, addr.no_elements - 1)] + b"\0"
            text = ctypes.create_string_buffer(data, len(data))
            return int(self.db.dbPut(ctypes.byref(addr), DBF_CHAR, text, len(data))) == 0
        items = value if isinstance(value, list) else [value]
        buf = ctypes.create_string_buffer(MAX_STRING_SIZE * max(1, len(items)))
        for i, item in enumerate(items):
            data = item.encode()[:MAX_STRING_SIZE - 1]
            ctypes.memmove(ctypes.addressof(buf) + i * MAX_STRING_SIZE, data, len(data))
        return int(self.db.dbPut(ctypes.byref(addr), DBF_STRING, buf, len(items))) == 0

    def put_field(self, pv: str, value: str) -> None:
        """A value into a running record (processed, so clients see it); quietly nothing
        when the PV does not exist."""
        addr = self.address(pv)
        if addr is not None:
            buf = ctypes.create_string_buffer(value.encode()[:MAX_STRING_SIZE - 1],
                                              MAX_STRING_SIZE)
            self.db.dbPutField(ctypes.byref(addr), DBF_STRING, buf, 1)

    def info_fields(self, info_name: str) -> list[str]:
        """`rec.FIELD` for each field an `info(<info_name>, "F1 F2")` tag names, in load order."""
        db, pvs = self.db, []
        with self.entry() as entry:
            for _ in self.records(entry):
                if not db.dbIsAlias(entry) and db.dbFindInfo(entry, info_name.encode()) == 0:
                    name = db.dbGetRecordName(entry).decode()
                    fields = (db.dbGetInfoString(entry) or b"").decode()
                    pvs += [f"{name}.{f}" for f in fields.split()]
        return pvs


class Field:
    """One saved PV: its address and the buffer `dbGetField` fills."""

    __slots__ = ("pv", "addr", "dbr", "count", "buf", "n", "fmt", "array", "addr_ref", "n_ref")

    def __init__(self, pv: str, addr: _DbAddr) -> None:
        self.pv, self.addr = pv, addr
        kind = addr.field_type
        self.count = max(1, int(addr.no_elements))
        self.array = self.count > 1
        self.buf: ctypes.Array[ctypes.c_char] | ctypes.Array[ctypes.c_double] | \
            ctypes.Array[ctypes.c_float] | ctypes.Array[ctypes.c_ushort]
        if pv.endswith("$") and kind == DBF_CHAR:
            # `FIELD$`: a long string, which dbNameToAddr gives as a char array; saved as text
            self.dbr, self.fmt, self.array = DBF_CHAR, "", False
            self.buf = ctypes.create_string_buffer(self.count)
        elif kind in (DBF_DOUBLE, DBF_INT64, DBF_UINT64):
            self.dbr, self.fmt = DBF_DOUBLE, "%.14g"
            self.buf = (ctypes.c_double * self.count)()
        elif kind == DBF_FLOAT:
            self.dbr, self.fmt = DBF_FLOAT, "%.7g"
            self.buf = (ctypes.c_float * self.count)()
        elif kind in (DBF_ENUM, DBF_MENU):  # as numbers: enum strings may not exist at restore
            self.dbr, self.fmt = DBF_ENUM, "%d"
            self.buf = (ctypes.c_ushort * self.count)()
        else:
            self.dbr, self.fmt = DBF_STRING, ""
            self.buf = ctypes.create_string_buffer(MAX_STRING_SIZE * self.count)
        self.n = ctypes.c_long(self.count)
        self.addr_ref, self.n_ref = ctypes.byref(addr), ctypes.byref(self.n)

    def read(self, get: Callable[..., int]) -> savefile.Value | None:
        self.n.value = self.count
        if get(self.addr_ref, self.dbr, self.buf, None, self.n_ref, None):
            return None
        if not self.array:
            if self.dbr in (DBF_STRING, DBF_CHAR):
                return str(self.buf.value.decode(errors="replace"))
            return self.fmt % self.buf[0]
        n = min(self.n.value, self.count)
        if self.dbr == DBF_STRING:
            raw = bytes(self.buf)
            items = [raw[i * MAX_STRING_SIZE:(i + 1) * MAX_STRING_SIZE].split(b"\0", 1)[0]
                     .decode(errors="replace") for i in range(n)]
        else:
            fmt = self.fmt
            items = [fmt % v for v in self.buf[:n]]
        return items


class SaveSet:
    """One `create_*_set`: a request file's PVs saved into `<name>.sav`."""

    def __init__(self, kind: str, req: str, period: float, macros: str, trigger: str = "") -> None:
        self.kind, self.req, self.period, self.macros, self.trigger = (
            kind, req, period, macros, trigger)
        self.sav_name = req[:-4] + ".sav" if req.endswith(".req") else req + ".sav"
        self.fields: list[Field] = []
        self.missing: list[str] = []
        self.last: list[savefile.Value | None] | None = None
        self.next_due = 0.0
        self.trigger_field: Field | None = None
        self.trigger_last: savefile.Value | None = None
        self.last_sequence = 0.0
        self.failed: str | None = None  # why the last write failed

    def values(self, get: Callable[..., int]) -> list[savefile.Value | None]:
        return [f.read(get) for f in self.fields]


class Autosave:
    """The autosave state of this IOC process (one per process, as in the module)."""

    def __init__(self, ioc: SoftIoc) -> None:
        self.db = Database(ioc.libs)
        self.request_path: list[Path] = []
        default = os.environ.get("AUTOSAVE_DIR")
        self.save_path = Path(default) if default else Path.cwd()
        self.restores: dict[int, list[tuple[str, str]]] = {0: [], 1: []}
        self.backed_up: set[Path] = set()
        self.sets: dict[str, SaveSet] = {}
        self.num_seq_files = 3
        self.seq_period = 60.0
        self.dated_backups = True
        self.debug = 0
        self.status_prefix = ""
        self.reboot_status, self.reboot_message = STATUS_OK, "Ok"
        self.heartbeat = 0
        self.running = False
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self._keep: list[object] = []
        self._register_commands(ioc)
        self._register_hook(ioc)

    # ---- iocsh commands -------------------------------------------------------------------
    def _register_commands(self, ioc: SoftIoc) -> None:
        s, i = ARG_STRING, ARG_INT
        self._command(ioc, "set_requestfile_path", [("path", s), ("subpath", s)],
                      lambda a: self.add_request_path(a[0], a[1]))
        self._command(ioc, "set_savefile_path", [("path", s), ("subpath", s)],
                      lambda a: self.set_save_path(a[0], a[1]))
        for n in (0, 1):
            self._command(ioc, f"set_pass{n}_restoreFile", [("file", s), ("macros", s)],
                          self._restore_file(n))
        self._command(ioc, "create_monitor_set", [("file", s), ("period", i), ("macros", s)],
                      lambda a: self.create("monitor", a[0], a[1], a[2]))
        self._command(ioc, "create_periodic_set", [("file", s), ("period", i), ("macros", s)],
                      lambda a: self.create("periodic", a[0], a[1], a[2]))
        self._command(ioc, "create_triggered_set", [("file", s), ("trigger", s), ("macros", s)],
                      lambda a: self.create("triggered", a[0], 1, a[2], a[1]))
        self._command(ioc, "create_manual_set", [("file", s), ("macros", s)],
                      lambda a: self.create("manual", a[0], 0, a[1]))
        self._command(ioc, "manual_save", [("file", s)], lambda a: self.manual_save(a[0]))
        self._command(ioc, "makeAutosaveFiles", [], lambda a: self.make_files())
        self._command(ioc, "makeAutosaveFileFromDbInfo", [("file", s), ("info", s)],
                      lambda a: self.make_file(a[0], a[1]))
        self._command(ioc, "save_restoreShow", [("verbose", i)], lambda a: self.show())
        settings: dict[str, Callable[[int], None]] = {
            "save_restoreSet_NumSeqFiles": lambda v: setattr(self, "num_seq_files",
                                                             max(0, min(10, v))),
            "save_restoreSet_SeqPeriodInSeconds": lambda v: setattr(self, "seq_period",
                                                                    float(max(10, v))),
            "save_restoreSet_DatedBackupFiles": lambda v: setattr(self, "dated_backups",
                                                                  bool(v)),
            "save_restoreSet_Debug": lambda v: setattr(self, "debug", v),
        }
        for name, setter in settings.items():
            self._command(ioc, name, [("value", i)], _int_setter(setter))
        # accepted for compatibility; they tune things this implementation does not have
        for name in ("save_restoreSet_IncompleteSetsOk", "save_restoreSet_RetrySeconds",
                     "save_restoreSet_CAReconnect", "save_restoreSet_CallbackTimeout",
                     "save_restoreSet_FilePermissions", "save_restoreSet_periodicDatedBackups"):
            self._command(ioc, name, [("value", i)], lambda a: None)
        self._command(ioc, "save_restoreSet_status_prefix", [("prefix", s)],
                      lambda a: setattr(self, "status_prefix", a[0] or ""))

    def _restore_file(self, number: int) -> Callable[[list[str | int | None]], None]:
        def add(args: list[str | int | None]) -> None:
            self.restores[number].append((str(args[0] or ""), str(args[1] or "")))
        return add

    def _command(self, ioc: SoftIoc, name: str, args: list[tuple[str, int]],
                 action: Callable[[list[str | int | None]], object]) -> None:
        from berth.epics.softioc import _IocshArg, _IocshCallFunc, _IocshFuncDef

        arg_defs = [_IocshArg(a.encode(), t) for a, t in args]
        arg_ptrs = (ctypes.POINTER(_IocshArg) * max(1, len(args)))(
            *[ctypes.pointer(a) for a in arg_defs])
        types = [t for _, t in args]

        def call(argbuf: int | None) -> None:
            values: list[str | int | None] = []
            bufs = ctypes.cast(argbuf, ctypes.POINTER(_ArgBuf)) if argbuf else None
            for k, t in enumerate(types):
                if bufs is None:
                    values.append(None)
                elif t == ARG_INT:
                    values.append(bufs[k].ival)
                else:
                    raw = bufs[k].sval
                    values.append(raw.decode() if raw is not None else "")
            try:
                action(values)
            except Exception as err:  # a mistake in one command must not stop the IOC
                log(f"{name}: {err}")

        definition = _IocshFuncDef(name.encode(), len(args), arg_ptrs,
                                   f"{name} (berth autosave)\n".encode())
        callback = _IocshCallFunc(call)
        self._keep += [arg_defs, arg_ptrs, definition, callback]
        ioc.libs.com.iocshRegister(ctypes.byref(definition), callback)

    def add_request_path(self, path: object, sub: object) -> None:
        self.request_path.append(Path(_local(_join(path, sub))))

    def set_save_path(self, path: object, sub: object) -> None:
        given = _join(path, sub)
        folder = Path(_local(given))
        if _local(given) != given:
            log(f"{given} is the container's data folder; saving into {folder} here")
        self.save_path = folder

    # ---- restore (inside iocInit) ---------------------------------------------------------
    def _register_hook(self, ioc: SoftIoc) -> None:
        hook_type = ctypes.CFUNCTYPE(None, ctypes.c_int)

        def hook(state: int) -> None:
            try:
                if state == HOOK_AFTER_INIT_DEV_SUP:
                    self.restore(0)
                elif state == HOOK_AFTER_INIT_DATABASE:
                    self.restore(1)
                elif state == HOOK_AFTER_IOC_RUNNING:
                    self.start()
            except Exception as err:  # nothing in autosave stops the IOC
                log(f"unexpected error at init hook {state}: {err!r}")

        callback = hook_type(hook)
        self._keep.append(callback)
        register = ioc.libs.com.initHookRegister
        register.argtypes = [hook_type]
        register(callback)

    def _sav_path(self, name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else self.save_path / name

    def restore(self, number: int) -> None:
        for name, macros in self.restores[number]:
            sav = self._sav_path(name)
            chosen, notes = savefile.choose(sav)
            for note in notes:
                log(note)
            if notes:
                self._reboot(STATUS_WARN if chosen is not None else STATUS_FAIL, notes[-1])
            if chosen is None:
                if not notes:
                    log(f"pass {number}: no save file {sav} yet; nothing restored")
                continue
            if sav not in self.backed_up:  # once per file, at its first pass
                self.backed_up.add(sav)
                try:
                    savefile.boot_backup(chosen.path, sav, self.dated_backups)
                except OSError as err:
                    log(f"cannot write the boot backup of {sav}: {err.strerror}")
            entries = chosen.entries
            if macros:
                entries = _expand_entries(entries, macros)
            done, failed = (self._pass0 if number == 0 else self._pass1)(entries)
            if failed:
                self._reboot(STATUS_WARN, f"{len(failed)} PV(s) not restored from {sav.name}")
            log(f"pass {number}: restored {done} value(s) from {chosen.path}"
                + (f"; {len(failed)} not restored: {', '.join(failed[:5])}"
                   + (" ..." if len(failed) > 5 else "") if failed else ""))

    def _reboot(self, status: int, message: str) -> None:
        if status < self.reboot_status:
            self.reboot_status, self.reboot_message = status, message

    def _status(self, ok: bool, message: str) -> None:
        """The status PVs (save_restoreStatus.db) under the prefix, when one was given."""
        p = self.status_prefix
        if not p:
            return
        self.heartbeat += 1
        self.db.put_field(f"{p}SR_heartbeat", str(self.heartbeat))
        self.db.put_field(f"{p}SR_status", str(STATUS_OK if ok else STATUS_FAIL))
        self.db.put_field(f"{p}SR_statusStr", message)

    def _pass0(self, entries: list[tuple[str, savefile.Value]]) -> tuple[int, list[str]]:
        done, failed = 0, []
        with self.db.entry() as entry:
            for pv, value in entries:
                if isinstance(value, list):
                    continue  # arrays have no storage before record init: pass 1 only
                why = self.db.put_static(entry, pv.rstrip("$"), value)
                if why is None:
                    done += 1
                else:
                    failed.append(f"{pv} ({why})")
        return done, failed

    def _pass1(self, entries: list[tuple[str, savefile.Value]]) -> tuple[int, list[str]]:
        done, failed = 0, []
        with self.db.entry() as entry:
            for pv, value in entries:
                addr = self.db.address(pv)
                if addr is None:
                    failed.append(f"{pv} (no such record or field)")
                    continue
                if Field(pv, addr).read(self.db.get_field) == value:
                    done += 1  # pass 0 (or the database) already gave it this value
                    continue
                if DBF_INLINK <= addr.field_type <= DBF_FWDLINK:
                    failed.append(f"{pv} (a link: restored in pass 0 only)")
                    continue
                if addr.special == SPC_SCAN and not isinstance(value, list):
                    # the scan lists are built after this pass (scanInit) from the field
                    # itself; a dbPut would ask them to move the record first
                    ok = self.db.put_static(entry, pv.rstrip("$"), value) is None
                else:
                    ok = self.db.put(addr, value)
                if ok:
                    done += 1
                else:
                    failed.append(f"{pv} (the value is refused)")
        return done, failed

    # ---- save sets ----------------------------------------------------------------------
    def create(self, kind: str, req: object, period: object, macros: object,
               trigger: object = "") -> None:
        name = str(req or "")
        if not name:
            log(f"create_{kind}_set: no request file given")
            return
        with self.lock:
            if name in self.sets:
                log(f"create_{kind}_set: {name} already has a save set")
                return
            seconds = period if isinstance(period, int) and period > 0 else 5
            self.sets[name] = SaveSet(kind, name, float(seconds), str(macros or ""),
                                      str(trigger or ""))
        if self.running:
            self._connect(self.sets[name])
            self.wake.set()

    def _pvs(self, save_set: SaveSet) -> list[str]:
        found = request.find(save_set.req, self.request_path)
        if found is None and save_set.req in IBEK_REQUESTS:
            info = IBEK_REQUESTS[save_set.req]
            log(f"{save_set.req} is not on the request-file path; saving the fields the "
                f"databases' info({info}) tags name, as ibek's generate-autosave writes it")
            return self.db.info_fields(info)
        listed = request.read(save_set.req, self.request_path, save_set.macros)
        for problem in listed.problems:
            log(problem)
        return listed.pvs

    def _connect(self, save_set: SaveSet) -> None:
        # before this set's first save, so no write of ours is under way
        removed = savefile.remove_stale_temporaries(self._sav_path(save_set.sav_name))
        if removed:
            log(f"removed {removed} temporary file(s) an interrupted save of "
                f"{save_set.sav_name} left")
        fields, missing = [], []
        for pv in self._pvs(save_set):
            addr = self.db.address(pv)
            if addr is None or addr.field_type == DBF_NOACCESS:
                missing.append(pv)
            else:
                fields.append(Field(pv, addr))
        save_set.fields, save_set.missing = fields, missing
        if missing:
            log(f"{save_set.req}: {len(missing)} PV(s) not found: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else ""))
        if save_set.trigger:
            addr = self.db.address(save_set.trigger)
            save_set.trigger_field = Field(save_set.trigger, addr) if addr else None
            if addr is None:
                log(f"{save_set.req}: trigger PV {save_set.trigger} not found")
        now = time.monotonic()
        save_set.next_due = now + save_set.period
        save_set.last_sequence = now

    def start(self) -> None:
        """After iocInit: connect the sets and run the saving thread."""
        with self.lock:
            sets = list(self.sets.values())
        for save_set in sets:
            self._connect(save_set)
        self.running = True
        if self.status_prefix:
            p = self.status_prefix
            self.db.put_field(f"{p}SR_rebootStatus", str(self.reboot_status))
            self.db.put_field(f"{p}SR_rebootStatusStr", self.reboot_message)
            self.db.put_field(f"{p}SR_rebootTime", time.strftime("%y%m%d-%H%M%S"))
            self._status(True, "Ok")
        self.thread = threading.Thread(target=self._loop, name="save_restore", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            with self.lock:
                sets = list(self.sets.values())
            now = time.monotonic()
            due = [s.next_due for s in sets if s.kind != "manual"]
            self.wake.wait(max(0.0, min(due) - now) if due else None)
            self.wake.clear()
            now = time.monotonic()
            ok, ran = True, False
            for save_set in sets:
                if save_set.kind == "manual" or now < save_set.next_due:
                    continue
                save_set.next_due = now + save_set.period
                ran = True
                try:
                    self.check(save_set)
                    ok = ok and save_set.failed is None
                except Exception as err:  # keep saving the other sets
                    ok = False
                    log(f"{save_set.req}: save failed: {err!r}")
            if ran:
                self._status(ok, "Ok" if ok else "Write failed")

    def check(self, save_set: SaveSet, force: bool = False) -> bool:
        """Save the set if its rule says so now; True when it wrote."""
        get = self.db.get_field
        if save_set.kind == "triggered" and not force:
            trig = save_set.trigger_field
            value = trig.read(get) if trig is not None else None
            fired = save_set.trigger_last is not None and value != save_set.trigger_last
            save_set.trigger_last = value
            if not fired:
                return False
        values = save_set.values(get)
        if save_set.kind == "monitor" and not force and values == save_set.last:
            return False
        return self.write(save_set, values)

    def write(self, save_set: SaveSet, values: list[savefile.Value | None]) -> bool:
        rows = [(f.pv, v) for f, v in zip(save_set.fields, values, strict=True)]
        rows += [(pv, None) for pv in save_set.missing]
        text = savefile.render(rows)
        sav = self._sav_path(save_set.sav_name)
        try:
            savefile.write(sav, text)
            now = time.monotonic()
            if self.num_seq_files and now - save_set.last_sequence >= self.seq_period:
                save_set.last_sequence = now
                savefile.write_sequence(sav, text, self.num_seq_files)
        except OSError as err:
            if save_set.failed != err.strerror:  # one line per new reason, not per period
                log(f"cannot write {sav}: {err.strerror}")
            save_set.failed = err.strerror
            return False
        if save_set.failed is not None:
            log(f"{sav} written again")
        save_set.failed = None
        save_set.last = values
        if self.debug:
            log(f"wrote {sav} ({len(rows)} PV(s))")
        return True

    def manual_save(self, req: object) -> None:
        save_set = self.sets.get(str(req or ""))
        if save_set is None:
            log(f"manual_save: no save set for {req}")
            return
        self.check(save_set, force=True)

    def save_all(self) -> None:
        """Write every set whose values changed since its last save (on a clean stop)."""
        if not self.running:
            return
        for save_set in list(self.sets.values()):
            if save_set.kind != "manual" and save_set.values(self.db.get_field) != save_set.last:
                self.check(save_set, force=True)

    def make_file(self, name: object, info: object) -> None:
        req = str(name or "")
        if ".req" not in req:
            req += ".req"
        pvs = self.db.info_fields(str(info or ""))
        target = self.request_path[0] / req if self.request_path else Path(req)
        from berth.fsutil import atomic_write

        atomic_write(target, "".join(pv + "\n" for pv in pvs))
        log(f"wrote {target} ({len(pvs)} PV(s))")

    def make_files(self) -> None:
        self.make_file("info_settings.req", "autosaveFields")
        self.make_file("info_positions.req", "autosaveFields_pass0")

    def show(self) -> None:
        print(f"save path {self.save_path}; request path "
              f"{' '.join(str(p) for p in self.request_path) or '(none)'}")
        for n in (0, 1):
            for name, _ in self.restores[n]:
                print(f"  pass {n}: {self._sav_path(name)}")
        for s in self.sets.values():
            print(f"  {s.kind} set {s.req}: {len(s.fields)} PV(s), period {s.period:g} s")
        import sys

        sys.stdout.flush()


def _int_setter(setter: Callable[[int], None]) -> Callable[[list[str | int | None]], None]:
    return lambda args: setter(int(args[0] or 0))


def _join(path: object, sub: object) -> str:
    """autosave's (path, subpath) pair as one folder."""
    return os.path.join(str(path or ""), str(sub)) if sub else str(path or "")


def _local(path: str) -> str:
    """Container paths of the ioc-instance layout, mapped onto this process's folders when they
    do not exist here (the embedded runtime runs outside the container)."""
    if os.path.isdir(path):
        return path
    data, runtime = os.environ.get("AUTOSAVE_DIR"), os.environ.get("RUNTIME_DIR")
    if data and (path == CONTAINER_SAVE_PATH or path.startswith(CONTAINER_SAVE_PATH + "/")):
        return data + path[len(CONTAINER_SAVE_PATH):]
    if runtime and (path == CONTAINER_RUNTIME or path.startswith(CONTAINER_RUNTIME + "/")):
        return runtime + path[len(CONTAINER_RUNTIME):]
    return path


def _expand_entries(entries: list[tuple[str, savefile.Value]],
                    macros: str) -> list[tuple[str, savefile.Value]]:
    from berth.epics.macros import MacroTable

    table = MacroTable()
    table.define_text(macros)
    return [(table.expand(pv), [table.expand(v) for v in value] if isinstance(value, list)
             else table.expand(value)) for pv, value in entries]


_instance: Autosave | None = None


def install(ioc: SoftIoc) -> Autosave | None:
    """Register autosave's commands and init hooks in this IOC process (once)."""
    global _instance
    if _instance is None:
        try:
            _instance = Autosave(ioc)
        except (AttributeError, OSError, ValueError) as err:  # e.g. a symbol missing in libdbCore
            log(f"not available in this IOC: {err}")
            return None
    return _instance


def at_exit() -> None:
    """On a clean stop: save what changed since the last periodic save."""
    if _instance is not None:
        try:
            _instance.save_all()
        except Exception as err:
            log(f"final save failed: {err!r}")
