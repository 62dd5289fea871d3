"""Read a services repository without stopping at the first broken file, and find the service
names defined twice.

`ServicesRepo.load` stops at the first malformed values file; a check wants every problem, so
for the Helm layout the model's own reader (`load_helm_services`) is given a values-file reader
that records problems: a file that cannot be read becomes a problem while the others are still
checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from berth.deploy.services import Service, ServicesRepo, load_helm_services, read_values
from berth.errors import BerthError, Location, Problem
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


def _read_values(path: Path, scan: Scan) -> YDict | None:
    try:
        return read_values(path, "values file")
    except BerthError as err:
        scan.problems += err.problems
        return None


def _scan_helm(root: Path) -> Scan:
    scan = Scan(root, "helm")
    scan.services = load_helm_services(root, lambda path, _what: _read_values(path, scan))
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
