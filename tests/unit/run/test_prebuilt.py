"""`berth run --prebuilt DIR`: a start copies the outputs built ahead of it (at deploy time)
instead of generating, and only when they were made for this very start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_run import Ioc, ca_read, iocs, loopback_epics, start, unique_prefix
from test_run_yaml import yaml_folder

from berth.run import prebuilt
from berth.run.launch import RunOptions

__all__ = ["iocs", "loopback_epics"]  # fixtures: IOCs, and loopback-only EPICS


def _build_ahead(config: Path, work: Path, out: Path, **env: str) -> None:
    options = RunOptions(config, runtime_dir=work / "runtime", ioc_name="svc",
                         console_socket=work / "console.sock")
    assert prebuilt.build(options, out, {**os.environ, **env}, list(env))


def test_a_start_copies_what_was_built_ahead(tmp_path: Path, iocs: list[Ioc]) -> None:
    prefix = unique_prefix()
    config = yaml_folder(tmp_path / "svc", prefix)
    work, ahead = tmp_path / "work", tmp_path / "ahead"
    _build_ahead(config, work, ahead)
    assert {"st.cmd", "ioc.subst", "ioc.db", prebuilt.STAMP} <= {p.name for p in ahead.iterdir()}
    ioc = start(iocs, config, work, "--ioc-name", "svc", "--prebuilt", ahead)
    ioc.wait_ready()
    assert ca_read(f"{prefix}SETPOINT") == pytest.approx(2.5)
    for name in ("st.cmd", "ioc.subst", "ioc.db"):
        copy = work / "runtime" / name
        assert copy.read_bytes() == (ahead / name).read_bytes()
        assert copy.stat().st_mtime_ns == (ahead / name).stat().st_mtime_ns, f"{name} made again"
    assert not (work / "runtime" / prebuilt.STAMP).exists()
    assert "generating" not in ioc.stderr + ioc.stdout


def test_outputs_built_for_another_start_are_not_used(tmp_path: Path, iocs: list[Ioc]) -> None:
    """Built for another environment (a hand-edited launch, a changed repository): the start
    generates for itself, saying why in its log."""
    prefix = unique_prefix()
    config = yaml_folder(tmp_path / "svc", prefix)
    work, ahead = tmp_path / "work", tmp_path / "ahead"
    _build_ahead(config, work, ahead, IOC_PREFIX="ELSEWHERE")
    db = ahead / "ioc.db"
    db.write_text(db.read_text().replace("2.5", "9.5"))
    ioc = start(iocs, config, work, "--ioc-name", "svc", "--prebuilt", ahead)
    ioc.wait_ready()
    assert ca_read(f"{prefix}SETPOINT") == pytest.approx(2.5)
    assert f"the outputs built ahead in {ahead} were made for another start (env differ): " \
        "generating" in ioc.stdout + ioc.stderr


def test_a_missing_folder_built_ahead_means_generating(tmp_path: Path, iocs: list[Ioc]) -> None:
    prefix = unique_prefix()
    config = yaml_folder(tmp_path / "svc", prefix)
    ioc = start(iocs, config, tmp_path / "work", "--prebuilt", tmp_path / "gone")
    ioc.wait_ready()
    assert ca_read(f"{prefix}SETPOINT") == pytest.approx(2.5)
    assert f"no outputs built ahead in {tmp_path / 'gone'}: generating" in ioc.stdout + ioc.stderr
