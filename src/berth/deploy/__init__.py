"""The one small interface every backend (local, compose, k8s, argocd) implements.

The CLI's operator verbs call these methods and nothing else, so a verb behaves the same on every
backend. Backends raise `berth.errors.BerthError` for anything the user got wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class InstanceStatus:
    """One row of `berth ps`."""

    name: str
    # running | stopped | starting | backoff | crashed | not deployed | not runnable here
    state: str
    version: str | None = None
    pid: int | None = None
    uptime: float | None = None  # seconds since the current process started
    restarts: int = 0
    reason: str = ""  # why it is not running / not runnable, when known
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Release:
    """One entry of `berth history`: a version deployed at a time."""

    service: str
    version: str
    deployed_at: str  # ISO 8601, UTC
    current: bool = False
    note: str = ""  # e.g. "rollback", "local working copy"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """Operator verbs. `service` is an instance name (a folder under `services/`)."""

    name: str

    def ps(self) -> list[InstanceStatus]: ...
    def deploy(self, service: str, version: str | None = None) -> Release: ...
    def deploy_local(self, folder: Path) -> Release: ...
    def start(self, service: str) -> None: ...
    def stop(self, service: str) -> None: ...
    def restart(self, service: str) -> None: ...
    def delete(self, service: str) -> None: ...
    def logs(self, service: str, follow: bool = False, previous: bool = False) -> int: ...
    def attach(self, service: str) -> int: ...
    def exec(self, service: str, command: Sequence[str]) -> int: ...
    def rollback(self, service: str, version: str | None = None) -> Release: ...
    def history(self, service: str) -> list[Release]: ...
    def up(self) -> list[Release]: ...
    def down(self) -> None: ...
    def template(self, service: str, version: str | None = None) -> str: ...


BACKENDS = ("local", "compose", "k8s", "argocd")


def get_backend(name: str, repo: Path | None, target: str | None = None) -> Backend:
    """Construct a backend by name; each backend module is imported only when chosen."""
    from berth.errors import BerthError

    if name == "local":
        from berth.deploy.local import backend as local

        return local.create(repo, target)
    if name == "compose":
        from berth.deploy.compose import backend as compose

        return compose.create(repo, target)
    if name == "k8s":
        from berth.deploy.kube import k8s

        return k8s.create(repo, target)
    if name == "argocd":
        from berth.deploy.kube import argocd

        return argocd.create(repo, target)
    raise BerthError(f"unknown backend '{name}': expected one of {', '.join(BACKENDS)}")
