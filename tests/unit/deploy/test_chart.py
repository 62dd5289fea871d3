"""berth's ioc-instance chart rendered by a real helm: every p47 service that uses the chart and
every instance of examples/bl01b renders, passes `helm lint`, and every manifest validates
strictly against Kubernetes 1.30 and 1.35; then the chart's behaviour, value by value."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from berth.deploy import get_backend
from berth.deploy.kube.chart import chart_copy, chart_dir, service_values, values_file
from berth.deploy.services import ServicesRepo
from berth.errors import BerthError

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "examples" / "bl01b"
P47_IOCS = ["bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01", "sr03c-va-ioc-01",
            "bl47p-ea-fastcs-01", "bl47p-ea-panda-01", "bl47p-synoptic"]
K8S_VERSIONS = ["1.30.0", "1.35.0"]


def _helm() -> str | None:
    beside = Path(sys.executable).parent / "helm"
    return shutil.which("helm") or (str(beside) if beside.exists() else None)


HELM = _helm()
pytestmark = pytest.mark.skipif(HELM is None, reason="no helm binary: run scripts/install-helm")


def _example_iocs() -> list[str]:
    if not (EXAMPLE / "services").is_dir():
        return []
    return sorted(ServicesRepo.load(EXAMPLE).iocs)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)


def render_text(values: dict[str, Any], name: str = "bl01b-ea-ioc-01") -> str:
    """berth's bundled chart rendered with these values by a real helm."""
    with chart_copy("2026.1.1") as chart, values_file(values) as file:
        result = helm("template", name, str(chart), "-n", "bl01b", "--values", str(file))
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(values: dict[str, Any], name: str = "bl01b-ea-ioc-01") -> dict[str, list[dict]]:
    """Render the chart with these values; manifests grouped by kind."""
    kinds: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all(render_text(values, name)):
        if doc:
            kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def validate_all(manifests: str) -> list[str]:
    kinds = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    return kinds


def lint(values: dict[str, Any]) -> None:
    with chart_copy("2026.1.1") as chart, values_file(values) as file:
        result = helm("lint", "--strict", str(chart), "--values", str(file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def p47(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("p47") / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", copy, symlinks=True)
    return copy


@pytest.mark.parametrize("name", P47_IOCS)
def test_p47_service_renders_lints_and_validates(p47: Path, name: str):
    """berth's bundled chart takes the values ec's users write (p47 itself renders with the
    chart it pins: tests/unit/deploy/test_k8s_services.py)."""
    repo = ServicesRepo.load(p47)
    assert name in repo.iocs
    manifests = render_text(service_values(repo.service(name)), name)
    kinds = validate_all(manifests)
    assert "StatefulSet" in kinds
    assert ("ConfigMap" in kinds) == (name != "bl47p-ea-panda-01")  # panda's config is empty
    lint(service_values(repo.service(name)))
    sts = next(d for d in yaml.safe_load_all(manifests) if d and d["kind"] == "StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    # location and domain come from services/values.yaml's global block
    assert {k: labels[k] for k in ("app", "ioc", "location", "domain", "enabled")} == {
        "app": name, "ioc": "true", "location": "bl47p", "domain": "p47", "enabled": "true"}


def test_p47_values_reach_the_pod(p47: Path):
    repo = ServicesRepo.load(p47)
    pods = {}
    for name in ("bl47p-ea-fastcs-01", "bl47p-mo-ioc-01", "bl47p-ea-dcam-01", "bl47p-synoptic"):
        sts = render(service_values(repo.service(name)), name)["StatefulSet"][0]
        pods[name] = sts["spec"]["template"]["spec"]
    fastcs = pods["bl47p-ea-fastcs-01"]
    assert [c["name"] for c in fastcs["containers"]] == ["bl47p-ea-fastcs-01",
                                                         "temp-controller-simulator"]
    assert fastcs["initContainers"][0]["name"] == "test-init"
    assert fastcs["containers"][0]["args"] == [
        'stdio-socket --ptty "fastcs-example run /epics/ioc/config/controller.yaml"']
    assert "livenessProbe" not in fastcs["containers"][0]  # livenessExecutable: ""
    assert "lifecycle" not in fastcs["containers"][0]  # preStopExecutable: ""
    mo = pods["bl47p-mo-ioc-01"]
    assert {"name": "dev-shm", "mountPath": "/dev/shm"} in mo["containers"][0]["volumeMounts"]
    assert mo["tolerations"][0]["key"] == "beamline"  # from the shared values
    assert mo["containers"][0]["securityContext"]["runAsUser"] == 37887
    # merged with the chart's safe defaults
    assert mo["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    dcam_mounts = [m["mountPath"] for m in pods["bl47p-ea-dcam-01"]["containers"][0]
                   ["volumeMounts"]]
    # dataVolume.hostPath is already mounted by the shared volumes: not mounted twice
    assert len(dcam_mounts) == len(set(m.rstrip("/") for m in dcam_mounts))
    synoptic_volumes = [v["name"] for v in pods["bl47p-synoptic"]["volumes"]]
    assert "opis-volume" in synoptic_volumes  # the name its volumeMounts refer to
    # its init container names no mounts: it sees the IOC's, so it can write /epics/opi
    init_mounts = pods["bl47p-synoptic"]["initContainers"][0]["volumeMounts"]
    assert init_mounts == pods["bl47p-synoptic"]["containers"][0]["volumeMounts"]
    assert {"/epics/opi", "/opis"} <= {m["mountPath"] for m in init_mounts}


def test_an_init_container_with_its_own_mounts_keeps_them():
    own = {"name": "prepare", "image": "busybox",
           "volumeMounts": [{"name": "tmp-volume", "mountPath": "/scratch"}]}
    pod = statefulset(with_values(initContainers=[own]))["spec"]["template"]["spec"]
    # hardened like the IOC's container (Pod Security "restricted")
    assert pod["initContainers"] == [{**own, "securityContext": HARDENED}]


@pytest.mark.parametrize("name", _example_iocs() or [
    pytest.param("-", marks=pytest.mark.skip(reason="examples/bl01b has no instances yet"))])
def test_example_instance_renders_lints_and_validates(name: str):
    repo = ServicesRepo.load(EXAMPLE)
    kinds = validate_all(get_backend("k8s", EXAMPLE, "bl01b").template(name))
    assert "StatefulSet" in kinds
    lint(service_values(repo.service(name)))


HARDENED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
BASE: dict[str, Any] = {"image": "ghcr.io/berth/softioc:1.0",
                        "global": {"domain": "bl01b", "location": "bl01b-loc", "enabled": True},
                        "configFiles": {"ioc.yaml": "ioc_name: x\n"}}


def with_values(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def statefulset(values: dict[str, Any]) -> dict:
    return render(values)["StatefulSet"][0]


def test_one_replica_and_zero_when_disabled():
    assert statefulset(BASE)["spec"]["replicas"] == 1
    assert statefulset(with_values(enabled=False))["spec"]["replicas"] == 0
    stopped_beamline = {**BASE, "global": {**BASE["global"], "enabled": False}}
    assert statefulset(stopped_beamline)["spec"]["replicas"] == 0
    # the service's own value wins over global
    assert statefulset({**stopped_beamline, "enabled": True})["spec"]["replicas"] == 1
    labels = statefulset(with_values(enabled=False))["metadata"]["labels"]
    assert labels["enabled"] == "false"


def test_config_hash_follows_the_config_and_no_configmap_when_empty():
    def config_hash(files: dict[str, str]) -> str:
        sts = statefulset(with_values(configFiles=files))
        return sts["spec"]["template"]["metadata"]["annotations"]["berth/config-hash"]

    first = config_hash({"ioc.yaml": "a: 1\n"})
    assert first == config_hash({"ioc.yaml": "a: 1\n"})
    assert first != config_hash({"ioc.yaml": "a: 2\n"})
    assert first != config_hash({"ioc.yaml": "a: 1\n", "extra.db": "record(ai, X) {}\n"})

    kinds = render(with_values(configFiles={}))
    assert "ConfigMap" not in kinds
    pod = kinds["StatefulSet"][0]["spec"]["template"]["spec"]
    assert "config-volume" not in [v["name"] for v in pod["volumes"]]
    config = render(BASE)["ConfigMap"][0]
    assert config["data"] == {"ioc.yaml": "ioc_name: x\n"}


def test_config_folder_files_travel_as_values(tmp_path: Path):
    from berth.deploy.kube.chart import config_values

    (tmp_path / "ioc.yaml").write_text("ioc_name: x\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\x00\x01")
    values = config_values(tmp_path)
    assert values == {"configFiles": {"ioc.yaml": "ioc_name: x\n"},
                      "configBinaryFiles": {"blob.bin": "/wAB"}}
    config = render(with_values(**values))["ConfigMap"][0]
    assert config["binaryData"] == {"blob.bin": "/wAB"}
    validate_all(yaml.safe_dump(config))
    (tmp_path / "sub").mkdir()
    with pytest.raises(BerthError, match="sub-folders of the config folder"):
        config_values(tmp_path)


def test_host_network_by_default_and_a_service_only_without_it():
    kinds = render(BASE)
    assert "Service" not in kinds
    pod = kinds["StatefulSet"][0]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"

    kinds = render(with_values(hostNetwork=False, clusterIP="10.0.0.5"))
    [service] = kinds["Service"]
    assert service["spec"]["clusterIP"] == "10.0.0.5"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (5064, "TCP"), (5064, "UDP"), (5075, "TCP"), (5076, "UDP")}
    assert service["spec"]["selector"] == {"app": "bl01b-ea-ioc-01"}
    container = kinds["StatefulSet"][0]["spec"]["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in container["ports"]} == {5064, 5075, 5076}
    assert kinds["StatefulSet"][0]["spec"]["template"]["spec"]["hostNetwork"] is False


def test_attachable_shell_probes_and_safe_security_defaults():
    pod = statefulset(BASE)["spec"]["template"]["spec"]
    ioc = pod["containers"][0]
    assert (ioc["stdin"], ioc["tty"]) == (True, True)
    assert ioc["livenessProbe"]["exec"]["command"] == ["/epics/ioc/liveness.sh"]
    assert ioc["lifecycle"]["preStop"]["exec"]["command"] == ["/epics/ioc/stop.sh"]
    assert ioc["securityContext"] == HARDENED
    mounts = {m["mountPath"] for m in ioc["volumeMounts"]}
    assert {"/tmp", "/epics/runtime", "/epics/opi", "/autosave", "/epics/ioc/config"} <= mounts
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert empty_dirs == {"tmp-volume"}  # opis and runtime are the shared claims
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000,
                                      "runAsGroup": 1000, "fsGroup": 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}

    relaxed = statefulset(with_values(
        securityContext={"readOnlyRootFilesystem": False},
        livenessProbe={"tcpSocket": {"port": 5064}, "periodSeconds": 5},
        readinessExecutable="/epics/ioc/ready.sh"))
    ioc = relaxed["spec"]["template"]["spec"]["containers"][0]
    assert ioc["securityContext"]["readOnlyRootFilesystem"] is False
    assert ioc["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # the rest is kept
    assert ioc["livenessProbe"] == {"tcpSocket": {"port": 5064}, "periodSeconds": 5}
    assert ioc["readinessProbe"]["exec"]["command"] == ["/epics/ioc/ready.sh"]


def volumes_and_mounts(sts: dict) -> tuple[dict[str, dict], dict[str, dict]]:
    pod = sts["spec"]["template"]["spec"]
    return ({v["name"]: v for v in pod["volumes"]},
            {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]})


def test_shared_claims_are_named_as_ec_names_them_and_mounted_per_release():
    volumes, mounts = volumes_and_mounts(statefulset(BASE))
    claims = {name: v["persistentVolumeClaim"]["claimName"] for name, v in volumes.items()
              if "persistentVolumeClaim" in v}
    # ec-helm-charts' epics-pvcs names, from the domain
    assert claims == {"autosave-volume": "bl01b-autosave-claim",
                      "opis-volume": "bl01b-opi-claim",
                      "runtime-volume": "bl01b-runtime-claim"}
    for path, volume in (("/autosave", "autosave-volume"), ("/epics/opi", "opis-volume"),
                         ("/epics/runtime", "runtime-volume")):
        assert mounts[path] == {"name": volume, "mountPath": path,
                                "subPath": "bl01b-ea-ioc-01"}
    assert "PersistentVolumeClaim" not in render(BASE)  # the claims are the beamline's


def test_two_iocs_sharing_an_autosave_claim_get_different_sub_paths():
    values = with_values(autosaveClaim="shared-autosave")
    paths = {}
    for name in ("bl01b-ea-ioc-01", "bl01b-ea-ioc-02"):
        volumes, mounts = volumes_and_mounts(render(values, name)["StatefulSet"][0])
        assert volumes["autosave-volume"]["persistentVolumeClaim"]["claimName"] == \
            "shared-autosave"
        paths[name] = mounts["/autosave"]["subPath"]
    assert paths == {"bl01b-ea-ioc-01": "bl01b-ea-ioc-01", "bl01b-ea-ioc-02": "bl01b-ea-ioc-02"}


def test_claims_can_be_turned_off_and_the_data_volume():
    kinds = render(with_values(autosave=False, opisClaim=False, runtimeClaim=False,
                               dataVolume={"pvc": True, "size": "5Gi"}))
    [data] = kinds["PersistentVolumeClaim"]
    assert data["spec"]["resources"]["requests"]["storage"] == "5Gi"
    volumes, mounts = volumes_and_mounts(kinds["StatefulSet"][0])
    assert "autosave-volume" not in volumes and "/autosave" not in mounts
    assert volumes["opis-volume"] == {"name": "opis-volume", "emptyDir": {}}
    assert "subPath" not in mounts["/epics/opi"]  # an emptyDir is the IOC's own
    assert volumes["data-volume"]["persistentVolumeClaim"]["claimName"] == "bl01b-ea-ioc-01-data"


def test_labels_location_domain_fall_back_to_global():
    sts = statefulset(BASE)
    assert {k: sts["metadata"]["labels"][k] for k in ("app", "ioc", "location", "domain")} == {
        "app": "bl01b-ea-ioc-01", "ioc": "true", "location": "bl01b-loc", "domain": "bl01b"}
    own = statefulset(with_values(location="sr03c", domain="sr", labels={"team": "vac"},
                                  podLabels={"tier": "ioc"}))
    labels = own["spec"]["template"]["metadata"]["labels"]
    assert (labels["location"], labels["domain"], labels["team"], labels["tier"]) == (
        "sr03c", "sr", "vac", "ioc")
    env = {e["name"]: e["value"] for e in own["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["IOC_NAME"], env["IOC_PREFIX"], env["IOC_LOCATION"], env["HOME"]) == (
        "bl01b-ea-ioc-01", "BL01B-EA-IOC-01", "sr03c", "/tmp")


def test_reboot_every_commit_changes_the_pod_per_commit():
    def token(commit: str) -> str:
        sts = statefulset({**BASE, "rebootEveryCommit": True,
                           "global": {**BASE["global"], "commit": commit}})
        return sts["spec"]["template"]["metadata"]["annotations"]["berth/reboot-token"]

    assert token("abc123") != token("def456")
    assert "berth/reboot-token" not in statefulset(BASE)["spec"]["template"]["metadata"][
        "annotations"]


def test_schema_rejects_wrong_types_with_a_berth_error(tmp_path: Path):
    with chart_copy("1") as chart, values_file(with_values(caServerPort="abc")) as file:
        result = helm("template", "x", str(chart), "--values", str(file))
    assert result.returncode != 0 and "caServerPort" in result.stderr
    (tmp_path / "services" / "bad-ioc").mkdir(parents=True)
    (tmp_path / "services" / "bad-ioc" / "values.yaml").write_text(
        "ioc-instance:\n  image: x\n  hostNetwork: sometimes\n")
    with pytest.raises(BerthError, match="hostNetwork"):
        get_backend("k8s", tmp_path, "ns").template("bad-ioc")


def test_missing_image_is_reported():
    with chart_copy("1") as chart, values_file({"global": {}}) as file:
        result = helm("template", "x", str(chart), "--values", str(file))
    assert result.returncode != 0 and "image" in result.stderr


def test_strict_validation_would_catch_a_wrong_manifest():
    sts = statefulset(BASE)
    sts["spec"]["template"]["spec"]["containers"][0]["stdinn"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, "1.30.0", strict=True)


def test_plain_helm_lint_of_the_chart_folder():
    result = helm("lint", str(chart_dir()), "--set", "image=ghcr.io/berth/softioc:1.0")
    assert result.returncode == 0, result.stdout
    assert os.path.exists(chart_dir() / "values.schema.json")


def test_install_helm_script_is_idempotent_when_helm_is_there():
    assert HELM
    env = {**os.environ, "PATH": f"{Path(HELM).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "install-helm")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "helm already installed" in result.stdout and "v3." in result.stdout
