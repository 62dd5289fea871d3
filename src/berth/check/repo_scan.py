"""Read a services repository without stopping at the first broken file, and find the service
names defined twice.

`ServicesRepo.load` stops at the first malformed values file; a check wants every problem, so
for the Helm layout the services are read here one by one (with the model's own merge rules),
and a file that cannot be read becomes a problem while the others are still checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, Problem
from berth.model.services import (
    IOC_CHART,
    Service,
    ServicesRepo,
    _chart_key,  # private helper of the model: which chart a values file configures
    helm_merge,
    load_yaml_file,
)
from berth.yamlio import YDict, load_yaml


@dataclass
class Scan:
    root: Path
    layout: str
    services: dict[str, Service] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def scan_repo(root: Path) -> Scan:
    root = Path(root).resolve()
    if (root / "compose.yaml").is_file() or (root / "compose.yml").is_file():
        scan = Scan(root, "compose")
        try:
            scan.services = ServicesRepo.load(root).services
        except BerthError as err:
            scan.problems += err.problems
        scan.problems += duplicate_compose_services(root)
        return scan
    if not (root / "services").is_dir():
        ServicesRepo.load(root)  # raises the model's own "not a services repository"
    return _scan_helm(root)


def _read_values(path: Path, scan: Scan) -> dict[str, Any] | None:
    try:
        data = load_yaml_file(path, "values file")
    except BerthError as err:
        scan.problems += err.problems
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        scan.problems.append(Problem(f"expected a mapping at the top level, found "
                                     f"{type(data).__name__}", Location(path, 1, 1)))
        return None
    return data


def _scan_helm(root: Path) -> Scan:
    scan = Scan(root, "helm")
    services_dir = root / "services"
    shared_file = services_dir / "values.yaml"
    shared = (_read_values(shared_file, scan) if shared_file.exists() else {}) or {}
    for folder in sorted(services_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        values_file = folder / "values.yaml"
        if not values_file.exists() and not (folder / "Chart.yaml").exists():
            continue
        own = _read_values(values_file, scan) if values_file.exists() else {}
        if own is None:
            continue  # reported; the service cannot be checked further
        chart = IOC_CHART if IOC_CHART in own else _chart_key(own)
        scan.services[folder.name] = Service(folder.name, folder, "helm",
                                             helm_merge(shared, own), chart, values_file)
    return scan


def duplicate_compose_services(root: Path) -> list[Problem]:
    """Service names defined in more than one compose file reached through `include:`."""
    top = root / "compose.yaml"
    if not top.is_file():
        top = root / "compose.yml"
    first: dict[str, Location] = {}
    problems: list[Problem] = []
    pending, seen = [top.resolve()], set()
    while pending:
        file = pending.pop(0)
        if file in seen or not file.is_file():
            continue
        seen.add(file)
        try:
            doc = load_yaml(file)
        except BerthError:
            continue  # reported when the repository is read
        if not isinstance(doc, YDict):
            continue
        for entry in doc.get("include") or []:
            targets = entry.get("path") if isinstance(entry, dict) else entry
            for target in targets if isinstance(targets, list) else [targets]:
                pending.append((file.parent / str(target)).resolve())
        services = doc.get("services")
        if not isinstance(services, YDict):
            continue
        for name in services:
            where = services.key_loc(name)
            if name in first and first[name].file != where.file:
                problems.append(Problem(
                    f"service '{name}' is defined twice: here and in {first[name]}; compose "
                    "refuses the project (or one silently replaces the other)", where,
                    entity=str(name)))
            else:
                first.setdefault(str(name), where)
    return problems
