"""Fixtures and helpers for tests that run real containers (docker or podman).

A test module imports the fixtures (`from containers import engine_fixture, ...`; pytest
knows them as `engine`, `softioc_image`, `loopback_epics`). Tests skip, with the reason, when
no engine answers: `scripts/install-engine` installs and starts one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from berth.tools.engine import Engine, detect
from conftest import REPO_ROOT, run_berth

EXAMPLE = REPO_ROOT / "examples" / "bl01b"
SOFTIOC = "ghcr.io/berth/softioc"
LOOPBACK_ENV = {
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
}


@pytest.fixture(scope="session", name="engine")
def engine_fixture() -> Engine:
    try:
        found = detect()
    except Exception as exc:  # BerthError: none installed
        pytest.skip(f"no container engine: {exc} (run scripts/install-engine)")
    ok, why = found.reachable()
    if not ok:
        pytest.skip(f"{found.name} does not answer: {why} (run scripts/install-engine)")
    return found


@pytest.fixture(scope="session", name="softioc_image")
def softioc_image_fixture(engine: Engine) -> str:
    """The soft-IOC image, built once per session (nothing is built when it is up to date)."""
    result = run_berth("image", "build", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return str(report["tags"][0])


@pytest.fixture(autouse=True, name="loopback_epics")
def loopback_epics_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LOOPBACK_ENV.items():
        monkeypatch.setenv(key, value)


def unique_prefix() -> str:
    return f"H7{uuid.uuid4().hex[:6].upper()}"


def copy_example(dest: Path, prefix: str, names: list[str] | None = None) -> Path:
    """A copy of examples/bl01b whose PV names start with `prefix` (so it cannot clash with
    another run of the same example on this host), optionally with only some instances."""
    shutil.copytree(EXAMPLE, dest)
    if names is not None:
        for folder in (dest / "services").iterdir():
            if folder.is_dir() and folder.name not in names:
                shutil.rmtree(folder)
    for path in dest.rglob("*"):
        if path.is_file():
            text = path.read_text()
            renamed = text.replace("BL01B-", f"{prefix}-BL01B-")
            if renamed != text:
                path.write_text(renamed)
    return dest


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a client timeout while the IOC starts
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last})")


def ca_get(pv: str, timeout: float = 2.0) -> Any:
    from caproto.sync.client import read

    data = read(pv, timeout=timeout, repeater=False).data
    return data[0] if len(data) == 1 else list(data)


def pva_get(pv: str, timeout: float = 3.0) -> Any:
    from p4p.client.thread import Context

    with Context("pva") as ctx:
        return ctx.get(pv, timeout=timeout)


def inspect(engine: Engine, name: str) -> dict[str, Any]:
    found = engine.inspect([name])
    return found[0] if found else {}


def remove_containers(engine: Engine, names: list[str]) -> None:
    if names:
        subprocess.run(engine.argv("rm", "-f", *names), capture_output=True)


def berth_env(state: Path) -> dict[str, str]:
    return {"BERTH_STATE_DIR": str(state), **LOOPBACK_ENV}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def last_lines(text: str, count: int = 5) -> str:
    lines = [line for line in re.split(r"\r?\n", text) if line.strip()]
    return "\n".join(lines[-count:])
