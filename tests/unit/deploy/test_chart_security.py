"""berth's chart meets Pod Security "restricted" (issue 12 item 14): checked on rendered
manifests by the profile's rules as Kubernetes publishes them (pod-security-standards, v1.30):
host namespaces, privileged, capabilities, hostPath and volume types, privilege escalation,
non-root, seccomp. hostNetwork: true is the one deliberate exception (EPICS broadcast)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import yaml

from berth.deploy.kube.chart import chart_copy, values_file
from berth.tools import run

pytestmark = pytest.mark.skipif(shutil.which("helm") is None, reason="no helm binary")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the "restricted" profile (which includes "baseline")."""
    found = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    context = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']}: {', '.join(sorted(kinds))}")
    if context.get("runAsUser") == 0:
        found.append("pod runAsUser: 0")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for container in containers:
        name, own = container["name"], container.get("securityContext") or {}
        if own.get("privileged"):
            found.append(f"{name}: privileged")
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if own.get("runAsNonRoot", context.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot is not true")
        if own.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser: 0")
        seccomp = (own.get("seccompProfile") or context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        caps = own.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{name}: hostPort")
    return found


def pod_spec(values: dict[str, Any]) -> dict[str, Any]:
    with chart_copy("2026.1.1") as chart, values_file(values) as file:
        text = run(["helm", "template", "bl01b-ea-ioc-01", str(chart), "--values", str(file)])
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        for version in ("1.30.0", "1.35.0"):
            kubernetes_validate.validate(doc, version, strict=True)
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    spec: dict[str, Any] = sts["spec"]["template"]["spec"]
    return spec


BASE: dict[str, Any] = {"image": "ghcr.io/berth/softioc:1.0", "global": {"domain": "bl01b"},
                        "configFiles": {"ioc.yaml": "ioc_name: x\n"}}
SIDECARS: dict[str, Any] = {
    "initContainers": [{"name": "prepare", "image": "busybox", "command": ["true"]}],
    "extraContainers": [{"name": "simulator", "image": "busybox", "command": ["sleep", "9"],
                         "securityContext": {"readOnlyRootFilesystem": False}}],
}


def test_defaults_break_only_host_networking():
    assert restricted_violations(pod_spec(BASE)) == ["hostNetwork: true"]


def test_without_host_networking_the_pod_is_restricted_with_init_and_extra_containers():
    pod = pod_spec({**BASE, **SIDECARS, "hostNetwork": False})
    assert restricted_violations(pod) == []
    [init] = pod["initContainers"]
    extra = pod["containers"][1]
    assert init["securityContext"]["runAsNonRoot"] is True
    # a container's own setting wins; the hardened rest is filled in
    assert extra["securityContext"]["readOnlyRootFilesystem"] is False
    assert extra["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_checker_sees_what_a_values_file_relaxes():
    pod = pod_spec({**BASE, "hostNetwork": False,
                    "securityContext": {"allowPrivilegeEscalation": True},
                    "dataVolume": {"hostPath": "/data"}})
    assert restricted_violations(pod) == [
        "volume data-volume: hostPath", "bl01b-ea-ioc-01: allowPrivilegeEscalation is not false"]
