"""What EPICS itself loads from a database or substitution file, as JSON (a test oracle).

    python tests/epics_dump.py --db X.db [-I DIR ...] [-M A=1,B=2]
    python tests/epics_dump.py --subst X.substitutions [-I DIR ...] [-M A=1,B=2]

Loads EPICS base through `berth.epics.libs`, reads base.dbd, then `dbLoadRecords` or
`dbLoadTemplate` (templates are searched along the -I directories, through
EPICS_DB_INCLUDE_PATH), without iocInit, and prints every record with its type, aliases, info
items and each field whose value differs from its default. One EPICS database per process, so
callers run this in a subprocess. Exit status 1 when EPICS refuses the input.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
from typing import Any


def _bind(lib: ctypes.CDLL) -> None:
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures: dict[str, tuple[list[Any], Any]] = {
        "dbLoadDatabase": ([cp, cp, cp], ctypes.c_long),
        "dbLoadRecords": ([cp, cp], i),
        "dbLoadTemplate": ([cp, cp], i),
        "dbAllocEntry": ([vp], vp),
        "dbFreeEntry": ([vp], None),
        "dbFirstRecordType": ([vp], ctypes.c_long),
        "dbNextRecordType": ([vp], ctypes.c_long),
        "dbGetRecordTypeName": ([vp], cp),
        "dbFirstRecord": ([vp], ctypes.c_long),
        "dbNextRecord": ([vp], ctypes.c_long),
        "dbGetRecordName": ([vp], cp),
        "dbIsAlias": ([vp], i),
        "dbFirstField": ([vp, i], ctypes.c_long),
        "dbNextField": ([vp, i], ctypes.c_long),
        "dbGetFieldName": ([vp], cp),
        "dbGetString": ([vp], cp),
        "dbIsDefaultValue": ([vp], i),
        "dbGetFieldDbfType": ([vp], i),
        "dbGetFieldTypeString": ([i], cp),
        "dbFirstInfo": ([vp], ctypes.c_long),
        "dbNextInfo": ([vp], ctypes.c_long),
        "dbGetInfoName": ([vp], cp),
        "dbGetInfoString": ([vp], cp),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = args
        function.restype = result


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="surrogateescape")


def dump(db_core: ctypes.CDLL) -> dict[str, Any]:
    pdbbase = ctypes.c_void_p.in_dll(db_core, "pdbbase")
    entry = db_core.dbAllocEntry(pdbbase)
    records: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    status = db_core.dbFirstRecordType(entry)
    while status == 0:
        record_type = _text(db_core.dbGetRecordTypeName(entry))
        rec_status = db_core.dbFirstRecord(entry)
        while rec_status == 0:
            name = _text(db_core.dbGetRecordName(entry))
            if db_core.dbIsAlias(entry):
                aliases[name] = record_type
            else:
                fields: dict[str, str] = {}
                field_status = db_core.dbFirstField(entry, 1)
                while field_status == 0:
                    value = _text(db_core.dbGetString(entry))
                    # dbIsDefaultValue calls every link default; links count when set.
                    dbf_type = db_core.dbGetFieldTypeString(db_core.dbGetFieldDbfType(entry))
                    is_link = _text(dbf_type).endswith("LINK")
                    if (value if is_link else not db_core.dbIsDefaultValue(entry)):
                        fields[_text(db_core.dbGetFieldName(entry))] = value
                    field_status = db_core.dbNextField(entry, 1)
                info: dict[str, str] = {}
                info_status = db_core.dbFirstInfo(entry)
                while info_status == 0:
                    info[_text(db_core.dbGetInfoName(entry))] = _text(
                        db_core.dbGetInfoString(entry))
                    info_status = db_core.dbNextInfo(entry)
                records[name] = {"type": record_type, "fields": fields, "info": info}
            rec_status = db_core.dbNextRecord(entry)
        status = db_core.dbNextRecordType(entry)
    db_core.dbFreeEntry(entry)
    return {"records": records, "aliases": aliases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", help="database file for dbLoadRecords")
    source.add_argument("--subst", help="substitution file for dbLoadTemplate")
    parser.add_argument("-I", dest="include", action="append", default=[])
    parser.add_argument("-M", dest="macros", default="")
    args = parser.parse_args(argv)

    from berth.epics import libs as epics

    os.environ["EPICS_DB_INCLUDE_PATH"] = epics.dbd_search_path()
    libs = epics.load()
    db_core = libs.db_core
    _bind(db_core)
    db_core.iocshRegisterCommon()
    if db_core.dbLoadDatabase(b"base.dbd", None, None) != 0:
        print("epics_dump: cannot load base.dbd", file=sys.stderr)
        return 1
    # Record support must be registered before records can be created (sizes come from it).
    db_core.registerAllRecordDeviceDrivers.argtypes = [ctypes.c_void_p]
    if db_core.registerAllRecordDeviceDrivers(ctypes.c_void_p.in_dll(db_core, "pdbbase")) != 0:
        print("epics_dump: cannot register record support", file=sys.stderr)
        return 1
    # Templates (and `include`s) are found along this path, read at each load.
    os.environ["EPICS_DB_INCLUDE_PATH"] = os.pathsep.join(args.include) or "."
    macros = args.macros.encode() if args.macros else None
    if args.db:
        status = db_core.dbLoadRecords(args.db.encode(), macros)
    else:
        status = db_core.dbLoadTemplate(args.subst.encode(), macros)
    if status != 0:
        print(f"epics_dump: EPICS refused the input (status {status})", file=sys.stderr)
        return 1
    sys.stdout.flush()
    json.dump(dump(db_core), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
