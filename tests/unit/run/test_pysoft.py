"""Python soft IOCs (pythonSoftIOC, a config folder with ioc.py) end to end: the example's
bl01b-ea-py-01 in a small repository under `berth up` (real supervisord, real softioc in a
virtual environment built by berth), read over CA and PVA, restarted after kill -9, its Python
shell reached through `berth attach`; the environment reused on the next start, pip's failure
reported cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_local import (
    EXAMPLE,
    LOOPBACK,
    SERVER_LOOPBACK,
    Beamline,
    add_global_env,
    ca_get,
    wait_until,
)

from berth.run import pysoft

NAME = "bl01b-ea-py-01"


@pytest.fixture(scope="module")
def beamline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Beamline]:
    from berth.deploy.local import backend as local

    root = tmp_path_factory.mktemp("pysoft")
    tag = os.urandom(3).hex().upper()
    repo = root / "bl01b"
    (repo / "services").mkdir(parents=True)
    shutil.copy(EXAMPLE / "services" / "values.yaml", repo / "services")
    shutil.copytree(EXAMPLE / "services" / NAME, repo / "services" / NAME)
    for path in (repo / "services").rglob("*.yaml"):
        path.write_text(path.read_text().replace("BL01B-", f"BL01B{tag}-"))
    add_global_env(repo, SERVER_LOOPBACK)
    os.environ.update(LOOPBACK)
    line = Beamline(repo, root / "state", tag, {**LOOPBACK, "BERTH_STATE_DIR": str(root / "state"),
                                                 "BERTH_REPO": str(repo)})
    try:
        line.ok("up", "--wait", "--timeout", "180")  # the first start may build the venv
        yield line
    finally:
        local.shutdown(line.state)


def test_it_serves_its_pvs_over_ca_and_pva(beamline: Beamline) -> None:
    from p4p.client.thread import Context

    assert beamline.ps()[NAME]["ready"]
    first = float(ca_get(beamline.pv("EA-PY-01:COUNT"))[0])
    wait_until(lambda: float(ca_get(beamline.pv("EA-PY-01:COUNT"))[0]) > first, "counting")
    with Context("pva") as ctx:
        assert float(ctx.get(beamline.pv("EA-PY-01:SETPOINT"), timeout=5)) == 1.0


def test_attach_reaches_its_python_shell(beamline: Beamline) -> None:
    shell = subprocess.run([sys.executable, "-m", "berth", "attach", NAME],
                           input=b"print(6*7)\n", env={**os.environ, **beamline.env},
                           capture_output=True, timeout=30)
    assert shell.returncode == 0, shell.stderr
    assert b"42" in shell.stdout
    assert beamline.ps()[NAME]["ready"]  # the IOC outlived its console client


def test_it_restarts_after_kill_9_and_reuses_its_environment(beamline: Beamline) -> None:
    venv = _venv(beamline)
    stamp = (venv / pysoft.STAMP).stat()
    pid = beamline.ps()[NAME]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (r := beamline.ps()[NAME])["pid"] not in (None, pid) and r["ready"],
               "restarted and ready", timeout=60)
    assert ca_get(beamline.pv("EA-PY-01:SETPOINT")) is not None
    again = (venv / pysoft.STAMP).stat()  # not rebuilt: pip did not run
    assert (again.st_ino, again.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    log = beamline.ok("logs", NAME)
    assert f"Python environment {venv} is up to date: reused" in log


def _venv(beamline: Beamline) -> Path:
    return pysoft.venv_dir(beamline.repo / "services" / NAME / "config")


def test_a_failing_pip_is_a_clear_error_and_leaves_no_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no index: nothing can be found, quickly
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.py").write_text("print('never runs')\n")
    (config / "requirements.txt").write_text("no-such-package-for-berth==0.0.1\n")
    result = subprocess.run([sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
                             str(tmp_path / "runtime")], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "never runs" not in result.stdout
    assert f"{config / 'requirements.txt'}: pip could not install" in result.stderr
    assert "No matching distribution found" in result.stderr  # pip's own words, shown
    built = tmp_path / "cache" / "berth" / "pysoft"
    assert [p.name for p in built.iterdir() if not p.name.endswith(".lock")] == []


def test_the_environment_follows_the_requirements_file(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.py").write_text("")
    bare = pysoft.requirements_hash(config)
    (config / "requirements.txt").write_text("numpy\n")
    with_numpy = pysoft.requirements_hash(config)
    assert bare != with_numpy
    assert pysoft.requirements_hash(config) == with_numpy  # stable while it does not change


def _run_in_image(config: Path, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    """`berth run` as berth's soft-IOC image runs it: softioc beside berth, no pip."""
    return subprocess.Popen(
        [sys.executable, "-m", "berth", "run", str(config), "--runtime-dir",
         str(tmp_path / "runtime")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, **LOOPBACK, **SERVER_LOOPBACK, pysoft.NO_PIP: "1",
             "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})


def test_in_the_image_its_own_python_runs_the_ioc(tmp_path: Path) -> None:
    config = EXAMPLE / "services" / NAME / "config"
    prefix = f"BRTPY{os.getpid()}"
    proc = _run_in_image(config, tmp_path, IOC_PREFIX=prefix)
    try:
        assert float(wait_until(lambda: ca_get(f"{prefix}:SETPOINT"), "the IOC")[0]) == 1.0
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert "Python environment" not in output and "pip" not in output, output
    assert not (tmp_path / "cache" / "berth" / "pysoft").exists()


def test_in_the_image_a_missing_requirement_is_a_located_error(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.py").write_text("print('never runs')\n")
    (config / "requirements.txt").write_text(
        "# needed by ioc.py\npackaging>=1\nno-such-package-for-berth>=1.0\nsoftioc<1\n")
    proc = _run_in_image(config, tmp_path)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2, output
    assert "Traceback" not in output and "never runs" not in output
    requirements = config / "requirements.txt"
    assert f"{requirements}:3: requirement 'no-such-package-for-berth>=1.0' is not installed " \
        "in this image (it does not have it), and the image has no pip" in output
    assert f"{requirements}:4: requirement 'softioc<1' is not installed in this image (it " \
        "has softioc " in output
    assert f"{requirements}:2" not in output  # packaging is there
