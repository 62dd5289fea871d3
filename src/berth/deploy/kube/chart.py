"""berth's ioc-instance Helm chart: where it is, the values a service gives it, a copy per deploy.

A services repository's own Chart.yaml points at a registry berth does not need; berth renders
its bundled chart with `Service.instance_values` plus the files of the config folder, which travel
as values (`configFiles`/`configBinaryFiles`) so the chart itself needs no `.Files` access.
"""

from __future__ import annotations

import base64
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem

CHART_NAME = "ioc-instance"
CONFIGMAP_LIMIT = 1024 * 1024  # Kubernetes refuses ConfigMaps above 1 MiB
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def chart_dir() -> Path:
    """The chart shipped inside the berth package."""
    return Path(str(resources.files("berth") / "assets" / "helm" / CHART_NAME))


def bundled_chart_label() -> str:
    """How `helm list` names the bundled chart (NAME-VERSION)."""
    meta = yaml.safe_load((chart_dir() / "Chart.yaml").read_text())
    return f"{meta['name']}-{meta['version']}"


def config_values(config: Path | None) -> dict[str, dict[str, str]]:
    """The config folder as chart values: text files by name, binary files base64-encoded."""
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    if config is None or not config.is_dir():
        return {"configFiles": text, "configBinaryFiles": binary}
    problems: list[Problem] = []
    total = 0
    for path in sorted(config.iterdir()):
        if path.is_dir():
            problems.append(Problem(
                "sub-folders of the config folder cannot go into a ConfigMap; move the files "
                "up or into the image", Location(path)))
            continue
        if not _CONFIG_KEY.match(path.name):
            problems.append(Problem(
                "file name not allowed in a ConfigMap (letters, digits, '-', '_', '.' only)",
                Location(path)))
            continue
        data = path.read_bytes()
        total += len(data)
        try:
            text[path.name] = data.decode("utf-8")
        except UnicodeDecodeError:
            binary[path.name] = base64.b64encode(data).decode("ascii")
    if total > CONFIGMAP_LIMIT:
        problems.append(Problem(
            f"config folder holds {total} bytes; a ConfigMap takes at most {CONFIGMAP_LIMIT}",
            Location(config)))
    if problems:
        raise BerthError(problems)
    return {"configFiles": text, "configBinaryFiles": binary}


def service_values(service: Service, commit: str | None = None) -> dict[str, Any]:
    """Everything the chart receives for one service."""
    if not service.is_ioc:
        raise BerthError(Problem(
            f"service '{service.name}' does not use the {CHART_NAME} chart (no "
            f"'{CHART_NAME}:' block in its values)", Location(service.values_file)))
    values = dict(service.instance_values)
    values.update(config_values(service.config_dir))
    if commit:
        values["global"] = {**(values.get("global") or {}), "commit": commit}
    return values


@contextmanager
def chart_copy(app_version: str) -> Iterator[Path]:
    """A temporary copy of the chart whose appVersion is the version being deployed (helm 3
    has no --app-version for install/upgrade), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="berth-chart-") as tmp:
        target = Path(tmp) / CHART_NAME
        shutil.copytree(chart_dir(), target)
        meta_file = target / "Chart.yaml"
        meta = yaml.safe_load(meta_file.read_text())
        meta["appVersion"] = str(app_version)
        meta_file.write_text(yaml.safe_dump(meta, sort_keys=False))
        yield target


@contextmanager
def values_file(values: dict[str, Any]) -> Iterator[Path]:
    """The values written to a temporary file for `helm --values`."""
    with tempfile.TemporaryDirectory(prefix="berth-values-") as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
        yield path
