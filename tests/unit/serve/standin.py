"""A stand-in backend for what needs many instances or states no real IOC is in on demand
(hundreds of instances, a crash-loop played second by second): it answers `ps` with the rows it
is given and records the verbs called. The real-IOC tests are test_serve*.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from berth.deploy import InstanceStatus, Release
from berth.errors import BerthError, Problem


def statuses(count: int) -> list[InstanceStatus]:
    return [InstanceStatus(f"bl{i // 50:02d}-ea-ioc-{i:03d}", "running", f"2026.{i % 12 + 1}.1",
                           10_000 + i, 3600.0 + i, i % 3, "",
                           {"desired": "started", "repo": "/srv/beamline"}, "ready", True)
            for i in range(count)]


@dataclass
class StandIn:
    rows: list[InstanceStatus]
    name: str = "k8s"
    calls: list[tuple[str, str]] = field(default_factory=list)

    def ps(self) -> list[InstanceStatus]:
        return [InstanceStatus(**vars(r)) for r in self.rows]

    def history(self, service: str) -> list[Release]:
        return [Release(service, "2026.1.1", "2026-01-01T00:00:00Z", True)]

    def _act(self, verb: str, service: str) -> None:
        if service not in {r.name for r in self.rows}:
            raise BerthError(Problem(f"unknown instance '{service}'"))
        self.calls.append((verb, service))

    def start(self, service: str) -> None:
        self._act("start", service)

    def stop(self, service: str) -> None:
        self._act("stop", service)

    def restart(self, service: str) -> None:
        self._act("restart", service)

    def deploy(self, service: str, version: str | None = None) -> Release:
        self._act("deploy", service)
        return Release(service, version or "2026.2.1", "2026-02-01T00:00:00Z", True)

    def rollback(self, service: str, version: str | None = None) -> Release:
        self._act("rollback", service)
        return Release(service, version or "2026.1.1", "2026-02-01T00:00:00Z", True)

    def deploy_local(self, folder: Path) -> Release:
        raise NotImplementedError

    def delete(self, service: str) -> None:
        raise NotImplementedError
