"""Load EPICS base and pvxs from their PyPI wheels (epicscorelibs, pvxslibs) through ctypes.

Only this module knows where the shared libraries and dbd files live.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class EpicsLibs:
    com: ctypes.CDLL
    db_core: ctypes.CDLL
    rec_std: ctypes.CDLL
    ca: ctypes.CDLL
    pvxs: ctypes.CDLL
    pvxs_ioc: ctypes.CDLL


def base_dbd_dir() -> Path:
    import epicscorelibs.path

    return Path(epicscorelibs.path.base_path) / "dbd"


def pvxs_dbd_dir() -> Path:
    import pvxslibs.path

    return Path(pvxslibs.path.dbd_path)


def dbd_search_path() -> str:
    """The dbd include path for `dbLoadDatabase` (base first, then pvxs)."""
    return os.pathsep.join(str(p) for p in (base_dbd_dir(), pvxs_dbd_dir()))


@cache
def load() -> EpicsLibs:
    """Load the libraries once per process, globally so that dbd registrars find each other."""
    import epicscorelibs.path
    import setuptools_dso

    def lib(name: str) -> ctypes.CDLL:
        return ctypes.CDLL(epicscorelibs.path.get_lib(name), mode=ctypes.RTLD_GLOBAL)

    def dso(name: str) -> ctypes.CDLL:
        return ctypes.CDLL(setuptools_dso.find_dso(name), mode=ctypes.RTLD_GLOBAL)

    return EpicsLibs(
        com=lib("Com"),
        db_core=lib("dbCore"),
        rec_std=lib("dbRecStd"),
        ca=lib("ca"),
        pvxs=dso("pvxslibs.lib.pvxs"),
        pvxs_ioc=dso("pvxslibs.lib.pvxsIoc"),
    )
