"""`berth run` given unusable paths: one located line, exit 2, never a traceback (issue 12,
repro 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_berth

CONFIG = Path(__file__).parents[3] / "examples" / "bl01b" / "services" / "bl01b-di-wave-01" / \
    "config"


def _run(*args: str | Path):
    result = run_berth("run", CONFIG, *args, env={"IOC_NAME": "HOSTILE"}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def test_a_folder_where_the_console_socket_goes(tmp_path):
    (tmp_path / "sock").mkdir()
    result = _run("--runtime-dir", tmp_path / "rt", "--console-socket", tmp_path / "sock")
    assert f"{tmp_path / 'sock'}: the console socket path holds something that is not a " \
        "socket" in result.stderr
    assert (tmp_path / "sock").is_dir(), "berth removed what was in the way"


def test_a_folder_where_the_default_console_socket_goes(tmp_path):
    (tmp_path / "rt" / "console.sock").mkdir(parents=True)
    result = _run("--runtime-dir", tmp_path / "rt")
    assert "console.sock: the console socket path holds something" in result.stderr


@pytest.mark.parametrize("where", ["runtime", "socket"])
def test_a_path_component_too_long(tmp_path, where):
    long = tmp_path / ("d" * 300)
    args = ("--runtime-dir", long) if where == "runtime" else (
        "--runtime-dir", tmp_path / "rt", "--console-socket", long / "c.sock")
    result = _run(*args)
    assert "too long" in result.stderr.lower(), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
