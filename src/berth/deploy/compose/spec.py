"""What one container runs, derived from a service of either repository layout.

A `ContainerSpec` is engine-neutral; it renders to the `docker run` argv berth executes and to a
compose-file service (for `template`). Helm-layout services are translated the way the
ioc-instance chart runs them (host networking, config folder at /epics/ioc/config, a persistent
data volume, tty+stdin, restart unless stopped); compose-layout services are read as written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth import paths
from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem
from berth.fsutil import read_text

CONFIG_TARGET = paths.CONFIG_DIR
DATA_TARGET = "/autosave"
LABEL_PREFIX = "berth."


@dataclass(frozen=True)
class Mount:
    source: str  # a host path (bind) or a volume name
    target: str
    read_only: bool = False
    kind: str = "bind"  # bind | volume

    def flag(self) -> str:
        text = f"{self.source}:{self.target}"
        return f"{text}:ro" if self.read_only else text


@dataclass
class ContainerSpec:
    name: str
    image: str
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    network: str = "host"  # host | bridge | none | a network name
    ports: list[str] = field(default_factory=list)
    restart: str = "unless-stopped"
    tty: bool = True
    stdin: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    extra: list[str] = field(default_factory=list)  # further `run` flags (user, workdir, …)
    aliases: list[str] = field(default_factory=list)  # names other services reach it by
    more_networks: list[str] = field(default_factory=list)  # joined after `run`
    is_ioc: bool = True

    def run_argv(self, engine: str = "docker") -> list[str]:
        """The full `<engine> run` command line that starts this container, detached."""
        argv = [engine, "run", "-d", "--name", self.name, "--pull", "never"]
        if self.network:
            argv += ["--network", self.network]
        for alias in self.aliases:
            argv += ["--network-alias", alias]
        if self.restart and self.restart != "no":
            argv += ["--restart", self.restart]
        if self.tty:
            argv.append("-t")
        if self.stdin:
            argv.append("-i")
        for key, value in sorted(self.labels.items()):
            argv += ["-l", f"{key}={value}"]
        for key, value in self.environment.items():
            argv += ["-e", f"{key}={value}"]
        for mount in self.mounts:
            argv += ["-v", mount.flag()]
        for port in self.ports:
            argv += ["-p", port]
        argv += self.extra
        if self.entrypoint is not None:
            argv += ["--entrypoint", self.entrypoint[0] if self.entrypoint else ""]
        argv.append(self.image)
        if self.entrypoint and len(self.entrypoint) > 1:
            argv += self.entrypoint[1:]
        if self.command:
            argv += self.command
        return argv

    def compose_service(self) -> dict[str, Any]:
        """This container as a compose-file service (what `template` shows)."""
        service: dict[str, Any] = {"container_name": self.name, "image": self.image}
        if self.network in ("host", "none", "bridge"):
            service["network_mode"] = self.network
        elif self.network:
            service["networks"] = [self.network, *self.more_networks]
        service["restart"] = self.restart
        service["tty"] = self.tty
        service["stdin_open"] = self.stdin
        service["labels"] = dict(sorted(self.labels.items()))
        if self.environment:
            service["environment"] = dict(self.environment)
        volumes = []
        for mount in self.mounts:
            entry: dict[str, Any] = {"type": mount.kind, "source": mount.source,
                                     "target": mount.target}
            if mount.read_only:
                entry["read_only"] = True
            volumes.append(entry)
        if volumes:
            service["volumes"] = volumes
        if self.ports:
            service["ports"] = list(self.ports)
        if self.entrypoint is not None:
            service["entrypoint"] = list(self.entrypoint)
        if self.command:
            service["command"] = list(self.command)
        return service

    @property
    def named_volumes(self) -> list[str]:
        return [m.source for m in self.mounts if m.kind == "volume"]


def volume_name(service: str) -> str:
    return f"berth-{service}-data"


def berth_labels(service: str, version: str, repo_key: str) -> dict[str, str]:
    return {f"{LABEL_PREFIX}service": service, f"{LABEL_PREFIX}version": version,
            f"{LABEL_PREFIX}repo": repo_key}


# --- Helm layout ---------------------------------------------------------------------------


def spec_from_helm(service: Service, version: str, repo_key: str) -> ContainerSpec:
    """The container the ioc-instance chart would run for this service, on one host."""
    values = service.instance_values
    where = Location(service.values_file)
    image = values.get("image")
    if not image or not isinstance(image, str):
        raise BerthError(Problem("an IOC instance needs an image", where, service.name, "image"))
    spec = ContainerSpec(name=service.name, image=image)
    spec.environment = dict(service.environment)
    prefix = values.get("prefix")
    spec.environment.setdefault("IOC_PREFIX", str(prefix) if prefix else service.name.upper())
    # the same names the local backend gives the data folder
    spec.environment.setdefault("AUTOSAVE_DIR", DATA_TARGET)
    spec.environment.setdefault("BERTH_DATA_DIR", DATA_TARGET)
    if service.config_dir is not None:
        spec.mounts.append(Mount(str(service.config_dir), CONFIG_TARGET, read_only=True))
    spec.mounts.append(Mount(volume_name(service.name), DATA_TARGET, kind="volume"))
    data = values.get("dataVolume") or {}
    if isinstance(data, dict) and data.get("hostPath"):
        host_path = str(data["hostPath"])
        spec.mounts.append(Mount(host_path, host_path))
    if values.get("hostNetwork", True) is False:
        spec.network = "bridge"
        ca = int(values.get("caServerPort", 5064))
        pva = int(values.get("pvaServerPort", 5075))
        spec.ports = [f"{ca}:{ca}/tcp", f"{ca}:{ca}/udp", f"{pva}:{pva}/tcp"]
    global_values = values.get("global") or {}
    labels = {"ioc": "true", "app": service.name}
    for key in ("location", "domain"):
        value = values.get(key) or global_values.get(key)
        if value:
            labels[key] = str(value)
    labels.update({str(k): str(v) for k, v in (values.get("labels") or {}).items()})
    labels.update(berth_labels(service.name, version, repo_key))
    spec.labels = labels
    command, args = values.get("command"), values.get("args")
    if command:
        spec.entrypoint = _as_list(command, service, "command")
    if args:
        spec.command = _as_list(args, service, "args")
    return spec


def _as_list(value: Any, service: Service, name: str) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list):
        return [str(v) for v in value]
    raise BerthError(Problem(f"expected a list of strings, found {type(value).__name__}",
                             Location(service.values_file), service.name, name))


# --- compose layout ------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR`, `$$`; unset = ''."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") if match.group("braced") is not None else match.group(
            "bare")
        for sep in (":-", "-", ":?", "?"):
            if sep in expr:
                name, default = expr.split(sep, 1)
                value = env.get(name)
                if sep.startswith(":") and not value or value is None:
                    return default if "-" in sep else ""
                return value
        return env.get(expr, "")

    return _VARIABLE.sub(replace, text)


def compose_env(root: Path) -> dict[str, str]:
    """Variables for interpolation: berth's own (`berth_variables`), the repository's `.env`
    file over them, the process's over both."""
    values: dict[str, str] = berth_variables(root)
    dotenv = root / ".env"
    if dotenv.is_file():
        for line in read_text(dotenv, errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                value = value.strip()
                quoted = value[:1] == "'" and value[-1:] == "'"
                value = value.strip("'\"")
                # like compose: a value may use the variables set before it (not in '…')
                name = key.strip().removeprefix("export ").strip()
                values[name] = value if quoted else interpolate(value, {**values, **os.environ})
    values.update(os.environ)
    return values


def berth_variables(root: Path) -> dict[str, str]:
    """What berth offers a compose file besides the environment, for a service that drives the
    engine itself (`berth new service dashboard`): BERTH_REPO_ROOT, the repository's path (mount
    it at the same path inside, and containers' paths and labels mean the same there), and
    BERTH_ENGINE_GID, the group of the engine's socket (`group_add`, so a non-root user inside
    may use it)."""
    found = {"BERTH_REPO_ROOT": str(root)}
    host = os.environ.get("DOCKER_HOST", "")
    socket = host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"
    with contextlib.suppress(OSError):
        found["BERTH_ENGINE_GID"] = str(os.stat(socket).st_gid)
    return found


def compose_profiles(service: Service) -> list[str]:
    return [str(p) for p in service.values.get("profiles") or []]


def is_active(service: Service, profiles: list[str]) -> bool:
    """Compose's rule: a service without profiles is always on; else one of them must be chosen."""
    own = compose_profiles(service)
    return not own or any(p in own for p in profiles) or "*" in profiles


def spec_from_compose(service: Service, version: str | None, repo_key: str,
                      env: dict[str, str], rebase: tuple[Path, Path] | None = None,
                      networks: dict[str, str] | None = None) -> ContainerSpec:
    """The container a compose service describes (after `extends`), with paths made absolute.

    `rebase` = (release root, repository root): the service is read from a release snapshot,
    but its bind-mounted volumes (screens out, autosave) belong to the real repository.
    `networks`: the engine's name of each compose network (compose prefixes the project)."""
    values = service.values
    where = Location(service.values_file)
    base = Path(service.values_file).parent if service.values_file else service.path

    def text(value: Any) -> str:
        return interpolate(str(value), env)

    image = values.get("image")
    if not image:
        raise BerthError(Problem("the service has no image (berth does not build services)",
                                 where, service.name, "image"))
    name = text(values.get("container_name") or service.name)
    spec = ContainerSpec(name=name, image=text(image), is_ioc=service.is_ioc)
    spec.environment = {k: text(v) for k, v in service.environment.items()}
    for key in _passed_through(values.get("environment")):
        # a name without a value takes the shell's (or .env's) value, else is not set at all
        if key in env:
            spec.environment[key] = env[key]
        else:
            spec.environment.pop(key, None)
    labels = _label_map(values.get("labels"))
    version = version or labels.get("version") or "working copy"
    spec.labels = {k: text(v) for k, v in labels.items()}
    spec.labels.update(berth_labels(service.name, version, repo_key))
    if values.get("network_mode"):
        spec.network = text(values["network_mode"])
    else:
        # compose puts a service without networks on the project's `default` network
        joined = [str(n) for n in values.get("networks") or ["default"]]
        named = [(networks or {}).get(n, n) for n in joined]
        spec.network, spec.more_networks = named[0], named[1:]
        spec.aliases = [service.name]
    restart = values.get("restart")
    spec.restart = "no" if restart in (None, False, "no") else text(restart)
    spec.tty = bool(values.get("tty", False))
    spec.stdin = bool(values.get("stdin_open", False))
    spec.ports = [text(p) if not isinstance(p, dict) else _long_port(p) for p in
                  values.get("ports") or []]
    for volume in values.get("volumes") or []:
        spec.mounts.append(_volume(volume, base, text, service, rebase))
    sources = values.get("_config_sources") or {}
    for config in values.get("configs") or []:
        source_name = config.get("source") if isinstance(config, dict) else str(config)
        target = config.get("target", f"/{source_name}") if isinstance(config, dict) else (
            f"/{source_name}")
        if source_name not in sources:
            raise BerthError(Problem(f"config '{source_name}' is not defined under top-level "
                                     "'configs:' with a 'file:'", where, service.name, "configs"))
        target = "/" + str(target).lstrip("/")
        spec.mounts.append(Mount(sources[source_name], target, read_only=True))
    if values.get("entrypoint") is not None:
        spec.entrypoint = _command(values["entrypoint"], text)
    if values.get("command") is not None:
        spec.command = _command(values["command"], text)
    for key, flag in (("user", "--user"), ("working_dir", "--workdir"), ("hostname",
                                                                          "--hostname")):
        if values.get(key) and text(values[key]):  # `user: ${UNSET}` means none
            spec.extra += [flag, text(values[key])]
    for option in values.get("security_opt") or []:
        spec.extra += ["--security-opt", text(option)]
    for group in values.get("group_add") or []:
        spec.extra += ["--group-add", text(group)]
    spec.extra += _healthcheck(values.get("healthcheck"), text, service)
    return spec


HEALTH_TIMES = (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                ("start_period", "--health-start-period"))


def _healthcheck(raw: Any, text: Any, service: Service) -> list[str]:
    """`docker run` flags for a compose `healthcheck:` (what service_healthy waits for)."""
    if not raw:
        return []
    if not isinstance(raw, dict):
        raise BerthError(Problem("expected a mapping (test, interval, timeout, retries, …)",
                                 Location(service.values_file), service.name, "healthcheck"))
    test = raw.get("test")
    if raw.get("disable") or test == ["NONE"]:
        return ["--no-healthcheck"]
    flags: list[str] = []
    if isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
        words = [text(w) for w in test[1:]]
        # the engine runs --health-cmd through a shell: CMD's words are quoted for it
        flags += ["--health-cmd", " ".join(words) if test[0] == "CMD-SHELL" else shlex.join(
            words)]
    elif isinstance(test, str):
        flags += ["--health-cmd", text(test)]
    elif test is not None:
        raise BerthError(Problem("'test' must be a string or a list starting CMD, CMD-SHELL or "
                                 "NONE", Location(service.values_file), service.name,
                                 "healthcheck"))
    for key, flag in HEALTH_TIMES:
        if raw.get(key) is not None:
            flags += [flag, text(raw[key])]
    if raw.get("retries") is not None:
        flags += ["--health-retries", str(raw["retries"])]
    return flags


def network_name(project: str, network: str) -> str:
    """The engine's name of a project network, as compose names it."""
    return f"{project}_{network}"


def project_name(root: Path, env: dict[str, str], declared: Any = None) -> str:
    """Compose's project name: COMPOSE_PROJECT_NAME, else the compose file's top-level `name:`
    (`declared`, interpolated), else the folder's name; normalised as compose does."""
    raw = env.get("COMPOSE_PROJECT_NAME") or (
        interpolate(str(declared), env) if declared else "") or root.name
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()) or "default"


def _passed_through(raw: Any) -> list[str]:
    """Names `environment:` lists without a value (`- NAME`, or `NAME:` with nothing)."""
    if isinstance(raw, list):
        return [str(item) for item in raw if "=" not in str(item)]
    if isinstance(raw, dict):
        return [str(k) for k, v in raw.items() if v is None]
    return []


def _label_map(raw: Any) -> dict[str, str]:
    if isinstance(raw, list):
        pairs = (str(i).partition("=") for i in raw)
        return {key: value for key, _, value in pairs}
    if isinstance(raw, dict):
        return {str(k): _yaml_scalar(v) for k, v in raw.items()}
    return {}


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _long_port(port: dict[str, Any]) -> str:
    text = f"{port.get('published', port['target'])}:{port['target']}"
    return f"{text}/{port['protocol']}" if port.get("protocol") else text


def _command(value: Any, text: Any) -> list[str]:
    if isinstance(value, list):
        return [text(v) for v in value]
    return shlex.split(text(value))


def _volume(volume: Any, base: Path, text: Any, service: Service,
            rebase: tuple[Path, Path] | None) -> Mount:
    if isinstance(volume, dict):
        source, target = text(volume.get("source", "")), text(volume.get("target", ""))
        read_only = bool(volume.get("read_only", False))
        kind = str(volume.get("type", "volume"))
    else:
        parts = text(volume).split(":")
        if len(parts) == 1:
            raise BerthError(Problem(f"anonymous volume '{volume}' is not supported: name it",
                                     Location(service.values_file), service.name, "volumes"))
        source, target = parts[0], parts[1]
        modes = parts[2].split(",") if len(parts) > 2 else []
        read_only = "ro" in modes
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    if kind == "bind":
        path = os.path.normpath(base / os.path.expanduser(source))
        if rebase is not None:
            path = os.path.normpath(rebase[1] / os.path.relpath(path, rebase[0]))
        source = path
    return Mount(source, target, read_only, kind)
