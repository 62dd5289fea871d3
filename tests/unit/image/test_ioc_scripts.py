"""The soft-IOC image under the pods of berth's ioc-instance chart and of ec's (ec-helm-charts
5.5.0 from the corpus): started with exactly the pod's command and args, user and read-only root,
it answers CA; the pod's liveness probe passes while it answers and fails after it stopped; the
pod's preStop hook (stop.sh) ends it cleanly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from berth.deploy.kube.chart import chart_copy, config_values, values_file
from berth.image import source_hash
from berth.tools.engine import Engine
from conftest import run_berth
from containers import (  # noqa: F401 - fixtures
    LOOPBACK_ENV,
    SOFTIOC,
    ca_get,
    engine_fixture,
    loopback_epics_fixture,
    remove_containers,
    unique_prefix,
    wait_until,
)

pytestmark = pytest.mark.timeout(900)
SERVER_LOOPBACK = {"EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
                   "EPICS_CAS_BEACON_ADDR_LIST": "127.255.255.255",
                   "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
                   "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1", **LOOPBACK_ENV}
EC_CHART = Path("charts/ec-helm-charts-5.5.0/Charts/ioc-instance")


def helm_binary() -> str:
    beside = Path(sys.executable).parent / "helm"
    found = shutil.which("helm") or (str(beside) if beside.exists() else None)
    if found is None:
        pytest.skip("no helm binary: run scripts/install-helm")
    return found


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    """The soft-IOC image of these sources, under a tag of its own (other sessions sharing the
    engine build the default tags from other sources), pinned by its id."""
    tag = f"{SOFTIOC}:src-{source_hash()}"
    result = run_berth("image", "build", "-t", tag, "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    return engine.image_id(json.loads(result.stdout)["tags"][0])


def pod_container(manifests: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all(manifests):
        if doc and doc.get("kind") == "StatefulSet":
            pod = doc["spec"]["template"]["spec"]
            container = dict(pod["containers"][0])
            container["podSecurityContext"] = pod.get("securityContext") or {}
            return container
    raise AssertionError("no StatefulSet rendered")


def render_berth(name: str, values: dict[str, Any]) -> dict[str, Any]:
    with chart_copy("2026.1.1") as chart, values_file(values) as file:
        result = subprocess.run([helm_binary(), "template", name, str(chart), "--values",
                                 str(file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return pod_container(result.stdout)


def render_ec(corpus: Path, tmp: Path, config: Path, name: str, block: dict[str, Any]
              ) -> dict[str, Any]:
    """ec's library chart behind a service chart, as p47's `.helm-shared` uses it."""
    chart = tmp / "ec-service"
    (chart / "templates").mkdir(parents=True)
    (chart / "charts").mkdir()
    shutil.copytree(corpus / EC_CHART, chart / "charts" / "ioc-instance")
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: ec-service\nversion: 0.1.0\ndependencies:\n"
        "  - name: ioc-instance\n    version: 1.0.0\n")
    (chart / "templates" / "ioc.yaml").write_text('{{ include "ioc-instance" . }}\n')
    shutil.copytree(config, chart / "config")  # ec's chart reads the config folder itself
    # a library chart's values are not applied to its parent: start from them, as p47 does
    values = yaml.safe_load((corpus / EC_CHART / "values.yaml").read_text())
    values["global"].update({"domain": "bl01b", "location": "bl01b", "enabled": True})
    values["ioc-instance"].update(block)
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    result = subprocess.run([helm_binary(), "template", name, str(chart)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return pod_container(result.stdout)


def docker_run(engine: Engine, image: str, name: str, pod: dict[str, Any], config: Path,
               runtime: Path) -> None:
    """`docker run` of the pod's container: its command and args, env, user, read-only root,
    the config folder at its mount path and the volumes as fresh folders."""
    security = {**pod["podSecurityContext"], **(pod.get("securityContext") or {})}
    argv = ["run", "-d", "-i", "-t", "--name", name, "--network", "host",
            "--entrypoint", pod["command"][0]]
    if "runAsUser" in security:
        argv += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    if security.get("readOnlyRootFilesystem"):
        argv += ["--read-only", "--tmpfs", "/tmp"]
    for mount in pod["volumeMounts"]:
        if mount["name"] == "config-volume":
            argv += ["-v", f"{config}:{mount['mountPath']}:ro"]
        elif mount["mountPath"] == "/epics/runtime":
            argv += ["-v", f"{runtime}:/epics/runtime"]
        elif mount["mountPath"] != "/tmp":
            argv += ["--tmpfs", f"{mount['mountPath']}:uid=1000,gid=1000"]
    for item in pod.get("env") or []:
        argv += ["-e", f"{item['name']}={item.get('value', '')}"]
    for key, value in SERVER_LOOPBACK.items():
        argv += ["-e", f"{key}={value}"]
    engine.run(*argv, image, *pod["command"][1:], *pod.get("args", []))


def exec_probe(engine: Engine, name: str, probe: list[str]) -> int:
    return subprocess.run(engine.argv("exec", name, *probe), capture_output=True,
                          timeout=60).returncode


def state(engine: Engine, name: str) -> tuple[str, int]:
    info = engine.inspect([name])[0]["State"]
    return info["Status"], info["ExitCode"]


def config_folder(tmp: Path, prefix: str) -> tuple[Path, Path]:
    config, runtime = tmp / "config", tmp / "runtime"
    config.mkdir()
    runtime.mkdir()
    runtime.chmod(0o777)  # the pod's user (1000) writes there
    (config / "ioc.yaml").write_text(
        "ioc_name: test-ioc\nentities:\n"
        f"  - {{type: epics.EpicsEnvSet, name: P, value: '{prefix}:'}}\n"
        "  - type: epics.StartupCommand\n"
        f"    command: dbLoadRecords /epics/ioc/config/records.db \"P={prefix}:\"\n")
    (config / "records.db").write_text('record(ao, "$(P)VALUE") {\n  field(VAL, "7")\n}\n')
    return config, runtime


def run_pod(engine: Engine, image: str, pod: dict[str, Any], config: Path, runtime: Path,
            prefix: str) -> None:
    name = f"berth-test-{prefix.lower()}"
    try:
        docker_run(engine, image, name, pod, config, runtime)
        try:
            wait_until(lambda: ca_get(f"{prefix}:VALUE") == 7, 60, "a CA answer")
        except AssertionError as exc:
            logs = subprocess.run(engine.argv("logs", name), capture_output=True, text=True)
            raise AssertionError(f"{exc}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}") from None
        liveness = pod["livenessProbe"]["exec"]["command"]
        assert exec_probe(engine, name, liveness) == 0
        assert exec_probe(engine, name, pod["lifecycle"]["preStop"]["exec"]["command"]) != 1
        assert wait_until(lambda: state(engine, name)[0] == "exited", 20, "the IOC to end")
        assert state(engine, name)[1] == 0, "stop.sh did not end the IOC cleanly"
        # the same probe, from a container beside it on the same runtime folder and network
        after = subprocess.run(engine.argv(
            "run", "--rm", "--network", "host", "-v", f"{runtime}:/epics/runtime",
            "--entrypoint", liveness[0], image, *liveness[1:]), capture_output=True, text=True)
        assert after.returncode != 0, after.stdout
        assert "does not answer" in after.stderr
    finally:
        remove_containers(engine, [name])


def test_image_runs_under_berths_chart(engine: Engine, image: str, tmp_path: Path) -> None:
    prefix = unique_prefix()
    config, runtime = config_folder(tmp_path, prefix)
    pod = render_berth("bl01b-ea-test-01", {"image": image, "domain": "bl01b",
                                            **config_values(config)})
    assert pod["command"] == ["bash", "-c"] and pod["args"] == ["/epics/ioc/start.sh"]
    assert pod["securityContext"]["readOnlyRootFilesystem"] is True
    run_pod(engine, image, pod, config, runtime, prefix)


def test_image_runs_under_ec_chart(engine: Engine, image: str, corpus: Path,
                                   tmp_path: Path) -> None:
    prefix = unique_prefix()
    config, runtime = config_folder(tmp_path, prefix)
    pod = render_ec(corpus, tmp_path, config, "bl01b-ea-test-02", {"image": image})
    assert pod["livenessProbe"]["exec"]["command"] == ["/bin/bash", "/epics/ioc/liveness.sh"]
    run_pod(engine, image, pod, config, runtime, prefix)


def test_a_config_folder_start_sh_replaces_the_start_up(engine: Engine, image: str,
                                                        tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "start.sh").write_text("echo instance start.sh ran as $(id -u)\n")
    result = subprocess.run(engine.argv(
        "run", "--rm", "-v", f"{config}:/epics/ioc/config:ro", "--entrypoint", "bash", image,
        "-c", "/epics/ioc/start.sh"), capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "instance start.sh ran as 1000", result.stderr
