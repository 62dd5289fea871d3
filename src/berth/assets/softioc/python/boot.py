"""berth's start of a Python soft IOC: `python boot.py ioc.py`, in the instance's environment.

Runs ioc.py as `__main__` (its folder first on sys.path, as `python ioc.py` would), after
wrapping pythonSoftIOC's database loading so that each database it loads is also appended to
$RUNTIME_DIR/ioc.db: the berth runner probes one of those records once iocInit has run.
"""

from __future__ import annotations

import os
import runpy
import sys


def _copy_loaded_databases(out_path: str) -> None:
    try:
        from softioc import imports
    except ImportError:
        return  # not a pythonSoftIOC script: it runs all the same, unprobed
    load = imports.dbLoadDatabase
    with open(out_path, "w"):
        pass  # a fresh ioc.db for this start

    def db_load_database(database: str | bytes, path: str | None = None,
                         substitutions: str | None = None) -> object:
        status = load(database, path, substitutions)
        name = os.fsdecode(database)
        if name.endswith(".db") and not path and os.path.isfile(name):
            try:
                with open(name) as src, open(out_path, "a") as out:
                    out.write(src.read())
            except OSError:
                pass
        return status

    imports.dbLoadDatabase = db_load_database


def main() -> None:
    script = os.path.abspath(sys.argv[1])
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(script)
    _copy_loaded_databases(os.path.join(os.environ.get("RUNTIME_DIR") or os.getcwd(), "ioc.db"))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
