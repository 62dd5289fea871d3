"""The one small interface every backend (local, compose, k8s, argocd) implements.

The CLI's operator verbs call these methods and nothing else, so a verb behaves the same on every
backend. Backends raise `berth.errors.BerthError` for anything the user got wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from berth.deploy.logs import LogQuery
    from berth.errors import Problem

# The checks a deploy runs before it replaces anything: (release root, instance name) → the
# problems found (`berth check`'s own code, passed in by the CLI: check sits above deploy).
Preflight = Callable[[Path, str], "list[Problem]"]


@dataclass
class InstanceStatus:
    """One row of `berth ps`."""

    name: str
    # running | stopped | starting | backoff | crashed | crash-looping (local) | stray (local)
    # | not deployed | not runnable here
    state: str
    version: str | None = None
    pid: int | None = None
    uptime: float | None = None  # seconds since the current process started
    restarts: int = 0
    reason: str = ""  # why it is not running / not runnable, when known
    extra: dict[str, Any] = field(default_factory=dict)
    # Does the IOC answer? health: ready | starting | not answering | "" (not running); `ready`
    # is true only when it answers (or, for what nobody probes, when it runs).
    health: str = ""
    ready: bool = False

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


@dataclass(frozen=True)
class VerbOptions:
    """How the verbs of one command apply (the CLI's --all, --latest, --force)."""

    all_repos: bool = False  # ps/up/down: every repository known to the state folder
    latest: bool = False  # up: move deployed instances to their latest version too
    force: bool = False  # deploy/up/rollback: skip the pre-flight checks
    preflight: Preflight | None = None  # None: nothing to check with (e.g. library use)


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
    def logs(self, service: str, query: LogQuery = ...) -> int: ...
    def attach(self, service: str) -> int: ...
    def exec(self, service: str, command: Sequence[str]) -> int: ...
    def rollback(self, service: str, version: str | None = None) -> Release: ...
    def history(self, service: str) -> list[Release]: ...
    def up(self) -> list[Release]: ...
    def down(self) -> list[str] | None: ...  # the instances it stopped, when the backend knows
    def template(self, service: str, version: str | None = None) -> str: ...


BACKENDS = ("local", "compose", "k8s", "argocd")


def get_backend(name: str, repo: Path | None, target: str | None = None,
                options: VerbOptions | None = None) -> Backend:
    """Construct a backend by name; each backend module is imported only when chosen."""
    from berth.errors import BerthError

    options = options or VerbOptions()
    if name == "local":
        from berth.deploy.local import backend as local

        return local.create(repo, target, options)
    if name == "compose":
        from berth.deploy.compose import backend as compose

        return compose.create(repo, target, options)
    if options.all_repos or options.latest:
        flag = "--all" if options.all_repos else "--latest"
        raise BerthError(f"{flag} is not supported by the {name} backend")
    if name == "k8s":
        from berth.deploy.kube import k8s

        return k8s.create(repo, target)
    if name == "argocd":
        from berth.deploy.kube import argocd

        return argocd.create(repo, target)
    raise BerthError(f"unknown backend '{name}': expected one of {', '.join(BACKENDS)}")


def preflight_release(options: VerbOptions, release: Path, name: str, shown_as: str) -> None:
    """Run the pre-flight checks on instance `name` of `release`; an error listing every
    problem (their files named as in `shown_as`, the repository the user knows) when any is
    an error. Nothing to do with --force or without a checker."""
    if options.force or options.preflight is None:
        return
    refuse_on_errors(options.preflight(release, name), release, name, shown_as)


def refuse_on_errors(problems: list[Problem], release: Path, name: str, shown_as: str) -> None:
    """The error of a deploy whose checks found `problems` (none of severity error: nothing)."""
    from berth.errors import BerthError, Location, Problem

    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return
    old = str(release)

    def shown(problem: Problem) -> Problem:
        loc = problem.location
        where = Location(str(loc.file).replace(old, shown_as), loc.line, loc.column) \
            if loc.file else loc
        return Problem(problem.message.replace(old, shown_as), where, problem.entity,
                       problem.field, problem.severity)

    raise BerthError([shown(p) for p in errors] + [Problem(
        f"'{name}' not deployed: the checks found {len(errors)} error(s); what runs is "
        "unchanged (--force deploys anyway)")])
