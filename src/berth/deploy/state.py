"""Where the local backend keeps its state, and the desired state itself.

Layout under the state dir (`BERTH_STATE_DIR`, else `$XDG_STATE_HOME/berth`, else
`~/.local/state/berth`):

    state.json                      desired state: per instance its repository, release history,
                                    current release, started?, pinned (by a rollback)?
    lock                            fcntl lock serialising berth commands
    supervisor.lock                 held by the running supervisord for its lifetime
    supervisord.conf, programs/     generated supervisord configuration
    supervisord.log, .pid, .sock    the supervisor itself
    releases/<name>/<version>/      immutable release folders (read-only)
    instances/<name>/data           persistent data (autosave), kept across upgrades and rollbacks
    instances/<name>/runtime        generated st.cmd, ioc.db, ...
    instances/<name>/launch.json    how the launcher starts this instance
    instances/<name>/output.log     the captured IOC output (all runs, separated by markers)
    instances/<name>/runs           how many times the launcher has started this instance
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berth.deploy import Release
from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write, read_text
from berth.paths import private_dir

SUN_PATH_MAX = 107  # bytes in a Unix socket address, without the final NUL
# An instance name the local backend can use: it becomes a supervisord section and file names.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_state_dir() -> Path:
    explicit = os.environ.get("BERTH_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return (base / "berth").resolve()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Deployment:
    """One entry of an instance's history: a release deployed at a time."""

    version: str
    release: str  # the release folder (repo root at that version)
    deployed_at: str
    note: str = ""


@dataclass
class InstanceState:
    """The desired state of one instance, and its history: the one rule set for recording
    deployments and choosing rollback targets, shared by every backend that keeps local state."""

    name: str
    started: bool = True  # desired: running or stopped
    current: int = -1  # index into history of the deployed release
    history: list[Deployment] = field(default_factory=list)
    runs_base: int = 0  # the launcher's run count when berth last started it on purpose
    repo: str = ""  # the services repository it was deployed from ("" in older state files)
    pinned: bool = False  # rolled back: `up --latest` leaves it alone until the next deploy

    @property
    def deployment(self) -> Deployment | None:
        return self.history[self.current] if 0 <= self.current < len(self.history) else None

    def belongs_to(self, repo: Path, names: Iterable[str] = ()) -> bool:
        """Whether the instance is one of repository `repo` (resolved). An entry of an older
        state file, which has no repository, belongs to the repository holding its name."""
        if self.repo:
            return self.repo == str(repo)
        return self.name in names

    def claim(self, repo: Path, state_file: Path) -> None:
        """Make the instance one of `repo`; an error when another repository deployed it, since
        instance names are unique per state folder."""
        if self.repo and self.repo != str(repo):
            raise BerthError(Problem(
                f"instance '{self.name}' is already deployed from repository {self.repo}: "
                "instance names are unique per state folder; delete it first "
                f"(berth delete {self.name}) or use another state folder (-t)",
                Location(state_file), entity=self.name))
        self.repo = str(repo)

    def record(self, version: str, release: Path, note: str,
               pin: bool = False) -> tuple[Release, bool]:
        """Make `release` the deployed one and start it; returns (history entry, whether the
        release changed). Deploying the current release again changes nothing but `started`.
        A deploy unpins; a rollback (`pin`) pins."""
        self.started = True
        self.pinned = pin
        current = self.deployment
        if current is not None and current.release == str(release):
            return self._release(self.current), False
        self.history.append(Deployment(version, str(release), now_iso(), note))
        self.current = len(self.history) - 1
        return self._release(self.current), True

    def rollback_target(self, version: str | None) -> tuple[Deployment, str]:
        """The deployment a rollback goes back to (the latest earlier entry of another version,
        or of `version`) and the note to record; an error when there is none or its release
        folder is gone."""
        current = self.deployment
        earlier = self.history[: self.current] if self.current >= 0 else list(self.history)
        target = next((entry for entry in reversed(earlier)
                       if (entry.version == version if version is not None
                           else current is None or entry.version != current.version)), None)
        if target is None:
            if version is None:
                raise BerthError(Problem(f"'{self.name}' has no earlier version to roll back to",
                                         entity=self.name))
            known = ", ".join(dict.fromkeys(d.version for d in self.history))
            raise BerthError(Problem(f"version '{version}' of '{self.name}' was never deployed "
                                     f"here (deployed: {known})", entity=self.name))
        if not Path(target.release).is_dir():
            raise BerthError(Problem(f"release folder of {target.version} is gone",
                                     Location(Path(target.release)), entity=self.name))
        note = f"rollback from {current.version}" if current else "rollback"
        return target, note

    def releases(self) -> list[Release]:
        """The history as `berth history` shows it, oldest first."""
        return [self._release(i) for i in range(len(self.history))]

    def _release(self, index: int) -> Release:
        entry = self.history[index]
        return Release(self.name, entry.version, entry.deployed_at, index == self.current,
                       entry.note)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceState:
        history = [Deployment(**item) for item in data.get("history", [])]
        return cls(
            name=data["name"],
            started=bool(data.get("started", True)),
            current=int(data.get("current", -1)),
            history=history,
            runs_base=int(data.get("runs_base", 0)),
            repo=str(data.get("repo", "")),
            pinned=bool(data.get("pinned", False)),
        )


class StateDir:
    """Paths and the desired-state file of one state dir."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # -- paths ------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def supervisor_lock(self) -> Path:
        """Held by the running supervisor for its whole life (`local.guard`)."""
        return self.root / "supervisor.lock"

    @property
    def supervisor_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def programs_dir(self) -> Path:
        return self.root / "programs"

    def instance_dir(self, name: str) -> Path:
        return self.root / "instances" / name

    def releases_dir(self, name: str) -> Path:
        return self.root / "releases" / name

    @property
    def socket_dir(self) -> Path:
        """Where the sockets are: `<state>/run`, or when that path is too long for sockets (a
        console socket name adds up to ~70 bytes) a short per-user folder under
        $XDG_RUNTIME_DIR, else under /tmp. An existing one is checked to be private to this
        user (`paths.private_dir`); `make_socket_dir` creates it."""
        folder, levels = self._socket_dir()
        if os.path.lexists(folder):
            private_dir(folder, levels)
        elif levels > 1 and os.path.lexists(folder.parent):
            private_dir(folder.parent)
        return folder

    def make_socket_dir(self) -> Path:
        folder, levels = self._socket_dir()
        return private_dir(folder, levels)

    def _socket_dir(self) -> tuple[Path, int]:
        """The socket folder and how many of its trailing components berth owns."""
        run = self.root / "run"
        if len(os.fsencode(run)) + 70 <= SUN_PATH_MAX:
            return run, 1
        digest = hashlib.sha1(os.fsencode(self.root)).hexdigest()[:12]
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and os.path.isabs(runtime):
            short = Path(runtime) / "berth" / digest
            if len(os.fsencode(short)) + 70 <= SUN_PATH_MAX:
                return short, 2
        return Path("/tmp") / f"berth-{os.getuid()}" / digest, 2

    @property
    def supervisor_socket(self) -> Path:
        return self.socket_dir / "supervisor.sock"

    def console_socket(self, name: str) -> Path:
        return self.socket_dir / f"{name}.sock"

    # -- desired state ----------------------------------------------------------------------
    def load(self) -> dict[str, InstanceState]:
        if not self.state_file.exists():
            return {}
        try:  # bounded, and only a regular file: a huge file or a FIFO is one located error
            data = json.loads(read_text(self.state_file))
        except ValueError as exc:
            raise self._corrupt(f"not JSON: {exc}") from None
        except OSError as exc:
            raise BerthError(Problem(f"cannot read the state file: {exc.strerror}",
                                     Location(self.state_file))) from None
        table = data.get("instances", {}) if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise self._corrupt("expected an object {\"instances\": {NAME: {...}}}")
        found = {}
        for name, item in table.items():
            if not SAFE_NAME.match(name) or not isinstance(item, dict) or \
                    item.get("name") != name:
                raise self._corrupt(f"instance {name!r} has a name berth cannot use, or an "
                                    "entry that is not an object of that name")
            try:
                found[name] = InstanceState.from_json(item)
            except (ValueError, KeyError, TypeError, OverflowError) as exc:
                raise self._corrupt(f"instance {name!r}: {exc}") from None
        return found

    def _corrupt(self, why: str) -> BerthError:
        return BerthError(Problem(f"corrupt state file ({why}); move it away to start afresh",
                                  Location(self.state_file)))

    def known(self, instances: dict[str, InstanceState], name: str,
              where: str = "here") -> InstanceState:
        """The state of deployed instance `name`; an error naming close matches otherwise.
        `where` completes "is not deployed ..." (e.g. "with the compose backend")."""
        if name not in instances:
            import difflib

            close = difflib.get_close_matches(name, list(instances), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            deployed = ", ".join(sorted(instances)) or "none"
            raise BerthError(Problem(f"instance '{name}' is not deployed {where}{hint} "
                                     f"(deployed: {deployed})", Location(self.state_file),
                                     entity=name))
        return instances[name]

    def save(self, instances: dict[str, InstanceState]) -> None:
        data = {"instances": {name: asdict(st) for name, st in sorted(instances.items())}}
        atomic_write(self.state_file, json.dumps(data, indent=2) + "\n", mode=0o600)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise berth commands on this state dir (released when the process dies too)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def runs(self, name: str) -> int:
        """How many times the launcher started this instance (written by the launcher)."""
        try:
            return int((self.instance_dir(name) / "runs").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
