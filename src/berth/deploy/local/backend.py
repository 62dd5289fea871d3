"""The local backend: every IOC instance of a beamline on this machine, under supervisord.

Desired state (which release each instance runs, started or stopped) lives in the state dir
(`local_state`); supervisord's config is derived from it (`local_supervisor`), so after a crash
of supervisord or a reboot the instances come back as they were. A deployment is an immutable
release folder (`local_release`); each instance runs `berth run <release>/services/<name>/config`
through a tiny launcher (`local_launch`) that counts runs and marks the log between runs.

Which images run here: berth's own soft-IOC image (`EMBEDDED_IMAGES`, any tag) on the embedded
runtime; any other image only when `BERTH_IOC_MAP` maps it to a local Generic IOC folder
(`image=folder,image2=folder2`, image given with or without its tag). Others are shown as
`not runnable here`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.deploy import InstanceStatus, Release
from berth.deploy import releases as local_release
from berth.deploy.local import supervisor as local_supervisor
from berth.deploy.services import Service, ServicesRepo
from berth.deploy.state import Deployment, InstanceState, StateDir, default_state_dir
from berth.deploy.state import now_iso as _now
from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write

EMBEDDED_IMAGES = ("ghcr.io/berth/softioc",)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MARKER = "### berth:"  # starts the launcher's line opening each run in an instance's log
SUPERVISOR_STATES = {
    "RUNNING": "running",
    "STARTING": "starting",
    "BACKOFF": "backoff",
    "STOPPING": "stopping",
    "STOPPED": "stopped",
    "FATAL": "crashed",
}


def image_name(image: str) -> str:
    """The image without its tag or digest."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def ioc_map() -> dict[str, Path]:
    """Image → local Generic IOC folder, from BERTH_IOC_MAP (`image=folder,...`)."""
    mapping: dict[str, Path] = {}
    for item in os.environ.get("BERTH_IOC_MAP", "").split(","):
        image, sep, folder = item.strip().partition("=")
        if sep and image and folder:
            mapping[image.strip()] = Path(folder.strip()).expanduser()
    return mapping


@dataclass
class HowToRun:
    ioc_dir: Path | None  # a Generic IOC folder, or None for the embedded runtime
    reason: str = ""  # non-empty: not runnable here, and why

    @property
    def runnable(self) -> bool:
        return not self.reason


def how_to_run(service: Service) -> HowToRun:
    image = service.image
    if not image:
        return HowToRun(None, "no image in its values")
    if image_name(image) in EMBEDDED_IMAGES:
        return HowToRun(None)
    mapping = ioc_map()
    folder = mapping.get(image) or mapping.get(image_name(image))
    if folder is None:
        return HowToRun(None, f"needs image {image}: no local IOC is mapped for it "
                        f"(BERTH_IOC_MAP={image_name(image)}=/path/to/ioc)")
    if not (folder / "bin" / "linux-x86_64" / "ioc").is_file():
        return HowToRun(None, f"needs image {image}: mapped folder {folder} has no "
                        "bin/linux-x86_64/ioc")
    return HowToRun(folder)


def runner_command() -> list[str]:
    """How an instance is run: `berth run`, or BERTH_LOCAL_RUNNER (a command prefix)."""
    override = os.environ.get("BERTH_LOCAL_RUNNER")
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "berth", "run"]


class LocalBackend:
    name = "local"

    def __init__(self, repo: Path | None, state_dir: Path | None = None):
        self.repo_path = Path(repo) if repo else Path.cwd()
        self.state = StateDir(state_dir or default_state_dir())

    # -- helpers ----------------------------------------------------------------------------
    def _repo(self) -> ServicesRepo:
        return ServicesRepo.load(self.repo_path)

    def _ioc(self, repo: ServicesRepo, name: str) -> Service:
        service = repo.service(name)
        if not SAFE_NAME.match(name):  # it becomes a supervisord section and file names
            raise BerthError(Problem(f"instance name '{name}' has characters the local backend "
                                     "cannot use (letters, digits, '.', '_', '-')",
                                     Location(service.path), entity=name))
        if not service.is_ioc:
            raise BerthError(Problem(f"'{name}' is not an IOC instance (no ioc-instance values)",
                                     Location(service.values_file), entity=name))
        return service

    def _known(self, instances: dict[str, InstanceState], name: str) -> InstanceState:
        return self.state.known(instances, name)

    def _launch_spec(self, name: str, release: Path, version: str) -> dict[str, Any]:
        service = ServicesRepo.load(release).service(name)
        how = how_to_run(service)
        if not how.runnable:
            raise BerthError(Problem(f"not runnable here: {how.reason}",
                                     Location(service.values_file), entity=name, field="image"))
        instance_dir = self.state.instance_dir(name)
        runtime, data = instance_dir / "runtime", instance_dir / "data"
        socket_path = self.state.console_socket(name)
        config = service.config_dir
        assert config is not None  # releases are checked when made
        argv = [*runner_command(), str(config), "--runtime-dir", str(runtime),
                "--ioc-name", name, "--console-socket", str(socket_path)]
        if how.ioc_dir is not None:
            argv += ["--ioc-dir", str(how.ioc_dir)]
        env = dict(service.environment)
        prefix = service.instance_values.get("prefix")
        env.setdefault("IOC_PREFIX", str(prefix) if prefix else name.upper())
        env.update({
            "RUNTIME_DIR": str(runtime),
            "AUTOSAVE_DIR": str(data),
            "BERTH_DATA_DIR": str(data),
            local_supervisor.INSTANCE_ENV: str(instance_dir),
        })
        return {"argv": argv, "env": env, "cwd": str(instance_dir), "version": version,
                "marker": MARKER, "image": service.image, "release": str(release)}

    def _write_launch(self, name: str, spec: dict[str, Any]) -> None:
        instance_dir = self.state.instance_dir(name)
        for sub in ("runtime", "data"):
            (instance_dir / sub).mkdir(parents=True, exist_ok=True)
        self.state.socket_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(instance_dir / "launch.json", json.dumps(spec, indent=2) + "\n", mode=0o600)

    def _apply(self, instances: dict[str, InstanceState], restart: Sequence[str] = ()) -> None:
        """Save the desired state, bring supervisord's config in line and (re)start what must.

        `restart`: instances whose release changed while their program did not, so they need an
        explicit restart to pick it up."""
        for st in instances.values():
            if st.started and st.name in restart:
                st.runs_base = self.state.runs(st.name)
        changed = []
        for st in instances.values():
            path = self.state.programs_dir / f"{st.name}.conf"
            text = local_supervisor.program_config(self.state, st.name, st.started)
            if not path.exists() or path.read_text() != text:
                if st.started:
                    st.runs_base = self.state.runs(st.name)
                changed.append(st.name)
                atomic_write(path, text)
        for path in self.state.programs_dir.glob("*.conf"):
            if path.stem not in instances:
                path.unlink()
        self.state.save(instances)
        rpc = local_supervisor.ensure_running(self.state)
        local_supervisor.update(rpc)
        info = local_supervisor.process_info(rpc)
        for st in instances.values():
            if not st.started:
                continue
            state = info.get(st.name, {}).get("statename")
            if st.name in restart and st.name not in changed:
                local_supervisor.stop(rpc, st.name)
                local_supervisor.start(rpc, st.name)
            elif state in ("EXITED", "FATAL"):  # gave up after crashes: start afresh
                st.runs_base = self.state.runs(st.name)
                local_supervisor.start(rpc, st.name)
            elif state == "STOPPED":  # autostart has not picked it up yet
                local_supervisor.start(rpc, st.name)
        self.state.save(instances)

    def _record(self, instances: dict[str, InstanceState], name: str, version: str,
                release: Path, note: str) -> tuple[Release, bool]:
        """Make `release` the deployed one; returns (history entry, whether it changed)."""
        st = instances.setdefault(name, InstanceState(name))
        current = st.deployment
        if current is not None and current.release == str(release):
            st.started = True
            return Release(name, current.version, current.deployed_at, True, current.note), False
        self._write_launch(name, self._launch_spec(name, release, version))
        entry = Deployment(version, str(release), _now(), note)
        st.history.append(entry)
        st.current = len(st.history) - 1
        st.started = True
        return Release(name, version, entry.deployed_at, True, note), True

    def _ensure_supervisor(self) -> Any:
        if local_supervisor.is_running(self.state):
            return local_supervisor.proxy(self.state.supervisor_socket)
        with self.state.locked():
            instances = self.state.load()
            for st in instances.values():
                local_supervisor.write_program(self.state, st.name, st.started)
            return local_supervisor.ensure_running(self.state)

    # -- verbs ------------------------------------------------------------------------------
    def ps(self) -> list[InstanceStatus]:
        rpc = self._ensure_supervisor()
        info = local_supervisor.process_info(rpc)
        instances = self.state.load()
        rows: list[InstanceStatus] = []
        for name, st in sorted(instances.items()):
            rows.append(self._status(st, info.get(name)))
        rows += self._undeployed(set(instances))
        return rows

    def _status(self, st: InstanceState, info: dict[str, Any] | None) -> InstanceStatus:
        deployment = st.deployment
        version = deployment.version if deployment else None
        restarts = max(0, self.state.runs(st.name) - st.runs_base - 1)
        extra = {"desired": "started" if st.started else "stopped",
                 "release": deployment.release if deployment else None}
        if info is None:
            state = "starting" if st.started else "stopped"
            return InstanceStatus(st.name, state, version, None, None, restarts, "", extra)
        statename = info["statename"]
        state = SUPERVISOR_STATES.get(statename, statename.lower())
        if statename == "EXITED":
            state = "crashed" if st.started else "stopped"
        running = statename in ("RUNNING", "STARTING", "STOPPING")
        pid = info["pid"] or None if running else None
        uptime = float(info["now"] - info["start"]) if running and info["start"] else None
        reason = ""
        if state in ("crashed", "backoff"):
            reason = self._last_line(st.name) or info.get("spawnerr", "")
        return InstanceStatus(st.name, state, version, pid, uptime, restarts, reason, extra)

    def _last_line(self, name: str) -> str:
        log = self.state.instance_dir(name) / "output.log"
        try:
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - 4096))
                lines = [line for line in f.read().decode(errors="replace").splitlines()
                         if line.strip()]
        except OSError:
            return ""
        return lines[-1].strip()[:200] if lines else ""

    def _undeployed(self, deployed: set[str]) -> list[InstanceStatus]:
        """IOCs of the repository (when there is one here) that are not deployed."""
        try:
            repo = self._repo()
        except BerthError:
            return []
        rows = []
        for name, service in sorted(repo.iocs.items()):
            if name in deployed:
                continue
            how = how_to_run(service)
            if how.runnable:
                rows.append(InstanceStatus(name, "not deployed"))
            else:
                rows.append(InstanceStatus(name, "not runnable here", reason=how.reason,
                                           extra={"image": service.image}))
        return rows

    def deploy(self, service: str, version: str | None = None) -> Release:
        repo = self._repo()
        how = how_to_run(self._ioc(repo, service))
        if not how.runnable:
            raise BerthError(Problem(f"not runnable here: {how.reason}",
                                     Location(repo.service(service).values_file),
                                     entity=service, field="image"))
        with self.state.locked():
            instances = self.state.load()
            releases = self.state.releases_dir(service)
            with _forget_new_releases(releases):
                label, release, note = local_release.make(repo, service, version, releases)
                entry, changed = self._record(instances, service, label, release, note)
            self._apply(instances, restart=[service] if changed else [])
            return entry

    def deploy_local(self, folder: Path) -> Release:
        repo, name = local_release.instance_folder(folder)
        self._ioc(repo, name)
        with self.state.locked():
            instances = self.state.load()
            releases = self.state.releases_dir(name)
            with _forget_new_releases(releases):
                label, release = local_release.from_working_copy(repo.root, name, repo.layout,
                                                                 releases)
                entry, changed = self._record(instances, name, label, release,
                                              f"working copy of {repo.root}")
            self._apply(instances, restart=[name] if changed else [])
            return entry

    def start(self, service: str) -> None:
        with self.state.locked():
            instances = self.state.load()
            self._known(instances, service).started = True
            self._apply(instances)

    def stop(self, service: str) -> None:
        with self.state.locked():
            instances = self.state.load()
            self._known(instances, service).started = False
            self._apply(instances)

    def restart(self, service: str) -> None:
        with self.state.locked():
            instances = self.state.load()
            self._known(instances, service).started = True
            self._apply(instances, restart=[service])

    def delete(self, service: str) -> None:
        """Remove the instance from this machine; its releases and data folder are kept."""
        with self.state.locked():
            instances = self.state.load()
            self._known(instances, service)
            del instances[service]
            self._apply(instances)

    def logs(self, service: str, follow: bool = False, previous: bool = False) -> int:
        self._known(self.state.load(), service)
        log = self.state.instance_dir(service) / "output.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        runs = split_runs(text)
        if previous:
            if len(runs) < 2:
                raise BerthError(Problem(f"instance '{service}' has no previous run",
                                         Location(log), entity=service))
            sys.stdout.write(runs[-2])
            return 0
        sys.stdout.write(runs[-1] if runs else "")
        sys.stdout.flush()
        if follow:
            self._follow(log, len(text.encode()))
        return 0

    @staticmethod
    def _follow(log: Path, offset: int) -> None:
        try:
            while True:
                size = log.stat().st_size if log.exists() else 0
                if size < offset:  # rotated or truncated
                    offset = 0
                if size > offset:
                    with open(log, "rb") as f:
                        f.seek(offset)
                        data = f.read()
                    offset += len(data)
                    sys.stdout.write(data.decode(errors="replace"))
                    sys.stdout.flush()
                time.sleep(0.2)
        except KeyboardInterrupt:
            return

    def attach(self, service: str) -> int:
        self._known(self.state.load(), service)
        return attach_socket(self.state.console_socket(service))

    def exec(self, service: str, command: Sequence[str]) -> int:
        """Run a command in the instance's environment (its env vars, in its runtime dir)."""
        self._known(self.state.load(), service)
        launch = self.state.instance_dir(service) / "launch.json"
        spec = json.loads(launch.read_text())
        if not command:
            command = [os.environ.get("SHELL", "/bin/sh")]
        env = {**os.environ, **spec["env"]}
        try:
            return subprocess.run(list(command), env=env, cwd=spec["env"]["RUNTIME_DIR"]).returncode
        except FileNotFoundError:
            raise BerthError(Problem(f"command not found: {command[0]}", entity=service)) from None

    def rollback(self, service: str, version: str | None = None) -> Release:
        with self.state.locked():
            instances = self.state.load()
            st = self._known(instances, service)
            current = st.deployment
            target = self._rollback_target(st, version)
            release = Path(target.release)
            if not release.is_dir():
                raise BerthError(Problem(f"release folder of {target.version} is gone",
                                         Location(release), entity=service))
            self._write_launch(service, self._launch_spec(service, release, target.version))
            note = f"rollback from {current.version}" if current else "rollback"
            entry = Deployment(target.version, target.release, _now(), note)
            st.history.append(entry)
            st.current = len(st.history) - 1
            st.started = True
            self._apply(instances, restart=[service])
            return Release(service, entry.version, entry.deployed_at, True, note)

    @staticmethod
    def _rollback_target(st: InstanceState, version: str | None) -> Deployment:
        current = st.deployment
        earlier = st.history[: st.current] if st.current >= 0 else list(st.history)
        for entry in reversed(earlier):
            if version is None and (current is None or entry.version != current.version):
                return entry
            if version is not None and entry.version == version:
                return entry
        if version is None:
            raise BerthError(Problem(f"'{st.name}' has no earlier version to roll back to",
                                     entity=st.name))
        known = ", ".join(dict.fromkeys(d.version for d in st.history))
        raise BerthError(Problem(f"version '{version}' of '{st.name}' was never deployed here "
                                 f"(deployed: {known})", entity=st.name))

    def history(self, service: str) -> list[Release]:
        st = self._known(self.state.load(), service)
        return [Release(service, d.version, d.deployed_at, i == st.current, d.note)
                for i, d in enumerate(st.history)]

    def up(self) -> list[Release]:
        repo = self._repo()
        results: list[Release] = []
        with self.state.locked():
            instances = self.state.load()
            restart = []
            for name, service in sorted(repo.iocs.items()):
                how = how_to_run(service)
                if not SAFE_NAME.match(name):
                    results.append(Release(name, "-", "-", False, "skipped: the name has "
                                           "characters the local backend cannot use"))
                    continue
                if not how.runnable:
                    results.append(Release(name, "-", "-", False, f"not runnable here: "
                                                                  f"{how.reason}"))
                    continue
                label, release, note = local_release.make(repo, name, None,
                                                          self.state.releases_dir(name))
                entry, changed = self._record(instances, name, label, release, note)
                if changed:
                    restart.append(name)
                results.append(entry)
            self._apply(instances, restart)
        return results

    def down(self) -> None:
        """Stop every instance and the supervisor (desired: stopped, survives restarts)."""
        with self.state.locked():
            instances = self.state.load()
            for st in instances.values():
                st.started = False
                local_supervisor.write_program(self.state, st.name, False)
            self.state.save(instances)
            local_supervisor.shutdown(self.state)

    def template(self, service: str, version: str | None = None) -> str:
        repo = self._repo()
        self._ioc(repo, service)
        with tempfile.TemporaryDirectory() as scratch:
            label, release, _ = local_release.make(repo, service, version, Path(scratch))
            spec = self._launch_spec(service, release, label)
            spec["release"] = str(self.state.releases_dir(service) /
                                  local_release.folder_name(label))
            for i, arg in enumerate(spec["argv"]):
                spec["argv"][i] = arg.replace(str(release), spec["release"])
            program = local_supervisor.program_config(self.state, service, True)
            local_release.remove_tree(release)
        return f"{program}\n; {self.state.instance_dir(service) / 'launch.json'}\n" + \
            json.dumps(spec, indent=2) + "\n"


@contextlib.contextmanager
def _forget_new_releases(releases: Path) -> Iterator[None]:
    """Remove release folders made inside the block when it fails: a failed deploy leaves
    nothing behind."""
    before = set(releases.iterdir()) if releases.is_dir() else set()
    try:
        yield
    except BaseException:
        if releases.is_dir():
            for folder in set(releases.iterdir()) - before:
                local_release.remove_tree(folder)
        raise


def split_runs(text: str) -> list[str]:
    """An instance's log cut into runs at the launcher's marker lines (markers dropped). A
    marker may follow the previous run's last, unterminated line (e.g. the `epics>` prompt)."""
    pieces = re.split(re.escape(MARKER) + r" run [^\n]*\n?", text)
    head, runs = pieces[0], pieces[1:]
    if head and not runs:
        return [head]  # output from before berth marked runs
    return runs


def attach_socket(socket_path: Path) -> int:
    """Attach the terminal to an IOC console socket (the shell of `berth run`)."""
    from berth.run import console

    if not console.is_live(socket_path):
        raise BerthError(Problem("no IOC console answers here (is the IOC running?)",
                                 Location(socket_path)))
    return console.attach(socket_path)


def shutdown(state_dir: Path) -> bool:
    """Stop the supervisor of a state dir and every instance it runs (tests, maintenance)."""
    return local_supervisor.shutdown(StateDir(state_dir))


def create(repo: Path | None, target: str | None) -> LocalBackend:
    """The local backend; `target`, when given, is the state dir (else BERTH_STATE_DIR...)."""
    return LocalBackend(repo, Path(target).expanduser().resolve() if target else None)
