"""The compose backend runs every service of example-services, not only its IOCs.

A copy of the corpus's example-services with local images: the soft-IOC image for the IOCs, p4p's
`pvagw` for the PVA gateway, and a stand-in for what cannot be installed here (ubuntu, nginx,
the CA gateway, Phoebus). Its published ports are on 127.0.0.1; the IOCs talk to the gateways on
the repository's own docker bridge network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.tools.engine import Engine
from conftest import REPO_ROOT, run_berth
from containers import (  # noqa: F401 - fixtures too
    LOOPBACK_ENV,
    engine_fixture,
    loopback_epics_fixture,
    softioc_image_fixture,
    wait_until,
)

pytestmark = pytest.mark.timeout(900)

IMAGES = REPO_ROOT / "tests" / "images"
PVA_PORT = 5105  # EPICS_PVA_SERVER_PORT in example-services/.env: the pvagw's published port
TEST_PROFILE_SERVICES = {"init", "bl01t-ea-test-01", "bl01t-di-cam-01", "bl01t-mo-sim-01",
                         "epics-opis", "ca-gateway", "pvagw", "phoebus"}
IOCS = {"bl01t-ea-test-01", "bl01t-di-cam-01", "bl01t-mo-sim-01"}

# The corpus copy has no include/init.sh; this one does what ec's does for these services:
# the gateway and Phoebus configurations from their templates, with the repository's ports.
INIT_SH = """#!/bin/bash
set -e
cd /workspace/services
sed -e "s/172.20.255.255/${CA_BROADCAST}/" -e "s/5075/${EPICS_PVA_SERVER_PORT}/g" \\
    pvagw/config/pvagw.template > pvagw/config/pvagw.config
sed -e "s/5064/${EPICS_CA_SERVER_PORT}/g" -e "s/5075/${EPICS_PVA_SERVER_PORT}/g" \\
    phoebus/config/settings.template > phoebus/config/settings.ini
echo "init: configurations written"
"""

# ADSimDetector and motorSim are not in the soft-IOC image: these IOCs run its own support.
SOFT_IOC_YAML = """ioc_name: "{{ _global.get_env('IOC_NAME') }}"
description: soft stand-in for the test
entities:
  - type: devIocStats.iocAdminSoft
    IOC: "{{ ioc_name | upper }}"
"""


def build_image(engine: Engine, tag: str, context: Path, base: str) -> str:
    result = subprocess.run(engine.argv("build", "-q", "--build-arg", f"BASE={base}", "-t", tag,
                                        str(context)),
                            capture_output=True, text=True, env=engine.build_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    return tag


@pytest.fixture(scope="session")
def pvagw_image(engine: Engine, softioc_image: str, tmp_path_factory: pytest.TempPathFactory
                ) -> str:
    """p4p's gateway, with the p4p and ply this test environment runs (same Python, 3.11)."""
    import p4p
    import ply

    context = tmp_path_factory.mktemp("pvagw-image")
    shutil.copytree(IMAGES / "pvagw", context, dirs_exist_ok=True)
    for package in (p4p, ply):
        folder = Path(package.__file__).parent
        shutil.copytree(folder, context / "site-packages" / folder.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return build_image(engine, "berth-test/pvagw:latest", context, softioc_image)


@pytest.fixture(scope="session")
def standin_image(engine: Engine, softioc_image: str) -> str:
    return build_image(engine, "berth-test/standin:latest", IMAGES / "standin", softioc_image)


def with_local_images(repo: Path, images: dict[str, str]) -> None:
    """Each compose file's `image:` lines replaced by the local image given for that file (its
    path under the repository), and ports published on every interface moved to 127.0.0.1."""
    for relative, image in images.items():
        path = repo / relative
        text = re.sub(r"(?m)^(\s+image:).*$", rf"\1 {image}", path.read_text())
        text = re.sub(r"(?m)^(\s+- )(\d+:\d+(/tcp)?)$", r"\g<1>127.0.0.1:\2", text)
        path.chmod(0o644)
        path.write_text(text)


@pytest.fixture
def example_services(corpus: Path, tmp_path: Path, softioc_image: str, pvagw_image: str,
                     standin_image: str, engine: Engine) -> Iterator[Path]:
    repo = tmp_path / "example-services"
    shutil.copytree(corpus / "services" / "example-services", repo)
    for path in [repo, *repo.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with_local_images(repo, {
        "compose.yaml": standin_image,  # init (ubuntu)
        "services/bl01t-ea-test-01/compose.yml": softioc_image,
        "services/bl01t-di-cam-01/compose.yml": softioc_image,
        "services/bl01t-mo-sim-01/compose.yml": softioc_image,
        "services/gateway/compose.yml": standin_image,
        "services/pvagw/compose.yml": pvagw_image,
        "services/epics-opis/compose.yml": standin_image,
        "services/phoebus/compose.yml": standin_image,
    })
    (repo / "include" / "init.sh").write_text(INIT_SH)
    (repo / "include" / "init.sh").chmod(0o755)
    for name in ("bl01t-di-cam-01", "bl01t-mo-sim-01"):
        (repo / "services" / name / "config" / "ioc.yaml").write_text(SOFT_IOC_YAML)
    (repo / "opi").mkdir()
    (repo / "opi" / "demo.bob").write_text("<display/>\n")
    yield repo
    names = engine.container_names(f"berth.repo={repo.resolve()}")
    if names:
        subprocess.run(engine.argv("rm", "-f", *names), capture_output=True)
    made = engine.run("network", "ls", "-q", "--filter", f"label=berth.repo={repo.resolve()}")
    if made.stdout.split():
        subprocess.run(engine.argv("network", "rm", *made.stdout.split()), capture_output=True)


def berth(tmp_path: Path, *args: str | Path) -> str:
    # HOME: Phoebus mounts ~/.Xauthority, which the engine would otherwise make in the real one
    env = {"BERTH_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path), **LOOPBACK_ENV}
    result = run_berth(*args, env=env, timeout=600)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def pva_through_gateway(pv: str) -> float:
    from p4p.client.thread import Context

    conf = {"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{PVA_PORT}", "EPICS_PVA_ADDR_LIST": "",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    with Context("pva", conf=conf, useenv=False) as ctx:
        return float(ctx.get(pv, timeout=2.0))


def test_up_runs_every_service_of_the_profile(example_services: Path, tmp_path: Path,
                                              engine: Engine) -> None:
    repo = example_services
    berth(tmp_path, "up", "-b", "compose", "-r", repo, "-t", "test")

    def rows() -> dict[str, dict[str, object]]:
        found = json.loads(berth(tmp_path, "ps", "-b", "compose", "-r", repo, "-t", "test",
                                 "--json"))
        return {str(row["name"]): row for row in found}

    listed = rows()
    # the services of other profiles (deploy, devcontainer, removed) are not run
    assert set(listed) == TEST_PROFILE_SERVICES
    # a PV of an IOC, read from the host through the PVA gateway (127.0.0.1 only)
    assert wait_until(lambda: pva_through_gateway("bl01t:SUM") == pytest.approx(5.15),
                      timeout=90, what="bl01t:SUM through pvagw")
    listed = rows()
    for name in IOCS:  # IOC columns: the IOC's version (its release) and readiness
        row = listed[name]
        assert row["state"] == "running" and str(row["version"]).startswith("local-"), row
        assert row["health"] in ("ready", "running (not probed)") and "kind" not in row["extra"]
    for name in TEST_PROFILE_SERVICES - IOCS - {"init"}:
        row = listed[name]
        assert row["state"] == "running", row
        assert row["health"] == "not an IOC" and row["extra"]["kind"] == "service"
        assert row["version"] == "working copy"  # run from the working copy, as compose does
    # init is a one-shot job (restart: no) the gateway depends on: done, not crashed
    assert listed["init"]["state"] == "stopped"
    assert listed["init"]["reason"] == "completed (exit 0)"
    assert (repo / "services" / "pvagw" / "config" / "pvagw.config").is_file()

    # compose semantics the engine now holds: the project network with the repository's subnet,
    # service names as aliases on it, configs mounted, command interpolated from .env
    network = json.loads(subprocess.run(engine.argv("network", "inspect",
                                                    "example-services_channel_access"),
                                        capture_output=True, text=True, check=True).stdout)[0]
    assert network["IPAM"]["Config"][0]["Subnet"] == "170.200.0.0/16"
    attached = {c["Name"] for c in network["Containers"].values()}
    assert {"ca-gateway", "pvagw", "bl01t-ea-test-01", "bl01t-di-cam-01"} <= attached
    gateway_log = berth(tmp_path, "logs", "ca-gateway", "-b", "compose", "-r", repo, "-t", "test")
    assert "-cip 170.200.255.255 -pvlist /config/pvlist" in gateway_log
    assert "pvlist" in gateway_log.split("-debug 1", 1)[1]
    with urllib.request.urlopen("http://127.0.0.1:8001/opi/demo.bob", timeout=5) as page:
        assert page.read() == b"<display/>\n"  # the OPI server serves the repository's opi/

    # IOC-only verbs say so for what is not an IOC
    env = {"BERTH_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    refused = run_berth("attach", "pvagw", "-b", "compose", "-r", repo, "-t", "test", env=env)
    assert refused.returncode == 2 and "'pvagw' is not an IOC" in refused.stderr

    berth(tmp_path, "down", "-y", "-b", "compose", "-r", repo, "-t", "test")
    assert engine.container_names(f"berth.repo={repo.resolve()}") == []
    for network in ("example-services_channel_access", "example-services_default"):
        gone = subprocess.run(engine.argv("network", "inspect", network), capture_output=True)
        assert gone.returncode != 0, f"{network} is left behind"
