"""The local backend: every IOC instance of a beamline on this machine, under supervisord.

Desired state (which repository, which release each instance runs, started or stopped) lives
in the state dir (`deploy.state`); supervisord's config is derived from it (`supervisor`), so
after a crash of supervisord or a reboot the next command that changes anything (or systemd)
brings the instances back as they were; commands that only read never start it. A deployment is
an immutable release folder (`deploy.releases`), checked first (`VerbOptions.preflight`); each
instance runs `berth run <release>/services/<name>/config` through a tiny launcher
(`launcher`) that counts runs and marks the log between runs.

`ps`, `up` and `down` apply to one repository's instances (`--all`: every repository of the
state folder); instance names are unique per state folder.

Which images run here: berth's own soft-IOC image (`EMBEDDED_IMAGES`, any tag) on the embedded
runtime; any other image only when `BERTH_IOC_MAP` maps it to a local Generic IOC folder
(`image=folder,image2=folder2`, image given with or without its tag). Others are shown as
`not runnable here`.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from berth.deploy import (
    InstanceStatus,
    Preflight,
    Release,
    VerbOptions,
    refuse_on_errors,
)
from berth.deploy import releases as local_release
from berth.deploy.local import supervisor as local_supervisor
from berth.deploy.local.launcher import STARTS
from berth.deploy.local.settings import local_settings
from berth.deploy.logs import LogQuery, select
from berth.deploy.logs import write as write_log
from berth.deploy.services import Service, ServicesRepo
from berth.deploy.state import SAFE_NAME, InstanceState, StateDir, default_state_dir
from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write
from berth.progress import Progress
from berth.run import prebuilt, ready
from berth.run.ioc_map import how_to_run
from berth.run.launch import RunOptions

MARKER = "### berth:"  # starts the launcher's line opening each run in an instance's log
SUPERVISOR_STATES = {
    "RUNNING": "running",
    "STARTING": "starting",
    "BACKOFF": "backoff",
    "STOPPING": "stopping",
    "STOPPED": "stopped",
    "FATAL": "crashed",
}


BERTH_RUN = [sys.executable, "-m", "berth", "run"]  # how an instance is run by default


def runner_command() -> list[str]:
    """How an instance is run: `berth run`, or BERTH_LOCAL_RUNNER (a command prefix)."""
    override = os.environ.get("BERTH_LOCAL_RUNNER")
    if override:
        return shlex.split(override)
    return list(BERTH_RUN)


class LocalBackend:
    name = "local"

    def __init__(self, repo: Path | None, state_dir: Path | None = None,
                 options: VerbOptions | None = None):
        self.repo_path = Path(repo) if repo else Path.cwd()
        self.state = StateDir(state_dir or default_state_dir())
        self.options = options or VerbOptions()
        self._loaded: ServicesRepo | None = None

    # -- helpers ----------------------------------------------------------------------------
    def _repo(self) -> ServicesRepo:
        if self._loaded is None:
            self._loaded = ServicesRepo.load(self.repo_path)
        return self._loaded

    def _ioc(self, repo: ServicesRepo, name: str) -> Service:
        """The IOC instance `name` of `repo`, runnable here; an error otherwise."""
        service = repo.service(name)
        if not SAFE_NAME.match(name):  # it becomes a supervisord section and file names
            raise BerthError(Problem(f"instance name '{name}' has characters the local backend "
                                     "cannot use (letters, digits, '.', '_', '-')",
                                     Location(service.path), entity=name))
        if not service.is_ioc:
            raise BerthError(Problem(f"'{name}' is not an IOC instance (no ioc-instance values)",
                                     Location(service.values_file), entity=name))
        how = how_to_run(service.image)
        if not how.runnable:
            raise BerthError(Problem(f"not runnable here: {how.reason}",
                                     Location(service.values_file), entity=name, field="image"))
        local_settings(service)  # its mistakes named in the repository, not a release copy
        return service

    def _known(self, instances: dict[str, InstanceState], name: str) -> InstanceState:
        return self.state.known(instances, name)

    def _scope(self, instances: dict[str, InstanceState]
               ) -> tuple[dict[str, InstanceState], ServicesRepo | None]:
        """The instances a ps/up/down applies to (this repository's, or with --all every one
        of the state folder), and this repository when it can be read."""
        try:
            repo: ServicesRepo | None = self._repo()
        except BerthError as err:
            if self.options.all_repos:
                return dict(instances), None
            root = str(self.repo_path.resolve())
            mine = {n: st for n, st in instances.items() if st.repo == root}
            if mine:  # the repository went away or broke: its deployed instances still count
                return mine, None
            raise BerthError([*err.problems, Problem(
                "give the services repository (-r, BERTH_REPO or the current directory), or "
                "--all for every repository of the state folder")]) from None
        assert repo is not None
        if self.options.all_repos:
            return dict(instances), repo
        return {n: st for n, st in instances.items()
                if st.belongs_to(repo.root, repo.services)}, repo

    def _launch_spec(self, name: str, release: Path, version: str) -> dict[str, Any]:
        service = ServicesRepo.load(release).service(name)
        how = how_to_run(service.image)
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
        # The IOC's environment comes from the repository (global and instance `env`) plus
        # berth's own variables; the launcher adds it to supervisord's, which holds no EPICS_*
        # of whoever started it (local_supervisor.clean_environment).
        env = dict(service.environment)
        prefix = service.instance_values.get("prefix")
        env.setdefault("IOC_PREFIX", str(prefix) if prefix else name.upper())
        env.update({
            "RUNTIME_DIR": str(runtime),
            "AUTOSAVE_DIR": str(data),
            "BERTH_DATA_DIR": str(data),
            local_supervisor.INSTANCE_ENV: str(instance_dir),
        })
        settings = local_settings(service)
        return {"argv": argv, "env": env, "cwd": str(instance_dir), "version": version,
                "marker": MARKER, "image": service.image, "release": str(release),
                "backoff": settings["restart_backoff"], "log": settings["log"]}

    def _write_launch(self, name: str, spec: dict[str, Any]) -> None:
        instance_dir = self.state.instance_dir(name)
        for sub in ("runtime", "data"):
            (instance_dir / sub).mkdir(parents=True, exist_ok=True)
        self.state.make_socket_dir()
        atomic_write(instance_dir / "launch.json", json.dumps(spec, indent=2) + "\n", mode=0o600)
        argv = spec["argv"]
        kept = argv[argv.index("--prebuilt") + 1] if "--prebuilt" in argv else None
        for folder in (instance_dir / "prebuilt").glob("*"):  # other releases' (or unused)
            if str(folder) != kept:
                local_release.remove_tree(folder)

    def _apply(self, instances: dict[str, InstanceState], restart: Sequence[str] = ()) -> None:
        """Save the desired state, bring supervisord's config in line and (re)start what must.
        A supervisor that is not running is started only when an instance should run.

        `restart`: instances whose release changed while their program did not, so they need an
        explicit restart to pick it up."""
        for st in instances.values():
            if st.started and st.name in restart:
                self._started_on_purpose(st)
        changed = []
        for st in instances.values():
            path = self.state.programs_dir / f"{st.name}.conf"
            text = local_supervisor.program_config(self.state, st.name, st.started)
            if not path.exists() or path.read_text() != text:
                if st.started:
                    self._started_on_purpose(st)
                changed.append(st.name)
                atomic_write(path, text)
        for path in self.state.programs_dir.glob("*.conf"):
            if path.stem not in instances:
                path.unlink()
        self.state.save(instances)
        if not any(st.started for st in instances.values()) and \
                local_supervisor.reach(self.state) is None:
            return
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
                self._started_on_purpose(st)
                local_supervisor.start(rpc, st.name)
            elif state == "STOPPED":  # autostart has not picked it up yet
                local_supervisor.start(rpc, st.name)
        self.state.save(instances)

    def _started_on_purpose(self, st: InstanceState) -> None:
        """berth (re)starts `st` on purpose: what ran before was no crash, no failed start."""
        st.runs_base = self.state.runs(st.name)
        with contextlib.suppress(OSError):
            (self.state.instance_dir(st.name) / STARTS).unlink(missing_ok=True)

    def _install(self, instances: dict[str, InstanceState], name: str, root: Path,
                 version: str, release: Path, note: str, specs: dict[str, dict[str, Any]]
                 ) -> tuple[Release, bool]:
        """Make `release` (of repository `root`) the deployed release of `name`; returns
        (history entry, whether it changed). `specs`: what `_prepare` made of the releases
        that are not current."""
        st = instances.setdefault(name, InstanceState(name))
        st.claim(root, self.state.state_file)
        if not _is_current(st, release):
            spec = specs[name]
            entry, changed = st.record(version, release, note)
            self._write_launch(name, spec)
            return entry, changed
        return st.record(version, release, note)

    def _prepare(self, instances: dict[str, InstanceState],
                 jobs: Sequence[tuple[str, Path, str, str]], always: bool = False
                 ) -> dict[str, dict[str, Any]]:
        """For each (name, release, shown as, version) whose release is not what runs (every
        one with `always`): run the pre-flight checks (unless --force) and build the outputs
        its start would generate (`berth.run.prebuilt`), in parallel processes. Returns the
        launch specs; one error lists the problems of every release that fails its checks.

        In processes, not threads: checks and builds set the instance's environment while
        they generate (as in its container), which threads would share. Most of a check waits
        for its EPICS-load subprocess, so twice the cores keeps them busy."""
        todo = [job for job in jobs if always or job[0] not in instances
                or not _is_current(instances[job[0]], job[1])]
        if not todo:
            return {}
        preflight = None if self.options.force else self.options.preflight
        specs = {name: self._launch_spec(name, release, version)
                 for name, release, _shown, version in todo}
        work = [(preflight, name, release, specs[name],
                 str(self.state.instance_dir(name) / "prebuilt" / release.name))
                for name, release, _shown, _version in todo]
        workers = min(len(todo), 2 * (os.cpu_count() or 1))
        progress = Progress("checking" if preflight is not None else "preparing", len(work))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_check_and_build, job) for job in work]
            pending = set(futures)
            while pending:
                pending = wait(pending, timeout=0.5)[1]
                progress.update(len(futures) - len(pending))
            found = [future.result() for future in futures]
        progress.finish()
        problems: list[Problem] = []
        for (name, release, shown, _version), (each, built) in zip(todo, found, strict=True):
            try:
                refuse_on_errors(each, release, name, shown)
            except BerthError as err:
                problems.extend(err.problems)
            if built is not None:
                specs[name]["argv"] += ["--prebuilt", built]
        if problems:
            raise BerthError(problems)
        return specs

    # -- verbs ------------------------------------------------------------------------------
    def ps(self) -> list[InstanceStatus]:
        """This repository's instances (every repository's with --all). Reads only: with no
        supervisor running, every deployed instance is shown stopped."""
        everything = self.state.load()
        instances, repo = self._scope(everything)
        info: dict[str, dict[str, Any]] | None = None
        rpc = local_supervisor.reach(self.state)
        if rpc is not None:
            info = local_supervisor.process_info(rpc)
        rows = [self._status(st, info) for _name, st in sorted(instances.items())]
        if repo is not None:
            rows += self._undeployed(repo, set(everything))
        self._add_strays(rows, local_supervisor.strays(self.state))
        return rows

    @staticmethod
    def _add_strays(rows: list[InstanceStatus], strays: dict[str, list[int]]) -> None:
        """Name IOC processes of this state folder that its supervisor does not own."""
        by_name = {row.name: row for row in rows}
        for name, pids in sorted(strays.items()):
            note = (f"also running outside the supervisor: pid {', '.join(map(str, pids))} "
                    "(a second copy serves the same PVs; stop it)")
            row = by_name.get(name)
            if row is None:
                rows.append(InstanceStatus(name, "stray", pid=pids[0], reason=note,
                                           extra={"strays": pids}))
                continue
            row.extra["strays"] = pids
            row.reason = f"{row.reason}; {note}" if row.reason else note

    def _status(self, st: InstanceState, processes: dict[str, dict[str, Any]] | None
                ) -> InstanceStatus:
        deployment = st.deployment
        version = deployment.version if deployment else None
        restarts = max(0, self.state.runs(st.name) - st.runs_base - 1)
        extra = {"desired": "started" if st.started else "stopped",
                 "release": deployment.release if deployment else None,
                 "repo": st.repo or None, "pinned": st.pinned}
        if processes is None:
            reason = "the supervisor is not running (berth up starts it)" if st.started else ""
            return InstanceStatus(st.name, "stopped", version, None, None, restarts, reason,
                                  extra)
        info = processes.get(st.name)
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
        if state == "running" and pid and \
                _read_json(self.state.instance_dir(st.name) / STARTS).get("pid") != pid:
            state = "starting"  # supervisord has spawned it; its launcher has not begun yet
        row = InstanceStatus(st.name, state, version, pid, uptime, restarts, reason, extra)
        if state == "running" and self._crash_looping(row, pid):
            return row
        if state == "running":
            row.health = ready.health(self.state.instance_dir(st.name) / "runtime", pid)
            row.ready = row.health in (ready.READY, ready.UNPROBED)
            if row.health == ready.UNPROBED:
                row.health = "running (not probed)"
        return row

    def _crash_looping(self, row: InstanceStatus, pid: int | None) -> bool:
        """Mark `row` crash-looping when its launcher counts failed starts and the current run
        is not (yet) ready: waiting out its back-off, or trying once more."""
        starts = _read_json(self.state.instance_dir(row.name) / STARTS)
        failures = starts.get("failures") if starts.get("pid") == pid else None
        if not isinstance(failures, int) or failures < 1:
            return False
        health = ready.health(self.state.instance_dir(row.name) / "runtime", pid)
        if health == ready.READY and "until" not in starts:
            return False
        lines = self._last_lines(row.name, 5, previous=True)
        row.state, row.health, row.ready = "crash-looping", "", False
        waiting = starts.get("until")
        when = (f"next start in {max(0, round(float(waiting) - time.time()))} s"
                if isinstance(waiting, int | float) else "starting again")
        row.reason = f"{failures} failed start{'s' if failures > 1 else ''}, {when}" + (
            f": {lines[-1][:200]}" if lines else "")
        row.extra.update({"failures": failures, "last_log": lines})
        return True

    def _last_lines(self, name: str, count: int, previous: bool = False) -> list[str]:
        """The last `count` lines of the instance's log: of its latest run, or with `previous`
        of the run before the one now starting (which has not printed its marker yet while
        waiting out a back-off)."""
        log = self.state.instance_dir(name) / "output.log"
        try:
            with open(log, "rb") as f:
                f.seek(max(0, log.stat().st_size - 16384))
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        runs = split_runs(text)
        if not runs:
            return []
        chosen = runs[-1]
        if previous and len(runs) > 1 and not chosen.strip():
            chosen = runs[-2]
        return [line.strip() for line in chosen.splitlines() if line.strip()][-count:]

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

    @staticmethod
    def _undeployed(repo: ServicesRepo, deployed: set[str]) -> list[InstanceStatus]:
        """IOCs of the repository that are not deployed (by it or by another repository)."""
        rows = []
        for name, service in sorted(repo.iocs.items()):
            if name in deployed:
                continue
            how = how_to_run(service.image)
            if how.runnable:
                rows.append(InstanceStatus(name, "not deployed"))
            else:
                rows.append(InstanceStatus(name, "not runnable here", reason=how.reason,
                                           extra={"image": service.image}))
        return rows

    def deploy(self, service: str, version: str | None = None) -> Release:
        repo = self._repo()
        self._ioc(repo, service)
        with self.state.locked():
            instances = self.state.load()
            if service in instances:  # another repository's: refused before any work
                instances[service].claim(repo.root, self.state.state_file)
            releases = self.state.releases_dir(service)
            with _forget_new_releases(releases):
                label, release, note = local_release.make(repo, service, version, releases)
                specs = self._prepare(instances, [(service, release, _shown_as(repo.root, label),
                                                   label)])
                entry, changed = self._install(instances, service, repo.root, label, release,
                                               note, specs)
            self._apply(instances, restart=[service] if changed else [])
            return entry

    def deploy_local(self, folder: Path) -> Release:
        repo, name = local_release.instance_folder(folder)
        self._ioc(repo, name)
        with self.state.locked():
            instances = self.state.load()
            if name in instances:
                instances[name].claim(repo.root, self.state.state_file)
            releases = self.state.releases_dir(name)
            with _forget_new_releases(releases):
                label, release = local_release.from_working_copy(repo.root, name, repo.layout,
                                                                 releases)
                specs = self._prepare(instances, [(name, release, str(repo.root), label)])
                entry, changed = self._install(instances, name, repo.root, label, release,
                                               f"working copy of {repo.root}", specs)
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
            rpc = local_supervisor.reach(self.state)
            if rpc is not None:  # first what needs no disk: stop works on a full disk too
                local_supervisor.stop(rpc, service)
            try:
                self._apply(instances)
            except OSError as exc:
                if rpc is None:
                    raise
                raise BerthError(Problem(
                    f"stopped {service}, but could not record that it stays stopped "
                    f"({exc.strerror}: {exc.filename}); it starts again with its supervisor",
                    Location(self.state.root), entity=service)) from None

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

    def logs(self, service: str, query: LogQuery = LogQuery()) -> int:
        self._known(self.state.load(), service)
        log = self.state.instance_dir(service) / "output.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        runs = split_runs(text)
        if query.previous:
            if len(runs) < 2:
                raise BerthError(Problem(f"instance '{service}' has no previous run",
                                         Location(log), entity=service))
            write_log(select(runs[-2], query))
            return 0
        write_log(select(runs[-1] if runs else "", query))
        if query.follow:
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
                    write_log(data.decode(errors="replace"))
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
        env = {**local_supervisor.clean_environment(), **spec["env"]}
        try:
            return subprocess.run(list(command), env=env, cwd=spec["env"]["RUNTIME_DIR"]).returncode
        except FileNotFoundError:
            raise BerthError(Problem(f"command not found: {command[0]}", entity=service)) from None

    def rollback(self, service: str, version: str | None = None) -> Release:
        """Go back to an earlier deployed release; it stays pinned (`up --latest` leaves it)
        until the next explicit `deploy`."""
        with self.state.locked():
            instances = self.state.load()
            st = self._known(instances, service)
            target, note = st.rollback_target(version)
            release = Path(target.release)
            shown = _shown_as(Path(st.repo) if st.repo else release, target.version)
            specs = self._prepare(instances, [(service, release, shown, target.version)],
                                  always=True)
            entry, _changed = st.record(target.version, release, note, pin=True)
            self._write_launch(service, specs[service])
            self._apply(instances, restart=[service])
            return entry

    def history(self, service: str) -> list[Release]:
        return self._known(self.state.load(), service).releases()

    def up(self) -> list[Release]:
        """Start this repository's instances (every repository's with --all) as deployed;
        deploy those never deployed (at their latest version). `--latest` also moves deployed
        instances to their latest version, except those pinned by a rollback."""
        with self.state.locked():
            instances = self.state.load()
            scoped, repo = self._scope(instances)
            results: dict[str, Release] = {}
            new: dict[str, tuple[Path, str, Path, str]] = {}  # name → root, label, release, note
            for name, st in scoped.items():
                st.started = True
                if not st.repo and repo is not None and name in repo.services:
                    st.repo = str(repo.root)  # an entry of an older state file
                if st.deployment is not None:
                    results[name] = st.releases()[st.current]
            repos = [repo] if repo is not None else []
            if self.options.all_repos:
                repos += _other_repos(scoped, repo)
            made: list[Path] = []
            try:
                for each in repos:
                    self._plan_up(each, instances, results, new, made)
                specs = self._prepare(instances, [
                    (name, release, _shown_as(root, label), label)
                    for name, (root, label, release, _note) in sorted(new.items())])
                for name, (root, label, release, note) in sorted(new.items()):
                    results[name], _changed = self._install(instances, name, root, label,
                                                            release, note, specs)
            except BaseException:
                for folder in made:
                    local_release.remove_tree(folder)
                raise
            self._apply(instances, restart=sorted(new))
        return [results[name] for name in sorted(results)]

    def _plan_up(self, repo: ServicesRepo, instances: dict[str, InstanceState],
                 results: dict[str, Release], new: dict[str, tuple[Path, str, Path, str]],
                 made: list[Path]) -> None:
        """For `up` of one repository: the releases to install (`new`), skipped instances as
        notes (`results`). Release folders made here are listed in `made`."""
        for name, service in sorted(repo.iocs.items()):
            st = instances.get(name)
            if st is not None and st.repo and st.repo != str(repo.root):
                st.claim(repo.root, self.state.state_file)  # another repository's: an error
            if st is not None and st.deployment is not None and not self.options.latest:
                continue
            if not SAFE_NAME.match(name):
                results[name] = Release(name, "-", "-", False, "skipped: the name has characters "
                                        "the local backend cannot use")
                continue
            how = how_to_run(service.image)
            if not how.runnable:
                results[name] = Release(name, "-", "-", False, f"not runnable here: {how.reason}")
                continue
            if st is not None and st.pinned and st.deployment is not None:
                results[name] = Release(name, st.deployment.version, st.deployment.deployed_at,
                                        True, f"pinned by a rollback: berth deploy {name} "
                                        "moves it")
                continue
            local_settings(service)
            releases = self.state.releases_dir(name)
            before = set(releases.iterdir()) if releases.is_dir() else set()
            label, release, note = local_release.make(repo, name, None, releases)
            if release not in before:
                made.append(release)
            if st is not None and st.deployment is not None:
                if _is_current(st, release):
                    continue
                note = f"up --latest: {st.deployment.version} → {label}"
                print(f"berth: {name}: {st.deployment.version} → {label}", file=sys.stderr)
            new[name] = (repo.root, label, release, note)

    def down(self) -> list[str]:
        """Stop this repository's instances (every one with --all) at once; the supervisor
        stops too when no instance is left to run. Desired: stopped, survives restarts.
        Returns the instances that were running."""
        with self.state.locked():
            instances = self.state.load()
            scoped, _repo = self._scope(instances)
            for st in scoped.values():
                st.started = False
                local_supervisor.write_program(self.state, st.name, False)
            self.state.save(instances)
            rpc = local_supervisor.reach(self.state)
            if rpc is None:
                return []
            stopped = local_supervisor.stop_all(rpc, sorted(scoped))
            if any(st.started for st in instances.values()):
                local_supervisor.update(rpc)
            else:
                local_supervisor.shutdown(self.state)
            return stopped

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
            program = local_supervisor.program_config(
                self.state, service, True, local_supervisor.LogSettings(**spec["log"]))
            local_release.remove_tree(release)
        return f"{program}\n; {self.state.instance_dir(service) / 'launch.json'}\n" + \
            json.dumps(spec, indent=2) + "\n"


def _check_and_build(job: tuple[Preflight | None, str, Path, dict[str, Any], str]
                     ) -> tuple[list[Problem], str | None]:
    """In a worker process: the checks of instance `name` of `release` (none without a
    checker), then, when they found no error, the outputs its start generates, built ahead
    into `out` (None when its start generates nothing or fails: it then reports that)."""
    preflight, name, release, spec, out = job
    problems = preflight(release, name) if preflight is not None else []
    if any(p.severity == "error" for p in problems):
        return problems, None
    argv = spec["argv"]
    options = (RunOptions.from_argv(argv[len(BERTH_RUN):])
               if argv[:len(BERTH_RUN)] == BERTH_RUN else None)
    if options is None:
        return problems, None
    env = {**local_supervisor.clean_environment(), **spec["env"]}
    saved = dict(os.environ)
    os.environ.clear()  # as the IOC's start would see it (template names may use it)
    os.environ.update(env)
    try:
        built = prebuilt.build(options, Path(out), env, list(spec["env"]))
    except (BerthError, OSError):
        built = False
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return problems, out if built else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_current(st: InstanceState, release: Path) -> bool:
    return st.deployment is not None and st.deployment.release == str(release)


def _shown_as(root: Path, label: str) -> str:
    """How problems name a release's files: the repository, at the tag when there is one."""
    return str(root) if label.startswith(local_release.LOCAL_PREFIX) else f"{root}@{label}"


def _other_repos(instances: dict[str, InstanceState], skip: ServicesRepo | None
                 ) -> list[ServicesRepo]:
    """The other repositories instances were deployed from, those that can still be read."""
    found = []
    for root in sorted({st.repo for st in instances.values() if st.repo}):
        if skip is not None and root == str(skip.root):
            continue
        with contextlib.suppress(BerthError):
            found.append(ServicesRepo.load(Path(root)))
    return found


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


def create(repo: Path | None, target: str | None,
           options: VerbOptions | None = None) -> LocalBackend:
    """The local backend; `target`, when given, is the state dir (else BERTH_STATE_DIR...)."""
    return LocalBackend(repo, Path(target).expanduser().resolve() if target else None, options)
