"""Every Helm-layout service is its own chart, as `ec` renders it: `berth template -b k8s` of
each p47 service whose chart is in the mirror equals `helm template` of that folder (with the
pinned package placed in its charts/ by hand), and every manifest validates strictly. Chart
mirrors: a folder of packages, a plain HTTP chart repository, the repository's own setting;
a chart that no mirror has is a located error (exit 2). The user's repository is never written."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import run_berth
from fakebin.fakes import FakeTools, git

kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytestmark = pytest.mark.skipif(shutil.which("helm") is None, reason="no helm binary")

EC_CHARTS = "oci://ghcr.io/epics-containers/charts"
NS = "p47-beamline"
P47_IOCS = ["bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01", "sr03c-va-ioc-01",
            "bl47p-ea-fastcs-01", "bl47p-ea-panda-01", "bl47p-synoptic"]
RENDERABLE = [*P47_IOCS, "p47-epics-opis", "p47-epics-pvcs"]
K8S_VERSIONS = ["1.30.0", "1.35.0"]


def restore_links(root: Path) -> None:
    """The corpus stores symbolic links as files holding their target (git without
    core.symlinks); a checkout of the real repository has links, so make them links again."""
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size > 200:
            continue
        target = path.read_text().strip()
        if target.startswith("../") and "\n" not in target and (path.parent / target).exists():
            path.unlink()
            path.symlink_to(target)


@pytest.fixture(scope="module")
def mirror(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the packages p47 pins: the corpus charts packaged at 5.5.0."""
    folder = tmp_path_factory.mktemp("mirror")
    for chart in (corpus / "charts" / "ec-helm-charts-5.5.0" / "Charts").iterdir():
        subprocess.run(["helm", "package", str(chart), "--version", "5.5.0", "-d", str(folder)],
                       check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def p47(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("p47") / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    restore_links(copy)
    return copy


@pytest.fixture(scope="module")
def reference(p47: Path, mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another copy where each renderable service has its pinned package in charts/, as a
    user would do by hand before `helm template`."""
    copy = tmp_path_factory.mktemp("ref") / "p47-services"
    shutil.copytree(p47, copy, symlinks=True)
    for name in RENDERABLE:
        chart = yaml.safe_load((copy / "services" / name / "Chart.yaml").read_text())
        (copy / "services" / name / "charts").mkdir()
        for dep in chart.get("dependencies") or []:
            package = f"{dep['name']}-{dep['version']}.tgz"
            shutil.copy(mirror / package, copy / "services" / name / "charts" / package)
    return copy


def helm_template(repo: Path, name: str) -> str:
    result = subprocess.run(
        ["helm", "template", name, str(repo / "services" / name), "-n", NS,
         "-f", str(repo / "services" / "values.yaml"),
         "-f", str(repo / "services" / name / "values.yaml")],
        capture_output=True, text=True, check=True)
    return result.stdout


def berth_template(repo: Path, name: str, mirror_setting: str, code: int = 0) -> str:
    result = run_berth("template", name, "-b", "k8s", "-t", NS, "-r", repo,
                       env={"BERTH_CHART_MIRROR": mirror_setting})
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout if code == 0 else result.stderr


def validate(doc: dict) -> None:
    """Strict validation for 1.30 and 1.35. ec-helm-charts 5.5.0's StatefulSet has no
    `serviceName`, which the 1.30 schema requires (optional from 1.33): that one finding is
    the chart's, identical in helm's own output, and is the only one allowed."""
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            known = (version == "1.30.0" and doc["kind"] == "StatefulSet"
                     and "serviceName" not in doc["spec"]
                     and str(exc).startswith("'serviceName' is a required property"))
            if not known:
                raise
            kubernetes_validate.validate(
                {**doc, "spec": {**doc["spec"], "serviceName": doc["metadata"]["name"]}},
                version, strict=True)


def manifests(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("name", RENDERABLE)
def test_template_is_helm_template_of_the_service_folder(p47, mirror, reference, name):
    ours = berth_template(p47, name, f"{EC_CHARTS}={mirror}")
    theirs = helm_template(reference, name)
    assert ours == theirs
    docs = manifests(ours)
    assert manifests(theirs) == docs
    for doc in docs:
        validate(doc)
    kinds = {d["kind"] for d in docs}
    if name == "sr03c-va-ioc-01":  # no templates/ link in its folder: the chart renders nothing
        assert docs == []
    elif name in P47_IOCS:
        assert "StatefulSet" in kinds
    elif name == "p47-epics-pvcs":
        assert kinds == {"PersistentVolumeClaim", "Deployment"}
    else:
        assert kinds == {"ConfigMap", "Deployment", "Service"}
    # nothing was written into the user's repository
    assert not (p47 / "services" / name / "charts").exists()


def test_several_services_in_one_command_are_helm_template_of_each_in_order(p47, mirror,
                                                                             reference):
    order = [*reversed(RENDERABLE)]  # the order given, not the repository's
    ours = berth_template(p47, ",".join(order), f"{EC_CHARTS}={mirror}")
    assert ours == "".join(helm_template(reference, name) for name in order)


def test_several_services_with_missing_charts_report_each_and_print_nothing(p47, mirror):
    result = run_berth("template", "bl47p-ea-dcam-01,pollux-caprepeater,bl47p-gateways",
                       "-b", "k8s", "-t", NS, "-r", p47,
                       env={"BERTH_CHART_MIRROR": f"{EC_CHARTS}={mirror}"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "service 'pollux-caprepeater'" in result.stderr
    assert "service 'bl47p-gateways'" in result.stderr


def test_the_service_values_win_over_the_shared_ones_and_config_is_the_configmap(p47, mirror):
    docs = manifests(berth_template(p47, "bl47p-ea-fastcs-01", f"{EC_CHARTS}={mirror}"))
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    pod = sts["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == [
        'stdio-socket --ptty "fastcs-example run /epics/ioc/config/controller.yaml"']
    assert pod["tolerations"][0]["key"] == "beamline"  # services/values.yaml
    on_disk = {p.name for p in (p47 / "services" / "bl47p-ea-fastcs-01" / "config").iterdir()}
    assert set(config["data"]) == on_disk


def test_a_chart_no_mirror_has_is_a_located_error(p47, mirror):
    setting = f"oci://ghcr.io/epics-containers={mirror}"
    err = berth_template(p47, "pollux-caprepeater", setting, code=2)
    chart_file = p47 / "services" / "pollux-caprepeater" / "Chart.yaml"
    assert f"{chart_file}:9:5" in err
    assert "service 'pollux-caprepeater'" in err
    assert "chart 'carepeater' version 4.4.5-beta.1" in err
    assert f"{mirror} (no carepeater-4.4.5-beta.1.tgz)" in err
    two = f"{setting},oci://ghcr.io/epics-containers=/nonexistent"
    err = berth_template(p47, "bl47p-gateways", two, code=2)
    assert "chart 'epics-gateways' version 2025.11.1" in err
    assert "/nonexistent (no such folder)" in err


@pytest.fixture
def http_repo(mirror: Path, tmp_path: Path) -> Iterator[str]:
    """A plain HTTP chart repository of the mirror's packages (index from `helm repo index`)."""
    folder = tmp_path / "http"
    shutil.copytree(mirror, folder)
    subprocess.run(["helm", "repo", "index", str(folder)], check=True, capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_chart_repository_as_mirror(p47, reference, http_repo):
    for name in ("bl47p-ea-dcam-01", "p47-epics-opis"):
        assert berth_template(p47, name, f"{EC_CHARTS}={http_repo}") == \
            helm_template(reference, name)
    err = berth_template(p47, "pollux-caprepeater",
                         f"oci://ghcr.io/epics-containers={http_repo}/", code=2)
    assert f"{http_repo}/ (index has no carepeater 4.4.5-beta.1)" in err
    err = berth_template(p47, "p47-epics-opis", f"{EC_CHARTS}=http://127.0.0.1:9", code=2)
    assert "cannot read http://127.0.0.1:9/index.yaml" in err


def test_the_repository_setting_names_a_mirror_relative_to_the_repository(
        p47, mirror, reference, tmp_path):
    repo = tmp_path / "p47-services"
    shutil.copytree(p47, repo, symlinks=True)
    shutil.copytree(mirror, repo / "charts-mirror")
    (repo / ".berth").mkdir()
    (repo / ".berth" / "config.yaml").write_text(
        f"chart_mirrors:\n  {EC_CHARTS}: charts-mirror\n")
    assert berth_template(repo, "p47-epics-pvcs", "") == helm_template(reference,
                                                                       "p47-epics-pvcs")
    (repo / ".berth" / "config.yaml").write_text("chart_mirrors: [a]\n")
    err = berth_template(repo, "p47-epics-pvcs", "", code=2)
    assert f"{repo / '.berth' / 'config.yaml'}:1" in err and "chart_mirrors" in err


def test_a_malformed_mirror_setting_is_an_error(p47):
    err = berth_template(p47, "p47-epics-pvcs", "just-a-folder", code=2)
    assert "BERTH_CHART_MIRROR: 'just-a-folder' is not REPO=LOCATION" in err


def test_a_link_out_of_the_repository_is_refused(p47, mirror, tmp_path):
    repo = tmp_path / "p47-services"
    shutil.copytree(p47, repo, symlinks=True)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (repo / "services" / "p47-epics-pvcs" / "leak").symlink_to(outside)
    err = berth_template(repo, "p47-epics-pvcs", f"{EC_CHARTS}={mirror}", code=2)
    assert "symbolic link points outside the repository" in err


# --- deploy, stop, delete and ps of a service with its own chart, at the command boundary -----

@pytest.fixture
def tagged(p47: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "p47-services"
    shutil.copytree(p47, repo, symlinks=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "tag", "2026.4.1")
    return repo


def berth_k8s(fakes: FakeTools, *args: str | Path, mirror: Path, code: int = 0) -> str:
    result = run_berth(args[0], "-b", "k8s", "-t", NS, *args[1:],
                       env={**fakes.env, "BERTH_CHART_MIRROR": f"{EC_CHARTS}={mirror}"})
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.mark.parametrize("name", ["bl47p-ea-dcam-01", "p47-epics-opis"])
def test_deploy_installs_the_service_folder_chart(fakes, tagged, mirror, name):
    berth_k8s(fakes, "deploy", name, "2026.4.1", "-r", tagged, mirror=mirror)
    [call] = fakes.calls()
    argv = call["argv"]
    chart = argv[3]
    commit = git(tagged, "rev-parse", "2026.4.1").strip()
    shared, own = argv[argv.index("--values") + 1], argv[-3]
    assert argv == ["upgrade", "--install", name, chart, "-n", NS, "--values", shared,
                    "--values", own, "--set-string", f"global.commitHash={commit}"]
    assert shared.endswith("/services/values.yaml")
    assert own.endswith(f"/services/{name}/values.yaml")
    meta = yaml.safe_load(call["charts"][chart])
    # the service's own Chart.yaml (ec-service / epics-opis), at the deployed version
    assert meta["name"] == ("ec-service" if name.startswith("bl47p") else "epics-opis")
    assert meta["appVersion"] == "2026.4.1"
    assert not Path(chart).exists()


@pytest.mark.parametrize(("name", "chart"), [("bl47p-ea-dcam-01", "ec-service-1.0.0"),
                                           ("p47-epics-opis", "epics-opis-1.0.0")])
def test_stop_start_rollback_delete_of_a_service_with_its_own_chart(fakes, tmp_path, mirror,
                                                                     name, chart):
    history = [{"revision": 1, "updated": "2026-04-01 10:00:00 +0000 UTC", "status": "superseded",
                "chart": chart, "app_version": "2026.3.1", "description": "x"},
               {"revision": 2, "updated": "2026-04-02 10:00:00 +0000 UTC", "status": "deployed",
                "chart": chart, "app_version": "2026.4.1", "description": "y"}]
    (tmp_path / "history.json").write_text(json.dumps(history))
    fakes.answer("helm", ["history"], file=str(tmp_path / "history.json"))
    for verb in ("stop", "start", "rollback", "delete"):
        berth_k8s(fakes, verb, name, *(["-y"] if verb == "delete" else []), mirror=mirror)
    history_call = ["helm", "history", name, "-n", NS, "-o", "json"]
    scale = ["kubectl", "scale", "statefulset,deployment", "-n", NS, "-l", f"app={name}"]
    assert fakes.argvs() == [
        history_call, [*scale, "--replicas=0"],
        history_call, [*scale, "--replicas=1"],
        history_call, ["helm", "rollback", name, "1", "-n", NS],
        ["helm", "uninstall", name, "-n", NS],
    ]


def test_ps_lists_every_service_with_its_workload_state(fakes, p47, mirror, tmp_path):
    releases = [
        {"name": "bl47p-ea-dcam-01", "status": "deployed", "chart": "ec-service-1.0.0",
         "app_version": "2026.4.1", "updated": "2026-04-01 10:00:00 +0000 UTC"},
        {"name": "p47-epics-opis", "status": "deployed", "chart": "epics-opis-1.0.0",
         "app_version": "2026.4.1", "updated": "2026-04-01 10:00:00 +0000 UTC"},
        {"name": "p47-epics-pvcs", "status": "deployed", "chart": "epics-pvcs-1.0.0",
         "app_version": "2026.4.1", "updated": "2026-04-01 10:00:00 +0000 UTC"},
    ]

    def workload(kind: str, name: str, ready: int, wanted: int, ioc: bool = False) -> dict:
        labels = {"app": name, **({"ioc": "true"} if ioc else {})}
        return {"kind": kind, "metadata": {"name": name, "labels": labels, "annotations": {
            "meta.helm.sh/release-name": name}},
            "spec": {"replicas": wanted}, "status": {"readyReplicas": ready}}

    pod = {"kind": "Pod", "metadata": {"name": "bl47p-ea-dcam-01-0", "labels": {
        "app": "bl47p-ea-dcam-01", "ioc": "true"}}, "spec": {"nodeName": "bl47p-ea-serv-01"},
        "status": {"containerStatuses": [
            {"name": "bl47p-ea-dcam-01", "ready": True, "restartCount": 1,
             "state": {"running": {"startedAt": "2026-04-01T10:00:00Z"}}}]}}
    items = [workload("StatefulSet", "bl47p-ea-dcam-01", 1, 1, ioc=True), pod,
             workload("Deployment", "p47-epics-opis", 1, 1),
             workload("Deployment", "p47-epics-pvcs", 0, 0)]
    (tmp_path / "get.json").write_text(json.dumps({"kind": "List", "items": items}))
    (tmp_path / "list.json").write_text(json.dumps(releases))
    fakes.answer("kubectl", ["get"], file=str(tmp_path / "get.json"))
    fakes.answer("helm", ["list"], file=str(tmp_path / "list.json"))

    rows = {r["name"]: r for r in json.loads(
        berth_k8s(fakes, "ps", "--json", "-r", p47, mirror=mirror))}

    assert fakes.argvs() == [
        ["kubectl", "get", "statefulsets,deployments,daemonsets,pods", "-n", NS, "-o", "json"],
        ["helm", "list", "-n", NS, "--all", "--max", "10000", "-o", "json"],
    ]
    dcam = rows["bl47p-ea-dcam-01"]
    assert (dcam["state"], dcam["restarts"], dcam["extra"]["ready"]) == ("running", 1, True)
    opis = rows["p47-epics-opis"]
    assert (opis["state"], opis["version"]) == ("running", "2026.4.1")
    assert opis["extra"]["workloads"] == {"Deployment/p47-epics-opis": "1/1"}
    assert rows["p47-epics-pvcs"]["state"] == "stopped"
    # every service of the repository is listed, deployed or not
    assert rows["bl47p-gateways"]["state"] == "not deployed"
    assert set(rows) >= set(RENDERABLE) | {"pollux-caprepeater", "p47-blueapi"}


# --- berth's own chart, pinned like any other -------------------------------------------------

def pinned_repo(root: Path, version: str = "1.0.0") -> Path:
    """A repository whose IOC pins berth's bundled chart from berth://charts."""
    ioc = root / "services" / "bl01b-ea-ioc-01"
    (ioc / "config").mkdir(parents=True)
    (root / "services" / "values.yaml").write_text(
        "global:\n  domain: bl01b\n  location: bl01b\n")
    (ioc / "Chart.yaml").write_text(
        "apiVersion: v2\nname: bl01b-ea-ioc-01\nversion: 1.0.0\ntype: application\n"
        f"dependencies:\n  - name: ioc-instance\n    version: {version}\n"
        "    repository: berth://charts\n")
    (ioc / "values.yaml").write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:0.1.0\n")
    (ioc / "config" / "ioc.yaml").write_text("ioc_name: bl01b-ea-ioc-01\n")
    return root


def test_a_service_pinning_berths_chart_renders_it_with_its_config(tmp_path):
    repo = pinned_repo(tmp_path / "bl01b")
    docs = manifests(berth_template(repo, "bl01b-ea-ioc-01", ""))
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind["ConfigMap"]["data"] == {"ioc.yaml": "ioc_name: bl01b-ea-ioc-01\n"}
    pod = by_kind["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ghcr.io/berth/softioc:0.1.0"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims == {"bl01b-autosave-claim", "bl01b-opi-claim", "bl01b-runtime-claim"}
    for doc in docs:
        validate(doc)
    assert not (repo / "services" / "bl01b-ea-ioc-01" / "charts").exists()


def test_a_pin_of_a_chart_version_berth_does_not_carry_is_an_error(tmp_path):
    repo = pinned_repo(tmp_path / "bl01b", version="9.9.9")
    err = berth_template(repo, "bl01b-ea-ioc-01", "", code=2)
    assert f"{repo / 'services' / 'bl01b-ea-ioc-01' / 'Chart.yaml'}:6:5" in err
    assert "berth://charts holds only ioc-instance version 1.0.0" in err
    assert "not 'ioc-instance' version 9.9.9" in err


def test_berth_new_services_pins_the_chart_berth_carries(tmp_path):
    folder = tmp_path / "bl99"
    made = run_berth("new", "services", folder)
    assert made.returncode == 0, made.stderr
    [name] = [p.name for p in (folder / "services").iterdir() if p.is_dir()]
    chart = yaml.safe_load((folder / "services" / name / "Chart.yaml").read_text())
    bundled = yaml.safe_load((Path(__file__).parents[3] / "src" / "berth" / "assets" / "helm"
                              / "ioc-instance" / "Chart.yaml").read_text())
    assert chart["dependencies"] == [{"name": "ioc-instance", "version": bundled["version"],
                                      "repository": "berth://charts"}]
    kinds = [d["kind"] for d in manifests(berth_template(folder, name, ""))]
    assert kinds == ["ConfigMap", "StatefulSet"]


def test_an_oci_mirror_is_pulled_from_with_helm(fakes, p47):
    fakes.answer("helm", ["pull"], stderr="Error: failed to do request: connection refused\n",
                 exit=1)
    result = run_berth("template", "p47-epics-opis", "-b", "k8s", "-t", NS, "-r", p47,
                       env={**fakes.env,
                            "BERTH_CHART_MIRROR": f"{EC_CHARTS}=oci://registry.site:5000/ec/"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [call] = fakes.calls()
    dest = call["argv"][-1]
    assert call["argv"] == ["pull", "oci://registry.site:5000/ec/epics-opis", "--version",
                            "5.5.0", "--destination", dest]
    assert dest.endswith("/p47-epics-opis/charts")
    assert ("oci://registry.site:5000/ec/ (helm pull oci://registry.site:5000/ec/epics-opis: "
            "Error: failed to do request: connection refused)") in result.stderr


def test_up_prepares_every_chart_before_installing_any(fakes, p47, mirror, tmp_path):
    repo = tmp_path / "p47-services"
    shutil.copytree(p47, repo, symlinks=True)
    for folder in (repo / "services").iterdir():
        if folder.is_dir() and folder.name not in [*RENDERABLE, "pollux-caprepeater"]:
            shutil.rmtree(folder)
    setting = f"{EC_CHARTS}={mirror},oci://ghcr.io/epics-containers={mirror}"
    result = run_berth("up", "-b", "k8s", "-t", NS, "-r", repo,
                       env={**fakes.env, "BERTH_CHART_MIRROR": setting})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "chart 'carepeater' version 4.4.5-beta.1" in result.stderr
    assert "nothing deployed: 1 problem(s)" in result.stderr
    assert fakes.calls() == []

    shutil.rmtree(repo / "services" / "pollux-caprepeater")
    result = run_berth("up", "-b", "k8s", "-t", NS, "-r", repo, "--json",
                       env={**fakes.env, "BERTH_CHART_MIRROR": setting})
    assert result.returncode == 0, result.stderr
    assert [a[:4] for a in fakes.argvs()] == [
        ["helm", "upgrade", "--install", name] for name in sorted(RENDERABLE)]
    assert {(r["service"], r["version"]) for r in json.loads(result.stdout)} == {
        (name, "local") for name in RENDERABLE}


def test_up_dry_run_names_every_service(p47):
    result = run_berth("up", "--dry-run", "-b", "k8s", "-t", NS, "-r", p47)
    assert result.returncode == 0, result.stderr
    for name in ("p47-epics-opis", "pollux-caprepeater", "bl47p-ea-dcam-01"):
        assert f"start {name} on the k8s backend" in result.stdout


def test_an_index_naming_a_local_file_is_not_followed(p47, http_repo, tmp_path):
    served = tmp_path / "http"  # the folder the http_repo fixture serves
    index = yaml.safe_load((served / "index.yaml").read_text())
    index["entries"]["epics-opis"][0]["urls"] = ["file:///etc/hostname"]
    (served / "index.yaml").write_text(yaml.safe_dump(index))
    err = berth_template(p47, "p47-epics-opis", f"{EC_CHARTS}={http_repo}", code=2)
    assert "not an http(s) URL: file:///etc/hostname" in err


def test_a_link_checked_out_as_a_file_is_named(corpus, tmp_path):
    repo = tmp_path / "p47-services"
    shutil.copytree(corpus / "services" / "p47-services", repo)  # links as text, as stored
    err = berth_template(repo, "bl47p-ea-dcam-01", "", code=2)
    chart_file = repo / "services" / "bl47p-ea-dcam-01" / "Chart.yaml"
    assert f"{chart_file}: holds only the path '../../.helm-shared/Chart.yaml'" in err
    assert "core.symlinks" in err
