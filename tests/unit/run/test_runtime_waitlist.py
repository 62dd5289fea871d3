"""Waiting for `ibek.wait_ip` devices before the IOC starts (berth.run.waitlist)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from berth.errors import BerthError
from berth.run import waitlist


def write_list(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "wait_list.yaml"
    path.write_text("# generated\n\n" + entries)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_parses_the_ibek_format(tmp_path: Path):
    path = write_list(tmp_path, "  - type: ibek.wait_ip\n    device: ctrl\n"
                      "    address: 192.168.0.65:55000\n    timeout: 5\n\n"
                      "  - type: ibek.wait_ip\n    device: plain\n    address: 192.168.0.55\n"
                      "    timeout: 10\n")
    targets = waitlist.load(path)
    assert [(t.device, t.host, t.port, t.timeout, t.line) for t in targets] == [
        ("ctrl", "192.168.0.65", 55000, 5.0, 3), ("plain", "192.168.0.55", None, 10.0, 8)]


def test_a_listening_device_is_reached(tmp_path: Path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        path = write_list(tmp_path, f"- type: ibek.wait_ip\n  device: up\n"
                          f"  address: 127.0.0.1:{port}\n  timeout: 5\n")
        began = time.monotonic()
        waitlist.wait_for(waitlist.load(path), path, log=lambda _: None)
        assert time.monotonic() - began < 2.0


def test_a_silent_device_times_out_naming_device_and_address(tmp_path: Path):
    port = free_port()
    path = write_list(tmp_path, f"- type: ibek.wait_ip\n  device: motorCtrl\n"
                      f"  address: 127.0.0.1:{port}\n  timeout: 1\n")
    began = time.monotonic()
    with pytest.raises(BerthError) as err:
        waitlist.wait_for(waitlist.load(path), path, log=lambda _: None)
    elapsed = time.monotonic() - began
    assert 0.9 < elapsed < 4.0
    text = str(err.value)
    assert f"{path}:3" in text
    assert f"device motorCtrl at 127.0.0.1:{port} did not answer within 1 s" in text


def test_a_malformed_list_is_an_error_with_its_line(tmp_path: Path):
    path = write_list(tmp_path, "- device: x\n  address: [unclosed\n")
    with pytest.raises(BerthError) as err:
        waitlist.load(path)
    assert str(path) in str(err.value) and "malformed wait list" in str(err.value)


def test_a_bad_timeout_names_the_field(tmp_path: Path):
    path = write_list(tmp_path, "- device: x\n  address: h:1\n  timeout: soon\n")
    with pytest.raises(BerthError) as err:
        waitlist.load(path)
    assert f"{path}:3: entry 1 (x): field 'timeout'" in str(err.value)
