"""A service folder that is its own Helm chart, as `ec` deploys it.

The folder (its Chart.yaml and templates/, usually symbolic links into .helm-shared/) is copied
to a temporary folder with its links resolved; each dependency it pins is placed into the copy's
`charts/` from a chart mirror (see `mirrors`); helm then renders the copy with
`services/values.yaml` and the service's own `values.yaml`, in that order. The user's
repository is never written to.

berth's own chart is pinned the same way, from the repository `berth://charts` (what
`berth new services` writes): berth packages the chart it bundles, and passes the config folder
to it as values (`configFiles`), since a subchart cannot read its parent's files.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from berth.deploy.kube.chart import chart_dir, config_values
from berth.deploy.kube.mirrors import Dependency, fetch, mirrors
from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem
from berth.tools import run
from berth.yamlio import YDict, YList, load_yaml

CHART_FILE = "Chart.yaml"
BUNDLED = "berth://charts"  # the repository name of the charts berth itself carries


@dataclass
class PreparedChart:
    """A chart folder ready for helm, and the `--values` arguments that go with it."""

    path: Path
    values: list[str] = field(default_factory=list)


def has_own_chart(service: Service) -> bool:
    """Whether the service folder is a chart (ec's layout); otherwise berth's bundled chart
    renders its `ioc-instance:` block."""
    return service.layout == "helm" and (service.path / CHART_FILE).exists()


def dependencies(chart_file: Path) -> list[Dependency]:
    """The dependencies a Chart.yaml pins, each with its location for error messages."""
    doc = load_yaml(chart_file)
    if isinstance(doc, str) and doc.startswith("../") and "\n" not in doc.strip():
        raise BerthError(Problem(
            f"holds only the path '{doc}': a symbolic link checked out as a file (set git's "
            "core.symlinks to true and check the repository out again)", Location(chart_file)))
    if not isinstance(doc, dict):
        raise BerthError(Problem("expected a mapping (a Helm Chart.yaml)", Location(chart_file)))
    deps = doc.get("dependencies") or []
    where = doc.loc("dependencies") if isinstance(doc, YDict) else Location(chart_file)
    if not isinstance(deps, list):
        raise BerthError(Problem("expected a list", where, field="dependencies"))
    found = []
    for index, dep in enumerate(deps):
        at = deps.loc(index) if isinstance(deps, YList) else where
        if not isinstance(dep, dict) or not dep.get("name") or not dep.get("version"):
            raise BerthError(Problem("a dependency needs a name and a version", at,
                                     field=f"dependencies[{index}]"))
        found.append(Dependency(str(dep["name"]), str(dep["version"]),
                                str(dep.get("repository") or ""), at,
                                str(dep["alias"]) if dep.get("alias") else None))
    return found


def _copy_resolved(folder: Path, dest: Path, root: Path) -> None:
    """Copy `folder` with its links resolved; a link that leaves the repository is refused."""
    root = root.resolve()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise BerthError(Problem(
                f"symbolic link points outside the repository, to {path.resolve()}",
                Location(path)))
    shutil.copytree(folder, dest, symlinks=False)


def _vendored(charts: Path, dep: Dependency) -> bool:
    return (charts / dep.package).is_file() or (charts / dep.name / CHART_FILE).is_file()


def _local_chart(dep: Dependency, service: Service, dest: Path) -> None:
    """A `file://` dependency, packaged from the folder it names (relative to the service)."""
    source = (service.path / dep.repository.removeprefix("file://")).resolve()
    if not (source / CHART_FILE).is_file():
        raise BerthError(Problem(
            f"service '{service.name}': chart '{dep.name}' is not at {source}", dep.where,
            field="dependencies"))
    run(["helm", "package", str(source), "--destination", str(dest)])


def _bundled(dep: Dependency, service: Service, dest: Path, app_version: str | None) -> None:
    """berth's own chart packaged into `dest`, if it is the version the service pins."""
    source = chart_dir()
    meta: dict[str, Any] = yaml.safe_load((source / CHART_FILE).read_text())
    if dep.name != meta["name"] or dep.version != str(meta["version"]):
        raise BerthError(Problem(
            f"service '{service.name}': {BUNDLED} holds only {meta['name']} version "
            f"{meta['version']} (this berth's), not '{dep.name}' version {dep.version}",
            dep.where, field="dependencies"))
    if app_version is not None:
        meta["appVersion"] = str(app_version)
    with tarfile.open(dest / dep.package, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file() and path.name != CHART_FILE:
                tar.add(path, f"{dep.name}/{path.relative_to(source)}")
        data = yaml.safe_dump(meta, sort_keys=False).encode()
        info = tarfile.TarInfo(f"{dep.name}/{CHART_FILE}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@contextmanager
def prepared_chart(service: Service, repo_root: Path,
                   app_version: str | None = None) -> Iterator[PreparedChart]:
    """A temporary copy of the service's chart, every dependency in its `charts/`; with
    `app_version`, its Chart.yaml says so (what `helm package --app-version` does)."""
    table = mirrors(repo_root)
    with tempfile.TemporaryDirectory(prefix="berth-service-") as tmp:
        deps = dependencies(service.path / CHART_FILE)  # errors name the user's file
        chart = Path(tmp) / service.name
        _copy_resolved(service.path, chart, repo_root)
        chart_file = chart / CHART_FILE
        charts = chart / "charts"
        charts.mkdir(exist_ok=True)
        prepared = PreparedChart(chart, values_files(service, repo_root))
        for dep in deps:
            if dep.repository.strip().rstrip("/") == BUNDLED:
                _bundled(dep, service, charts, app_version)
                config = Path(tmp) / f"{dep.values_key}-config.yaml"
                config.write_text(yaml.safe_dump({dep.values_key: config_values(
                    service.config_dir)}, allow_unicode=True))
                prepared.values += ["--values", str(config)]
                continue
            if _vendored(charts, dep):
                continue
            if dep.repository.startswith("file://"):
                _local_chart(dep, service, charts)
                continue
            own = [dep.repository] if dep.repository else []
            locations = table.get(dep.repository.strip().rstrip("/")) or own
            fetch(dep, locations, charts, service.name)
        if app_version is not None:
            meta: dict[str, Any] = yaml.safe_load(chart_file.read_text()) or {}
            meta["appVersion"] = str(app_version)
            chart_file.write_text(yaml.safe_dump(meta, sort_keys=False))
        yield prepared


def values_files(service: Service, repo_root: Path) -> list[str]:
    """`--values` arguments: the repository's shared values, then the service's own."""
    argv: list[str] = []
    for file in (repo_root / "services" / "values.yaml", service.path / "values.yaml"):
        if file.is_file():
            argv += ["--values", str(file)]
    return argv
