"""Chart mirrors: where the packaged chart a service pins is fetched from.

A mirror maps a chart repository (as written in a Chart.yaml's `dependencies`, e.g.
`oci://ghcr.io/epics-containers/charts`) to one or more locations: a local folder of packaged
charts (`NAME-VERSION.tgz`), a plain HTTP chart repository (its `index.yaml`), or another OCI
registry. Settings: `BERTH_CHART_MIRROR=REPO=LOCATION[,REPO=LOCATION…]` first, then the
repository's `.berth/config.yaml` (`chart_mirrors: {REPO: LOCATION or [LOCATION, …]}`).
A repository without a mirror is its own only location.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, Problem
from berth.tools import call
from berth.yamlio import YDict, load_yaml, loads_yaml

ENV = "BERTH_CHART_MIRROR"
SETTINGS = Path(".berth") / "config.yaml"
INDEX_LIMIT = 64 * 1024 * 1024  # an index.yaml bigger than this is not a chart repository
FETCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class Dependency:
    """One entry of a Chart.yaml's `dependencies`."""

    name: str
    version: str
    repository: str
    where: Location
    alias: str | None = None

    @property
    def values_key(self) -> str:
        """The key of the parent's values that the dependency receives."""
        return self.alias or self.name

    @property
    def package(self) -> str:
        return f"{self.name}-{self.version}.tgz"


def _key(repository: str) -> str:
    return repository.strip().rstrip("/")


def mirrors(repo_root: Path | None) -> dict[str, list[str]]:
    """Chart repository → mirror locations, the environment's before the repository's."""
    found: dict[str, list[str]] = {}
    for entry in filter(None, (e.strip() for e in os.environ.get(ENV, "").split(","))):
        repository, sep, location = entry.rpartition("=")
        if not sep or not repository or not location:
            raise BerthError(Problem(
                f"{ENV}: '{entry}' is not REPO=LOCATION (e.g. "
                "oci://ghcr.io/epics-containers/charts=/srv/charts)"))
        found.setdefault(_key(repository), []).append(location.strip())
    if repo_root is not None and (repo_root / SETTINGS).is_file():
        for repository, locations in _repo_settings(repo_root / SETTINGS).items():
            found.setdefault(repository, []).extend(locations)
    return found


def _repo_settings(file: Path) -> dict[str, list[str]]:
    doc = load_yaml(file)
    table = doc.get("chart_mirrors") if isinstance(doc, dict) else None
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise BerthError(Problem("expected a mapping REPO: LOCATION", _loc(doc, file),
                                 field="chart_mirrors"))
    settings: dict[str, list[str]] = {}
    for repository, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise BerthError(Problem("expected a location or a list of locations",
                                     _loc(table, file, repository),
                                     field=f"chart_mirrors.{repository}"))
        settings[_key(str(repository))] = [_relative_to(file.parent.parent, v) for v in values]
    return settings


def _relative_to(root: Path, location: str) -> str:
    """A folder named relative to the repository becomes absolute; URLs stay as they are."""
    if "://" in location or Path(location).is_absolute():
        return location
    return str(root / location)


def _loc(container: Any, file: Path, key: Any = None) -> Location:
    return container.loc(key) if isinstance(container, YDict) else Location(file)


def fetch(dep: Dependency, locations: list[str], dest: Path, service: str) -> None:
    """Put `dep`'s package into folder `dest` from the first location that has it; otherwise
    an error naming the service, chart, version and every place looked in."""
    looked: list[str] = []
    for location in locations:
        reason = _fetch_one(dep, location, dest)
        if reason is None:
            return
        looked.append(f"{location} ({reason})")
    if not looked:
        looked.append("nowhere: no repository and no mirror")
    raise BerthError(Problem(
        f"service '{service}': chart '{dep.name}' version {dep.version} (from "
        f"{dep.repository}) was not found; looked in: {'; '.join(looked)}. Add it to a mirror "
        f"({ENV}=REPO=LOCATION or chart_mirrors in {SETTINGS})", dep.where, field="dependencies"))


def _fetch_one(dep: Dependency, location: str, dest: Path) -> str | None:
    """None when the package is now in `dest`, else why not."""
    if location.startswith("oci://"):
        return _pull_oci(dep, location, dest)
    if location.startswith(("http://", "https://")):
        return _fetch_http(dep, location, dest)
    folder = Path(location.removeprefix("file://"))
    if not folder.is_dir():
        return "no such folder"
    package = folder / dep.package
    if not package.is_file():
        return f"no {dep.package}"
    shutil.copyfile(package, dest / dep.package)
    return None


def _pull_oci(dep: Dependency, location: str, dest: Path) -> str | None:
    ref = f"{_key(location)}/{dep.name}"
    # helm before 3.8 pulls from OCI registries only with this flag; later ones ignore it
    result = call(["helm", "pull", ref, "--version", dep.version, "--destination", str(dest)],
                  env={**os.environ, "HELM_EXPERIMENTAL_OCI": "1"}, timeout=FETCH_TIMEOUT)
    if result.returncode == 0 and (dest / dep.package).is_file():
        return None
    said = (result.stderr.strip() or result.stdout.strip() or "no package").splitlines()
    return f"helm pull {ref}: {said[-1]}"


def _get(url: str) -> bytes:
    import urllib.request  # only when a mirror is HTTP: 20 ms of every k8s command otherwise

    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # an index may name any URL
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310 (http/s only)
        data: bytes = answer.read(INDEX_LIMIT + 1)
    if len(data) > INDEX_LIMIT:
        raise ValueError(f"more than {INDEX_LIMIT} bytes")
    return data


def _fetch_http(dep: Dependency, location: str, dest: Path) -> str | None:
    base = _key(location) + "/"
    index_url = urllib.parse.urljoin(base, "index.yaml")
    try:
        index = loads_yaml(_get(index_url).decode("utf-8", "replace"), index_url)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        return f"cannot read {index_url}: {getattr(exc, 'reason', exc)}"
    except BerthError as exc:
        return f"{index_url} is not a chart index: {exc.problems[0].message}"
    entries = (index.get("entries") or {}).get(dep.name) if isinstance(index, dict) else None
    for entry in entries or []:
        if isinstance(entry, dict) and str(entry.get("version")) == dep.version:
            urls = entry.get("urls") or []
            if not urls:
                return f"index entry {dep.name} {dep.version} has no urls"
            url = urllib.parse.urljoin(base, str(urls[0]))
            try:
                (dest / dep.package).write_bytes(_get(url))
            except (OSError, ValueError) as exc:
                return f"cannot download {url}: {getattr(exc, 'reason', exc)}"
            return None
    return f"index has no {dep.name} {dep.version}"
