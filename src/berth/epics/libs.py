"""Load EPICS base and pvxs from their PyPI wheels (epicscorelibs, pvxslibs) through ctypes.

Only this module knows where the shared libraries and dbd files live. The paths are found with
`importlib.util.find_spec`, which does not import the packages: importing `epicscorelibs.path`
pulls in setuptools (~0.2 s), too slow for an IOC's start-up.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from functools import cache
from pathlib import Path


class EpicsLibs:
    """The loaded libraries. (A plain class: `dataclasses` costs ~10 ms to import, and this
    module is on every IOC's start-up path.)"""

    __slots__ = ("com", "db_core", "rec_std", "ca", "pvxs", "pvxs_ioc")

    def __init__(self, com: ctypes.CDLL, db_core: ctypes.CDLL, rec_std: ctypes.CDLL,
                 ca: ctypes.CDLL, pvxs: ctypes.CDLL, pvxs_ioc: ctypes.CDLL) -> None:
        self.com, self.db_core, self.rec_std, self.ca = com, db_core, rec_std, ca
        self.pvxs, self.pvxs_ioc = pvxs, pvxs_ioc


@cache
def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the Python package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def base_dbd_dir() -> Path:
    return _package_dir("epicscorelibs") / "dbd"


def pvxs_dbd_dir() -> Path:
    return _package_dir("pvxslibs") / "dbd"


def dbd_search_path() -> str:
    """The dbd include path for `dbLoadDatabase` (base first, then pvxs)."""
    return os.pathsep.join(str(p) for p in (base_dbd_dir(), pvxs_dbd_dir()))


def _lib_path(package: str, name: str) -> str:
    # The wheels ship `lib<name>.so` next to the versioned file; their RPATH ($ORIGIN) finds
    # the libraries they depend on.
    return str(_package_dir(package) / "lib" / f"lib{name}.so")


@cache
def load() -> EpicsLibs:
    """Load the libraries once per process, globally so that dbd registrars find each other."""

    def lib(package: str, name: str) -> ctypes.CDLL:
        return ctypes.CDLL(_lib_path(package, name), mode=ctypes.RTLD_GLOBAL)

    return EpicsLibs(
        com=lib("epicscorelibs", "Com"),
        db_core=lib("epicscorelibs", "dbCore"),
        rec_std=lib("epicscorelibs", "dbRecStd"),
        ca=lib("epicscorelibs", "ca"),
        pvxs=lib("pvxslibs", "pvxs"),
        pvxs_ioc=lib("pvxslibs", "pvxsIoc"),
    )
