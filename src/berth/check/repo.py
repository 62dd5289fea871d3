"""`berth check`: validate a whole services repository before deploying it.

Every IOC instance is checked as far as this host allows (config folder, instance YAML against
the JSON schema of its support definitions, generation, database expansion, loading into real
EPICS without iocInit), then the repository as a whole: values keys the chart does not know,
instance names and PV names used twice. All problems are collected, none stops the run; where a
check cannot run here it says so as a note.

    report = check_repo(Path("services-repo"), names=[], defs=[])
    report.problems  # sorted by file and line; severity error / warning / note
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, Problem

__all__ = ["CheckReport", "InstanceSummary", "check_repo"]

MAX_PV_DUPLICATES_LISTED = 10  # per pair of instances; then one line sums up the rest


@dataclass
class InstanceSummary:
    name: str
    image: str | None
    checked: list[str]  # steps that ran: schema, generate, epics
    pvs: int
    errors: int
    warnings: int
    notes: int


@dataclass
class CheckReport:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    instances: list[InstanceSummary] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": str(self.root),
            "ok": self.ok,
            "counts": {s: sum(1 for p in self.problems if p.severity == s)
                       for s in ("error", "warning", "note")},
            "instances": [vars(i) for i in self.instances],
            "problems": [
                {"severity": p.severity, "file": str(p.location.file or ""),
                 "line": p.location.line, "column": p.location.column,
                 "instance": instance_of(p), "entity": p.entity,
                 "field": p.field, "message": p.message}
                for p in self.problems
            ],
        }


def _tag(problem: Problem, instance: str) -> Problem:
    """Name the instance in the problem (entity), keeping the entity already named."""
    entity = problem.entity
    if entity is None or entity == instance:
        entity = instance
    elif not entity.startswith(f"{instance}:"):
        entity = f"{instance}: {entity}"
    return Problem(problem.message, problem.location, entity, problem.field, problem.severity)


def instance_of(problem: Problem) -> str | None:
    """The instance a problem is about (None for repository-wide ones, e.g. values files)."""
    if problem.entity is None:
        return None
    return problem.entity.split(":", 1)[0]


def _sort_key(problem: Problem) -> tuple[str, int, int, str]:
    return (str(problem.location.file or ""), problem.location.line, problem.location.column,
            problem.message)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, int, str, str, str | None]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (str(p.location.file), p.location.line, p.message, p.severity, p.entity)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def check_repo(root: Path, names: Sequence[str] = (), defs: Sequence[Path] = ()) -> CheckReport:
    """Check the IOC instances of the services repository at `root` (all, or those named)."""
    from berth.check import instance as inst
    from berth.check.repo_scan import scan_repo
    from berth.check.values_keys import values_problems
    from berth.ioc.generate import expand_defs
    from berth.ioc.image_defs import Finder

    scan = scan_repo(Path(root))
    report = CheckReport(scan.root)
    problems = list(scan.problems)
    user_defs = expand_defs(defs) if defs else []

    iocs = {n: s for n, s in scan.services.items() if s.is_ioc}
    if names:
        unknown = [n for n in names if n not in scan.services]
        if unknown:
            known = ", ".join(sorted(iocs)) or "(none)"
            raise BerthError([Problem(f"no service '{n}' in this repository; IOC instances: "
                                      f"{known}", Location(scan.root)) for n in unknown])
        iocs = {n: s for n, s in iocs.items() if n in names}

    if scan.layout == "helm":
        files = {s.values_file for s in iocs.values() if s.values_file}
        shared = scan.root / "services" / "values.yaml"
        if shared.is_file():
            files.add(shared)
        for file in sorted(f for f in files if f and f.is_file()):
            problems += [p for p in values_problems(file)
                         if not p.message.startswith("invalid YAML")]  # reported by the scan

    schemas = inst.SchemaCache()
    images = Finder()
    with tempfile.TemporaryDirectory(prefix="berth-check-") as tmp:
        checks = [inst.prepare(service, Path(tmp) / name, user_defs, schemas,
                               scan.root, images)
                  for name, service in iocs.items()]
        workers = max(1, min(len(checks), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(inst.load_into_epics, checks))
        for check in checks:
            with contextlib.suppress(ImportError):  # no msi here: noted by prepare
                inst.collect_pvs(check)
    for check in checks:
        problems += [_tag(p, check.name) for p in check.problems]
    problems += _duplicate_names(checks)
    problems += _duplicate_pvs(checks)

    report.problems = sorted(_dedupe(problems), key=_sort_key)
    for check in checks:
        mine = [p for p in report.problems if instance_of(p) == check.name]
        report.instances.append(InstanceSummary(
            check.name, check.service.image, check.steps, len(check.pvs),
            sum(p.severity == "error" for p in mine), sum(p.severity == "warning" for p in mine),
            sum(p.severity == "note" for p in mine)))
    return report


def _can_run_together(a: Any, b: Any) -> bool:
    """Compose services with disjoint profiles never run together (e.g. an IOC and its
    developer variant); services without profiles always run."""
    pa = set(a.service.values.get("profiles") or []) if a.service.layout == "compose" else set()
    pb = set(b.service.values.get("profiles") or []) if b.service.layout == "compose" else set()
    return not pa or not pb or bool(pa & pb)


def _duplicate_names(checks: list[Any]) -> list[Problem]:
    by_name: dict[str, list[Any]] = {}
    for check in checks:
        by_name.setdefault(check.ioc_name.lower(), []).append(check)
    problems: list[Problem] = []
    for same in by_name.values():
        for index, check in enumerate(same):
            clash = [o for o in same[:index] if _can_run_together(o, check)]
            if not clash:
                continue
            others = ", ".join(f"{o.name} ({o.ioc_name_loc})" for o in clash)
            problems.append(Problem(
                f"instance name '{check.ioc_name}' is also used by {others}: two IOCs with one "
                "name clash (same IOC_NAME, same iocStats/autosave PVs, same release name)",
                check.ioc_name_loc, check.name, "IOC_NAME"))
    return problems


def _duplicate_pvs(checks: list[Any]) -> list[Problem]:
    """PVs served by more than one instance: clients would get either, at random."""
    owners: dict[str, list[tuple[Any, Location]]] = {}
    for check in checks:
        seen_here: set[str] = set()
        for pv, loc in check.pvs:
            if pv not in seen_here:
                seen_here.add(pv)
                owners.setdefault(pv, []).append((check, loc))
    per_pair: dict[tuple[str, str], list[tuple[str, Location, Location]]] = {}
    for pv, where in owners.items():
        if len(where) < 2:
            continue
        for index, (check, loc) in enumerate(where[1:], start=1):
            clash = [(o, o_loc) for o, o_loc in where[:index] if _can_run_together(o, check)]
            if clash:
                first_check, first_loc = clash[0]
                per_pair.setdefault((first_check.name, check.name), []).append(
                    (pv, loc, first_loc))
    problems: list[Problem] = []
    for (first, second), dups in per_pair.items():
        for pv, loc, first_loc in dups[:MAX_PV_DUPLICATES_LISTED]:
            problems.append(Problem(
                f"PV '{pv}' is also served by instance {first} ({first_loc})", loc, second,
                "PV"))
        rest = len(dups) - MAX_PV_DUPLICATES_LISTED
        if rest > 0:
            problems.append(Problem(
                f"{rest} more PVs are served by both {first} and {second}", dups[0][1], second,
                "PV"))
    return problems
