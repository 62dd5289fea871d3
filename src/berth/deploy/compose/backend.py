"""The compose backend (`-b compose`): each service is a container run by docker or podman.

berth reads the services repository itself (Helm or compose layout), derives one
`ContainerSpec` per instance and drives the engine's own command line, so no compose tool is
needed. Releases and history follow the local backend's conventions: a deploy exports the
repository at a tag into an immutable release folder (`<state>/compose/releases/<name>/<version>`)
whose config folder is bind-mounted into the container; `state.json` records each instance's
history and which entry is current. Persistent data lives in a named volume per instance.

A compose repository runs every service the chosen profiles activate, IOC or not, in
`depends_on` order on its project networks. Services that are not IOCs (gateways, web servers,
init jobs) run from the working copy as compose runs them, have no versions, and are shown
with their container state; IOC-only verbs (attach) refuse them and say why.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from berth.deploy import InstanceStatus, Release, VerbOptions, preflight_release
from berth.deploy import releases as local_release
from berth.deploy.compose import networks
from berth.deploy.compose.order import dependencies, start_order, wait_for
from berth.deploy.compose.spec import (
    ContainerSpec,
    compose_env,
    is_active,
    project_name,
    spec_from_compose,
    spec_from_helm,
)
from berth.deploy.logs import LogQuery, relay
from berth.deploy.services import Service, ServicesRepo
from berth.deploy.state import InstanceState, StateDir, default_state_dir
from berth.errors import BerthError, Location, Problem
from berth.tools.engine import Engine, detect

WORKING_COPY = "working copy"
CONTAINER_HEALTH = {"healthy": "ready", "starting": "starting", "unhealthy": "not answering"}


def create(repo: Path | None, target: str | None = None,
           options: VerbOptions | None = None) -> ComposeBackend:
    return ComposeBackend(repo, target, options=options)


class ComposeBackend:
    name = "compose"

    def __init__(self, repo: Path | None, target: str | None = None,
                 engine: Engine | None = None, state_dir: Path | None = None,
                 options: VerbOptions | None = None):
        self.options = options or VerbOptions()
        self.repo_root = Path(repo).resolve() if repo else None
        # For the compose layout the target names the profiles to run (comma separated).
        profiles = target or os.environ.get("COMPOSE_PROFILES", "")
        self.profiles = [p.strip() for p in profiles.split(",") if p.strip()]
        self._engine = engine
        self.state = StateDir(state_dir or default_state_dir() / "compose")
        self._network_create: dict[str, list[str]] = {}  # engine network -> create args

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = detect()
        return self._engine

    @property
    def repo(self) -> ServicesRepo:
        if self.repo_root is None:
            raise BerthError("no services repository given: pass the repository folder")
        cached: ServicesRepo | None = getattr(self, "_repo", None)
        if cached is None:
            cached = ServicesRepo.load(self.repo_root)
            self._repo = cached
        return cached

    def runnable(self, repo: ServicesRepo) -> dict[str, Service]:
        """Services this backend can run: Helm IOC instances, or every compose service with an
        image that the chosen profiles activate (IOCs, gateways, web servers, …)."""
        if repo.layout == "helm":
            return repo.iocs
        return {n: s for n, s in repo.services.items()
                if s.values.get("image") and is_active(s, self.profiles)}

    def spec_for(self, service: Service, version: str, root: Path) -> ContainerSpec:
        if service.layout == "helm":
            return spec_from_helm(service, version, str(self.repo_root or root))
        host = self.repo_root or root
        env = compose_env(host)
        declared = service.source.get("name") if service.source is not None else None
        project = project_name(host, env, declared)
        named: dict[str, str] = {}
        if not service.values.get("network_mode"):
            labels = {"berth.repo": str(host)}
            for network in service.values.get("networks") or ["default"]:
                engine_name, create = networks.create_argv(service, str(network), project, env,
                                                           labels)
                named[str(network)] = engine_name
                self._network_create[engine_name] = create
        return spec_from_compose(service, version, str(host), env, rebase=(root, host),
                                 networks=named)

    # -- reading ----------------------------------------------------------------------------
    def ps(self) -> list[InstanceStatus]:
        instances = self.state.load()
        names: dict[str, str] = {}  # instance -> container name
        unrunnable: dict[str, str] = {}
        not_ioc: set[str] = set()
        repo: ServicesRepo | None = None
        if self.repo_root is not None:
            try:
                repo = self.repo
            except BerthError:  # not in a services repository: show what is deployed
                repo = None
        if repo is not None:
            runnable = self.runnable(repo)
            for name, service in repo.services.items():
                if name in runnable:
                    names[name] = _container_name(service)
                    if not service.is_ioc:
                        not_ioc.add(name)
                elif repo.layout == "helm":
                    unrunnable[name] = f"chart '{service.chart}' is not run by this backend"
        for name in instances:
            names.setdefault(name, name)
        containers = self.engine.inspect(list(names.values()))
        found = {c.get("Name", "").lstrip("/"): c for c in containers}
        rows = [_status(name, found.get(container), instances.get(name), name not in not_ioc)
                for name, container in sorted(names.items())]
        rows += [InstanceStatus(n, "not runnable here", reason=why)
                 for n, why in sorted(unrunnable.items())]
        return rows

    def history(self, service: str) -> list[Release]:
        return self._known(self.state.load(), service).releases()

    def template(self, service: str, version: str | None = None) -> str:
        """The `docker run` command line, and the same container as a compose file, for the
        release `deploy` would make (the latest tag, else the working copy)."""
        repo = self.repo
        self._ioc(repo, service)
        scratch = Path(tempfile.mkdtemp(prefix="berth-template-"))
        try:
            real_releases = self.state.releases_dir(service)
            label, release, _ = self._make_release(repo, service, version, scratch)
            spec = self.spec_for(ServicesRepo.load(release).service(service), label, release)
            final = str(real_releases / local_release.folder_name(label))
            argv = [a.replace(str(release), final) for a in spec.run_argv(self.engine_name())]
            document: dict[str, Any] = {"services": {service: spec.compose_service()}}
            if spec.named_volumes:
                document["volumes"] = {v: {"name": v} for v in spec.named_volumes}
            body = yaml.safe_dump(document, sort_keys=False).replace(str(release), final)
        finally:
            local_release.remove_tree(scratch)
        lines = ["# what berth runs:", *(f"#   {line}" for line in _wrap_argv(argv))]
        return "\n".join(lines) + "\n" + body

    def engine_name(self) -> str:
        """The engine for rendering; rendering must work where no engine is installed."""
        if self._engine is not None:
            return self._engine.name
        choice = os.environ.get("BERTH_ENGINE")
        if choice:
            return choice
        return "docker" if shutil.which("docker") or not shutil.which("podman") else "podman"

    # -- deploying --------------------------------------------------------------------------
    def _ioc(self, repo: ServicesRepo, name: str) -> Service:
        service = repo.service(name)
        if name not in self.runnable(repo):
            what = "an IOC instance" if repo.layout == "helm" else (
                "a service with an image, active in the chosen profiles"
                + (f" ({', '.join(self.profiles)})" if self.profiles else " (none chosen)"))
            raise BerthError(Problem(f"'{name}' is not {what}", Location(service.values_file),
                                     entity=name))
        return service

    def _make_release(self, repo: ServicesRepo, name: str, version: str | None,
                      releases: Path | None = None) -> tuple[str, Path, str]:
        """(version, release folder, note) for `version`, the latest tag, or the working copy.

        A compose service that is not an IOC runs from the working copy, as compose runs it:
        what it mounts is often written there by another service (an init job's configs)."""
        service = repo.services.get(name)
        if repo.layout == "compose" and service is not None and not service.is_ioc:
            if version is not None:
                raise BerthError(Problem(f"'{name}' is not an IOC: it runs from the working copy "
                                         "(no versions)", Location(service.values_file), name))
            return WORKING_COPY, repo.root, f"working copy of {repo.root}"
        return local_release.make(repo, name, version, releases or self.state.releases_dir(name))

    def deploy(self, service: str, version: str | None = None) -> Release:
        repo = self.repo
        self._ioc(repo, service)
        self._dependencies_first(repo, service)
        label, release, note = self._make_release(repo, service, version)
        return self._install(service, label, release, note)

    def deploy_local(self, folder: Path) -> Release:
        repo, name = local_release.instance_folder(folder)
        self.repo_root = self.repo_root or repo.root
        self._ioc(repo, name)
        label, release = local_release.from_working_copy(repo.root, name, repo.layout,
                                                        self.state.releases_dir(name))
        return self._install(name, label, release, f"working copy of {repo.root}")

    def rollback(self, service: str, version: str | None = None) -> Release:
        target, note = self._known(self.state.load(), service).rollback_target(version)
        return self._install(service, target.version, Path(target.release), note, force=True)

    def _known(self, instances: dict[str, InstanceState], name: str) -> InstanceState:
        return self.state.known(instances, name, "with the compose backend")

    def _install(self, name: str, version: str, release: Path, note: str,
                 force: bool = False, keep_pin: bool = False) -> Release:
        """Run `release` in the instance's container (replacing it when the release changed,
        after the pre-flight checks) and record it; deploying the current release again only
        makes sure it runs (and unpins, unless `keep_pin`). `force`: replace the container
        even so (a rollback, which pins)."""
        service = ServicesRepo.load(release).service(name)
        spec = self.spec_for(service, version, release)
        with self.state.locked():
            instances = self.state.load()
            state = instances.setdefault(name, InstanceState(name))
            current = state.deployment
            if not spec.is_ioc:  # run from the working copy: an edit there is a new container
                spec.labels["berth.spec"] = _digest(spec)
            if not force and current is not None and current.release == str(release) and (
                    spec.is_ioc or self._same_spec(spec)):
                self._ensure_running(spec)
                state.started = True
                state.pinned = state.pinned and keep_pin
                self.state.save(instances)
                return state.releases()[state.current]
            shown = str(self.repo_root or release)
            if not version.startswith(local_release.LOCAL_PREFIX) and version != WORKING_COPY:
                shown += f"@{version}"
            if service.is_ioc:  # the checks are about IOC configuration
                preflight_release(self.options, release, name, shown)
            self._check_image(spec)
            self._replace_container(spec)
            entry, _changed = state.record(version, release, note, pin=force)
            self.state.save(instances)
        return entry

    def _same_spec(self, spec: ContainerSpec) -> bool:
        found = self.engine.inspect([spec.name])
        labels = ((found[0].get("Config") or {}).get("Labels") or {}) if found else {}
        return not found or labels.get("berth.spec") == spec.labels.get("berth.spec")

    def _ensure_running(self, spec: ContainerSpec) -> None:
        """Start the container, creating it when it is missing or when its image tag now
        names another image (rebuilt or loaded since), as compose does."""
        found = self.engine.inspect([spec.name])
        current = _image_id(self.engine.image_id(spec.image))
        if not found or current and _image_id(str(found[0].get("Image", ""))) != current:
            self._check_image(spec)
            self._replace_container(spec)
        elif str((found[0].get("State") or {}).get("Status")) != "running":
            self.engine.run("start", spec.name)

    def _check_image(self, spec: ContainerSpec) -> None:
        if not self.engine.image_exists(spec.image):
            raise BerthError(Problem(
                f"image '{spec.image}' is not present in {self.engine.name} and cannot be pulled "
                "here (no registry): build it (berth image build) or load it (docker load)",
                entity=spec.name, field="image"))

    def _replace_container(self, spec: ContainerSpec) -> None:
        existing = self.engine.inspect([spec.name])
        if existing:
            labels = (existing[0].get("Config") or {}).get("Labels") or {}
            if "berth.service" not in labels:
                raise BerthError(f"a container named '{spec.name}' exists and was not started by "
                                 "berth: remove or rename it first")
            owner = labels.get("berth.repo")
            ours = spec.labels.get("berth.repo")
            if owner and ours and owner != ours:
                raise BerthError(f"container '{spec.name}' runs an instance of another "
                                 f"repository ({owner}): `berth down -b compose -r {owner}` "
                                 "first, or remove the container")
            self.engine.run("rm", "-f", spec.name)
        for network in [spec.network, *spec.more_networks]:
            if network not in ("host", "bridge", "none", ""):
                self._ensure_network(network)
        argv = spec.run_argv(self.engine.name)
        self.engine.run(*argv[1:], timeout=120)
        for network in spec.more_networks:
            self.engine.run("network", "connect", *(f"--alias={a}" for a in spec.aliases),
                            network, spec.name)

    def _ensure_network(self, network: str) -> None:
        if self.engine.run("network", "inspect", network, check=False).returncode == 0:
            return
        create = self._network_create.get(network, ["network", "create", network])
        if not create:
            raise BerthError(f"external network '{network}' does not exist: create it first "
                             f"({self.engine.name} network create {network})")
        self.engine.run(*create)

    def _current_spec(self, service: str) -> ContainerSpec:
        state = self._known(self.state.load(), service)
        deployment = state.deployment
        if deployment is None:
            raise BerthError(Problem(f"instance '{service}' has no current release",
                                     Location(self.state.state_file), entity=service))
        release = Path(deployment.release)
        return self.spec_for(ServicesRepo.load(release).service(service), deployment.version,
                             release)

    def _container_of(self, service: str) -> str:
        """The instance's container name, or a clear error when it has none."""
        name = self._current_spec(service).name
        if not self.engine.inspect([name]):
            raise BerthError(Problem(f"'{service}' has no container (removed by `down` or by "
                                     "hand): `start` or `up` creates it again", entity=service))
        return name

    # -- running ----------------------------------------------------------------------------
    def start(self, service: str) -> None:
        spec = self._current_spec(service)
        if self.repo_root is not None:  # with no repository there are no dependencies to read
            self._dependencies_first(self.repo, service)
        self._ensure_running(spec)
        self._set_started(service, True)

    def stop(self, service: str) -> None:
        container = self._container_of(service)
        self.engine.run("stop", "-t", "10", container, timeout=60)
        self._set_started(service, False)

    def restart(self, service: str) -> None:
        container = self._container_of(service)
        self.engine.run("restart", "-t", "10", container, timeout=60)
        self._set_started(service, True)

    def _set_started(self, service: str, started: bool) -> None:
        with self.state.locked():
            instances = self.state.load()
            if service in instances:
                instances[service].started = started
                self.state.save(instances)

    def delete(self, service: str) -> None:
        """Remove the instance's container; its releases and data volume are kept."""
        name = self._current_spec(service).name
        self.engine.run("rm", "-f", name, check=False)
        with self.state.locked():
            instances = self.state.load()
            instances.pop(service, None)
            self.state.save(instances)

    def logs(self, service: str, query: LogQuery = LogQuery()) -> int:
        container = self._container_of(service)
        if query.previous:
            # A container keeps one log across its restarts: earlier runs are in it too.
            print(f"berth: note: {self.engine.name} keeps one log across restarts; showing all "
                  "runs", file=sys.stderr)
        return relay(self.engine.argv("logs", *(["-f"] if query.follow else []),
                                      *query.engine_flags(), container))

    def attach(self, service: str) -> int:
        if not self._current_spec(service).is_ioc:
            raise BerthError(Problem(f"'{service}' is not an IOC: it has no IOC shell to attach "
                                     "to; `berth logs` shows its output, `berth exec` runs a "
                                     "command in it", entity=service))
        container = self._container_of(service)
        print("berth: attached to the IOC shell; detach with Ctrl-P Ctrl-Q", file=sys.stderr)
        return self.engine.call("attach", "--detach-keys", "ctrl-p,ctrl-q", "--sig-proxy=false",
                                container)

    def exec(self, service: str, command: Sequence[str]) -> int:
        container = self._container_of(service)
        flags = ["-i", *(["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else [])]
        return self.engine.call("exec", *flags, container, *(list(command) or ["sh"]))

    def up(self) -> list[Release]:
        """Run every IOC of the repository as deployed; those never deployed at their latest
        tag, else the working copy. `--latest` moves deployed ones too, except those pinned by
        a rollback."""
        repo = self.repo
        instances = self.state.load()
        runnable = self.runnable(repo)
        return [self._bring_up(repo, name, instances, runnable)
                for name in start_order(runnable, repo.services)]

    def _bring_up(self, repo: ServicesRepo, name: str, instances: dict[str, InstanceState],
                  runnable: dict[str, Service]) -> Release:
        """Run `name` as deployed (never deployed: its latest release; `--latest` moves it,
        unless pinned), once its dependencies meet their conditions."""
        wait_for(self.engine, repo.services[name], runnable,
                 lambda dep: self._current_spec(dep).name)
        st = instances.get(name)
        current = st.deployment if st else None
        if st is not None and current is not None and (not self.options.latest or st.pinned):
            return self._install(name, current.version, Path(current.release), current.note,
                                 keep_pin=True)
        label, release, note = self._make_release(repo, name, None)
        return self._install(name, label, release, note)

    def _dependencies_first(self, repo: ServicesRepo, name: str) -> None:
        """As `docker compose up NAME`: what `name` depends on (transitively) runs first, each
        as deployed (never deployed: its latest release); `name`'s conditions are then met."""
        runnable = self.runnable(repo)
        if name not in runnable or not dependencies(runnable[name]):
            return
        needed, todo = set(), [name]
        while todo:
            for dep in dependencies(runnable[todo.pop()]):
                if dep in runnable and dep not in needed:
                    needed.add(dep)
                    todo.append(dep)
        instances = self.state.load()
        for dep in start_order(runnable, repo.services):
            if dep in needed:
                self._bring_up(repo, dep, instances, runnable)
        wait_for(self.engine, repo.services[name], runnable,
                 lambda dep: self._current_spec(dep).name)

    def down(self) -> None:
        """Remove every container of this repository (deployments and data volumes are kept)."""
        names = self.engine.container_names(f"berth.repo={self.repo.root}")
        if names:
            self.engine.run("rm", "-f", *names, timeout=120)
        made = self.engine.run("network", "ls", "-q", "--filter",
                               f"label=berth.repo={self.repo.root}", check=False)
        if made.returncode == 0 and made.stdout.split():
            self.engine.run("network", "rm", *made.stdout.split(), check=False)
        with self.state.locked():
            instances = self.state.load()
            for name in names:
                if name in instances:
                    instances[name].started = False
            self.state.save(instances)


# -- helpers ----------------------------------------------------------------------------------


def _digest(spec: ContainerSpec) -> str:
    import hashlib

    return hashlib.sha256("\0".join(spec.run_argv()).encode()).hexdigest()[:16]


def _image_id(text: str) -> str:
    return text.removeprefix("sha256:")


def _container_name(service: Service) -> str:
    if service.layout == "compose" and service.values.get("container_name"):
        return str(service.values["container_name"])
    return service.name


def _status(name: str, container: dict[str, Any] | None,
            state: InstanceState | None, is_ioc: bool = True) -> InstanceStatus:
    row = _container_status(name, container, state)
    if not is_ioc:  # no IOC to ask: its own health check, if it has one, or its state
        row.extra["kind"] = "service"
        checked = str((((container or {}).get("State") or {}).get("Health") or {}).get(
            "Status", ""))
        if row.state == "running" and not checked:
            row.health, row.ready = "not an IOC", True
        elif row.state != "running":
            row.ready = False
        code = int(((container or {}).get("State") or {}).get("ExitCode") or 0)
        if row.state == "stopped" and container is not None and code == 0:
            row.reason = "completed (exit 0)"  # a one-shot job such as an init service
    return row


def _container_status(name: str, container: dict[str, Any] | None,
                      state: InstanceState | None) -> InstanceStatus:
    deployment = state.deployment if state else None
    if container is None:
        if deployment is not None:
            return InstanceStatus(name, "stopped", deployment.version,
                                  reason="no container: `start` or `up` creates it")
        return InstanceStatus(name, "not deployed")
    info = container.get("State") or {}
    labels = (container.get("Config") or {}).get("Labels") or {}
    version = labels.get("berth.version") or (deployment.version if deployment else None)
    restarts = int(container.get("RestartCount") or 0)
    status = str(info.get("Status", "")).lower()
    pid = int(info.get("Pid") or 0) or None
    uptime = _since(info.get("StartedAt")) if status == "running" else None
    if status == "running":
        row = InstanceStatus(name, "running", version, pid, uptime, restarts,
                             extra={"container": container.get("Id", "")[:12]})
        # the image's health check asks the IOC runner (python -m berth.run.ready)
        checked = str((info.get("Health") or {}).get("Status", ""))
        row.health = CONTAINER_HEALTH.get(checked, "running (not probed)")
        row.ready = checked in ("healthy", "")
        return row
    if status == "restarting":
        return InstanceStatus(name, "backoff", version, None, None, restarts,
                              reason=f"exited with {info.get('ExitCode')}; restarting")
    if status == "created":
        return InstanceStatus(name, "starting", version, restarts=restarts)
    code = int(info.get("ExitCode") or 0)
    stopped_on_purpose = state is not None and not state.started
    if info.get("OOMKilled"):
        return InstanceStatus(name, "crashed", version, restarts=restarts, reason="out of memory")
    if code not in (0, 137, 143) and not stopped_on_purpose:
        return InstanceStatus(name, "crashed", version, restarts=restarts,
                              reason=f"exited with {code}: {info.get('Error') or 'see logs'}")
    return InstanceStatus(name, "stopped", version, restarts=restarts)


def _since(stamp: Any) -> float | None:
    if not stamp or str(stamp).startswith("0001-"):
        return None
    text = str(stamp)
    # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
    head, _, rest = text.partition(".")
    zone = "+00:00"
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())[:6]
        tail = rest[len("".join(ch for ch in rest if ch.isdigit())):]
        zone = "+00:00" if tail in ("Z", "") else tail
        text = f"{head}.{digits}{zone}"
    else:
        text = head.replace("Z", "+00:00")
    try:
        started = datetime.fromisoformat(text)
    except ValueError:
        return None
    return max(0.0, time.time() - started.timestamp())


def _wrap_argv(argv: list[str]) -> list[str]:
    """`docker run …` one flag per line, shell-quoted, for reading."""
    lines: list[str] = []
    current = shlex.join(argv[:3])
    i = 3
    while i < len(argv):
        item = argv[i]
        if item.startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-") \
                and item not in ("-d", "-t", "-i"):
            lines.append(current + " \\")
            current = "  " + shlex.join([item, argv[i + 1]])
            i += 2
        else:
            lines.append(current + " \\")
            current = "  " + shlex.quote(item)
            i += 1
    lines.append(current)
    return lines
