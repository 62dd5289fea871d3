"""The soft-IOC Generic IOC image: built without a registry, minimal at run time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from berth.image import debian_mirror
from berth.tools.engine import Engine
from containers import (  # noqa: F401 - fixtures
    engine_fixture,
    loopback_epics_fixture,
    softioc_image_fixture,
)

MAX_RUNTIME_BYTES = 300_000_000

# the first test also waits for the session's image build (debootstrap: 1-3 minutes)
pytestmark = pytest.mark.timeout(900)


def test_mirror_read_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_read_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# local mirror\ndeb [arch=amd64] http://apt.example/debian bookworm main\n"
        "deb http://apt.example/debian-security bookworm-security main\n")
    assert debian_mirror(tmp_path) == "http://apt.example/debian"


def test_runtime_stage_holds_no_compiler(engine: Engine, softioc_image: str) -> None:
    result = subprocess.run(engine.argv("run", "--rm", softioc_image, "sh", "-c",
                                        "command -v gcc cc"), capture_output=True, text=True)
    assert result.returncode != 0, f"compiler found in the runtime image: {result.stdout}"
    # ... while berth and the embedded EPICS runtime are there
    check = subprocess.run(engine.argv("run", "--rm", softioc_image, "python3", "-c",
                                       "import berth, epicscorelibs, pvxslibs; print('ok')"),
                           capture_output=True, text=True)
    assert check.stdout.strip() == "ok", check.stderr


def test_image_starts_berth_run_on_the_config_folder(engine: Engine,
                                                     softioc_image: str) -> None:
    config = json.loads(engine.run("image", "inspect", "--format", "{{json .Config}}",
                                   softioc_image).stdout)
    assert config["Cmd"] == ["berth", "run", "/epics/ioc/config"]
    assert "RUNTIME_DIR=/epics/runtime" in config["Env"]


def test_runtime_image_size_is_within_target(engine: Engine, softioc_image: str) -> None:
    size = engine.image_size(softioc_image)
    assert 0 < size <= MAX_RUNTIME_BYTES, f"{size / 1e6:.0f} MB"


def test_build_is_skipped_when_the_image_is_up_to_date(engine: Engine,
                                                       softioc_image: str) -> None:
    from berth.image import SOURCE_LABEL, source_hash
    from conftest import run_berth

    # the session built (or found up to date) this image from these very sources
    assert engine.image_label(softioc_image, SOURCE_LABEL) == source_hash(), \
        f"{softioc_image} is labelled with other sources than this checkout's"
    result = run_berth("image", "build", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["up_to_date"] is True
    assert report["timings"]["total"] < 10


def test_a_build_says_what_it_does_and_never_goes_quiet(engine: Engine,
                                                         softioc_image: str) -> None:
    """`image build --json`: the report on stdout; on stderr each step, and a line every few
    seconds while a step prints nothing itself (collecting wheels, the engine's build)."""
    import re
    import time

    from conftest import run_berth

    tag = f"berth-test/progress:{int(time.time())}"
    try:
        result = run_berth("image", "build", "--force", "--json", "-t", tag, timeout=900)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["tags"] == [tag]
        lines = result.stderr.splitlines()
        steps = ["berth: image: collecting the wheels of berth and its dependencies (pip)",
                 f"berth: image: building {tag} ({engine.name} build)"]
        assert [line for line in lines if line in steps] == steps
        ticks = [line for line in lines if re.fullmatch(
            rf"({'|'.join(map(re.escape, steps))}) \(\d+ s\)", line)]
        assert ticks, result.stderr  # building berth's wheel alone takes longer than a tick
    finally:
        subprocess.run([*engine.argv("rmi"), tag], capture_output=True)


def test_the_dashboard_image_serves_a_repositorys_overview(engine: Engine,
                                                           softioc_image: str) -> None:
    """`image build --dashboard`: ghcr.io/berth/berth runs `berth serve` (as a non-root user)
    over a repository mounted at /repo, and carries the programs its backends call."""
    import shutil
    import socket
    import tempfile
    import time
    import urllib.request

    from conftest import REPO_ROOT, run_berth

    result = run_berth("image", "build", "--dashboard", "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    tag = json.loads(result.stdout)["tags"][0]
    assert tag.startswith("ghcr.io/berth/berth:")
    for tool in (["helm", "version", "--short"], ["kubectl", "version", "--client"],
                 ["docker", "--version"], ["id", "-u"]):
        ran = subprocess.run([*engine.argv("run"), "--rm", tag, *tool], capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "1000"
    shared = Path(tempfile.mkdtemp(prefix="berth-dashboard-"))  # readable by the image's user
    shared.chmod(0o755)
    shutil.copytree(REPO_ROOT / "examples" / "bl01b", shared / "repo")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"berth-dashboard-test-{port}"
    try:
        started = subprocess.run(
            [*engine.argv("run"), "-d", "--name", name, "--network", "host", "-v",
             f"{shared / 'repo'}:/repo:ro", tag, "berth", "serve", "--host", "127.0.0.1",
             "--port", str(port), "-b", "local", "-r", "/repo"],
            capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    logs = subprocess.run([*engine.argv("logs"), name], capture_output=True,
                                          text=True)
                    raise AssertionError(f"no dashboard: {logs.stdout}{logs.stderr}") from None
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            page = r.read().decode()
        for instance in ("bl01b-ea-sum-01", "bl01b-ea-py-01", "bl01b-mo-sim-01"):
            assert instance in page
    finally:
        subprocess.run([*engine.argv("rm", "-f", name)], capture_output=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_the_compose_dashboard_service_sees_the_repositorys_iocs(engine: Engine,
                                                                  softioc_image: str,
                                                                  tmp_path: Path) -> None:
    """`berth new service dashboard` in a compose repository, then `berth up -b compose`: the
    dashboard container (UID 1000, in the engine socket's group, the repository at its own
    path) reads the engine and shows the IOC beside it running, not "not deployed"."""
    import re
    import time
    import urllib.request

    import yaml

    from conftest import run_berth

    built = run_berth("image", "build", "--dashboard", "--json", timeout=900)
    assert built.returncode == 0, built.stderr
    folder = tmp_path / "bl09x-services"
    assert run_berth("new", "services", str(folder), "--layout", "compose").returncode == 0
    assert run_berth("new", "service", "dashboard", "-r", str(folder)).returncode == 0
    base = folder / "include" / "ioc.yml"  # the IOC's beacons stay on loopback
    text = yaml.safe_load(base.read_text())
    text["services"]["linux_ioc"]["environment"].update({
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO", "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO", "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1"})
    base.write_text(yaml.safe_dump(text))
    token = "dashboard-test-token"
    env = {"BERTH_SERVE_TOKEN": token, "BERTH_STATE_DIR": str(tmp_path / "state")}
    try:
        up = run_berth("up", "-b", "compose", "-r", str(folder), env=env, timeout=300)
        assert up.returncode == 0, up.stderr
        request = urllib.request.Request("http://127.0.0.1:8800/",
                                         headers={"Authorization": f"Bearer {token}"})
        deadline, state = time.monotonic() + 60, None
        while state != "running":
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    page = response.read().decode()
                match = re.search(r'data-name="bl09x-ea-test-01"[^>]*data-state="([^"]+)"', page)
                state = match.group(1) if match else None
            except OSError:
                pass
            if state != "running":
                if time.monotonic() > deadline:
                    logs = subprocess.run([*engine.argv("logs"), "berth-dashboard"],
                                          capture_output=True, text=True)
                    raise AssertionError(f"IOC row state {state}: {logs.stdout}{logs.stderr}")
                time.sleep(1)
    finally:
        run_berth("down", "-y", "-b", "compose", "-r", str(folder), env=env, timeout=300)
