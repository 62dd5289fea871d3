"""`depends_on`: the order compose starts services in, and the conditions it waits for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem
from berth.tools.engine import Engine

CONDITION_TIMEOUT = 120.0


def dependencies(service: Service) -> dict[str, dict[str, Any]]:
    """{service: {condition, required}} from the short (list) or long (mapping) form."""
    raw = service.values.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): {"condition": "service_started"} for name in raw}
    return {str(k): dict(v) if isinstance(v, dict) else {} for k, v in raw.items()}


def start_order(runnable: dict[str, Service], known: dict[str, Service]) -> list[str]:
    """The runnable services, each after what it depends on (by name otherwise)."""
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        service = runnable[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise BerthError(Problem(f"depends_on makes a cycle: {cycle}",
                                     Location(service.values_file), name, "depends_on"))
        visiting.append(name)
        for dep, how in sorted(dependencies(service).items()):
            if dep in runnable:
                visit(dep)
            elif how.get("required", True) is not False:
                why = "is not defined" if dep not in known else (
                    "is not active in the chosen profiles (or has no image)")
                raise BerthError(Problem(f"it depends on '{dep}', which {why}",
                                         Location(service.values_file), name, "depends_on"))
        visiting.pop()
        order.append(name)

    for name in sorted(runnable):
        visit(name)
    return order


def wait_for(engine: Engine, service: Service, runnable: dict[str, Service],
             container_of: Callable[[str], str], timeout: float = CONDITION_TIMEOUT) -> None:
    """Wait until every dependency of `service` meets its condition (started ones already
    have: they run first); a clear error naming both when one cannot."""
    for dep, how in sorted(dependencies(service).items()):
        condition = str(how.get("condition", "service_started"))
        if dep not in runnable or condition == "service_started":
            continue
        container = container_of(dep)
        deadline = time.monotonic() + timeout
        while True:
            found = engine.inspect([container])
            state = (found[0].get("State") or {}) if found else {}
            if _met(condition, state, service, dep):
                break
            if time.monotonic() > deadline:
                raise BerthError(Problem(f"'{dep}' did not reach {condition} within "
                                         f"{timeout:.0f} s", Location(service.values_file),
                                         service.name, "depends_on"))
            time.sleep(0.5)


def _met(condition: str, state: dict[str, Any], service: Service, dep: str) -> bool:
    status = str(state.get("Status", ""))
    if condition == "service_completed_successfully":
        if status == "exited" and int(state.get("ExitCode") or 0) != 0:
            raise BerthError(Problem(f"'{dep}' exited with {state.get('ExitCode')} (it must "
                                     "complete successfully first)", Location(service.values_file),
                                     service.name, "depends_on"))
        return status == "exited"
    if condition == "service_healthy":
        health = str((state.get("Health") or {}).get("Status", ""))
        if status == "running" and not health:
            raise BerthError(Problem(f"'{dep}' has no health check to wait for",
                                     Location(service.values_file), service.name, "depends_on"))
        return health == "healthy"
    raise BerthError(Problem(f"unknown depends_on condition '{condition}'",
                             Location(service.values_file), service.name, "depends_on"))
