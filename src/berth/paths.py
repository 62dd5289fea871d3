"""Where berth's built-in soft Generic IOC lives (src/berth/assets/softioc)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets" / "softioc"


def ioc_dir() -> Path:
    """The IOC folder written into st.cmd (`cd "<IOC>"`); holds `dbd/ioc.dbd`."""
    return ASSETS / "ioc"


def db_dir() -> Path:
    """Templates the soft IOC's own entities use (any.template, alias.template)."""
    return ASSETS / "db"


def support_files() -> list[Path]:
    """The support YAMLs describing what the soft IOC can instantiate (modules epics, berth)."""
    return sorted((ASSETS / "support").glob("*.ibek.support.yaml"))
