"""`berth serve --install-unit`: a systemd user unit running the dashboard with the options
given, written by the local backend's unit writer; the token kept out of it, in a 0600 file."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from conftest import run_berth


def test_install_unit_writes_the_unit_and_a_private_token_file(tmp_path: Path) -> None:
    repo_a, repo_b = tmp_path / "a", tmp_path / "b"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "BERTH_STATE_DIR": str(tmp_path / "st")}
    result = run_berth("serve", "--install-unit", "-r", str(repo_a), "-r", str(repo_b),
                       "--host", "0.0.0.0", "--port", "8900", "--token", "s3cret",
                       "--webhook", "slack:http://127.0.0.1:9/hook", env=env)
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "cfg" / "systemd" / "user" / "berth-serve.service"
    text = unit.read_text()
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line
                 and not line.startswith("#"))
    assert shlex.split(lines["ExecStart"]) == [
        sys.executable, "-m", "berth", "serve", "-b", "local", "--host", "0.0.0.0", "--port",
        "8900", "--alert-settle", "30", "--alert-grace", "30", "-r", str(repo_a.resolve()),
        "-r", str(repo_b.resolve()), "--webhook", "slack:http://127.0.0.1:9/hook"]
    assert lines["Restart"] == "always" and lines["WantedBy"] == "default.target"
    assert lines["Environment"] == f"BERTH_STATE_DIR={tmp_path / 'st'}"
    token_file = tmp_path / "cfg" / "berth" / "serve.env"
    assert lines["EnvironmentFile"] == f"-{token_file}"
    assert "s3cret" not in text
    assert token_file.read_text() == "BERTH_SERVE_TOKEN=s3cret\n"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert f"wrote {unit}" in result.stdout


def test_install_unit_refuses_an_open_host_without_authentication(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "BERTH_SERVE_TOKEN": ""}
    result = run_berth("serve", "--install-unit", "--host", "0.0.0.0", env=env)
    assert result.returncode == 2 and "needs authentication" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cfg").exists()  # nothing written
