"""`berth image build` from an installed berth: a fresh virtual environment, berth installed
by pip from a wheel (no checkout beside it), builds the soft-IOC image, and the example
beamline runs on that image under compose (one PV read over CA)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from berth.image import wheel_cache
from berth.tools.engine import Engine
from conftest import REPO_ROOT
from containers import (  # noqa: F401 - fixtures
    SOFTIOC,
    berth_env,
    ca_get,
    copy_example,
    engine_fixture,
    loopback_epics_fixture,
    unique_prefix,
    wait_until,
)

pytestmark = pytest.mark.timeout(1200)


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    import os

    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, f"{argv}: {result.stdout[-1500:]}{result.stderr[-1500:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding berth installed from its wheel (dependencies from the
    wheel cache image builds fill, else the registry)."""
    work = tmp_path_factory.mktemp("installed")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist",
        REPO_ROOT, cwd=work)
    (wheel,) = (work / "dist").glob("berth-*.whl")
    run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    pip = [work / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet"]
    offline = subprocess.run([*map(str, pip), "--no-index", "--find-links", str(wheel_cache()),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    if offline.returncode != 0:
        run(*pip, wheel, cwd=work)
    return work / "venv" / "bin"


def test_installed_berth_builds_the_image_and_the_example_runs_on_it(
        installed: Path, engine: Engine, tmp_path: Path) -> None:
    berth = installed / "berth"
    where = run(installed / "python", "-c", "import berth; print(berth.__file__)",
                cwd=tmp_path).stdout.strip()
    assert str(installed.parent) in where and REPO_ROOT not in Path(where).parents
    tag = f"{SOFTIOC}:installed-test"
    report = json.loads(run(berth, "image", "build", "-t", tag, "--json", "--force",
                            cwd=tmp_path).stdout)
    assert report["tags"] == [tag]
    prefix = unique_prefix()
    repo = copy_example(tmp_path / "bl01b", prefix, ["bl01b-ea-sum-01"])
    values = repo / "services" / "bl01b-ea-sum-01" / "values.yaml"
    text = values.read_text()
    assert f"image: {SOFTIOC}:" in text
    values.write_text("\n".join(f"  image: {tag}" if line.strip().startswith("image:")
                                else line for line in text.splitlines()) + "\n")
    env = berth_env(tmp_path / "state")
    run(berth, "up", "-b", "compose", "-r", repo, cwd=tmp_path, env=env, timeout=300)
    try:
        assert wait_until(lambda: ca_get(f"{prefix}-BL01B-EA-SUM-01:A") == pytest.approx(2.54),
                          60, "CA from the example on the installed berth's image")
        inspect = engine.inspect([c for c in engine.container_names(
            f"berth.repo={repo.resolve()}")])
        assert [c["Config"]["Image"] for c in inspect] == [tag]
    finally:
        subprocess.run([str(berth), "down", "-y", "-b", "compose", "-r", str(repo)],
                       cwd=tmp_path, env={**__import__("os").environ, **env},
                       capture_output=True, timeout=300)
