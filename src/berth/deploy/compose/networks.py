"""The networks a compose service joins: their definitions and how the engine creates them.

Compose defines networks at the top level of any file; a service sees those of its own file
and of the files that file includes. Each becomes an engine network named
`<project>_<network>` (unless it sets `name:`), made with its IPAM subnets and driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from berth.deploy.compose.spec import interpolate, network_name
from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem
from berth.fsutil import read_text


def definitions(service: Service) -> dict[str, dict[str, Any]]:
    """Top-level `networks:` visible from the file that defines `service`."""
    found: dict[str, dict[str, Any]] = {}
    if service.values_file is not None:
        _collect(Path(service.values_file), found, set())
    return found


def _collect(file: Path, found: dict[str, dict[str, Any]], seen: set[Path]) -> None:
    file = file.resolve()
    if file in seen or not file.is_file():
        return
    seen.add(file)
    doc = yaml.safe_load(read_text(file)) or {}
    if not isinstance(doc, dict):
        return
    for name, spec in (doc.get("networks") or {}).items():
        found.setdefault(str(name), spec if isinstance(spec, dict) else {})
    for entry in doc.get("include") or []:
        targets = entry.get("path") if isinstance(entry, dict) else entry
        for target in targets if isinstance(targets, list) else [targets]:
            _collect(file.parent / str(target), found, seen)


def create_argv(service: Service, network: str, project: str, env: dict[str, str],
                labels: dict[str, str]) -> tuple[str, list[str]]:
    """(engine name, `network create` arguments) for `network` as `service` joins it; the
    arguments are empty for an external network (it must exist already)."""
    spec = definitions(service).get(network)
    if spec is None and network != "default":
        raise BerthError(Problem(f"network '{network}' is not defined under a top-level "
                                 "'networks:'", Location(service.values_file), service.name,
                                 "networks"))
    spec = spec or {}
    if spec.get("name"):
        name = interpolate(str(spec["name"]), env)
    else:  # an external network is used by its own name
        name = network if spec.get("external") else network_name(project, network)
    if spec.get("external"):
        return name, []
    argv = ["network", "create"]
    if spec.get("driver"):
        argv += ["--driver", interpolate(str(spec["driver"]), env)]
    for entry in (spec.get("ipam") or {}).get("config") or []:
        if isinstance(entry, dict) and entry.get("subnet"):
            argv += ["--subnet", interpolate(str(entry["subnet"]), env)]
        if isinstance(entry, dict) and entry.get("gateway"):
            argv += ["--gateway", interpolate(str(entry["gateway"]), env)]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    return name, [*argv, name]
