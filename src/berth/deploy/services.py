"""A beamline's services repository, in either layout (system.md §6–7).

Helm layout: `services/<name>/values.yaml` merged over `services/values.yaml` the Helm way; an
IOC is a service whose values hold an `ioc-instance:` block. Compose layout: `compose.yaml`
`include:`s `services/<name>/compose.yml`, each service `extends` a base in `include/ioc.yml`.

Versions of a service are the git tags at which anything it depends on changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from berth.errors import BerthError, Location, Problem
from berth.tools.git import Git
from berth.yamlio import YDict, YList, describe, load_yaml, location_of

IOC_CHART = "ioc-instance"
Layout = Literal["helm", "compose"]


def helm_merge(base: Any, override: Any) -> Any:
    """Merge values as Helm does: maps merge deeply, anything else (lists too) is replaced,
    and a null in the override deletes the key."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, what: str, *, helm: bool = False) -> Any:
    """A YAML file read with berth's one reader (`yamlio`, so with locations); a missing file
    is named as `what`."""
    if not path.exists():
        raise BerthError(Problem(f"{what} not found", Location(path)))
    return load_yaml(path, helm=helm)


@dataclass
class Service:
    """One service (usually an IOC instance) of a repository."""

    name: str
    path: Path  # the service's folder
    layout: Layout
    values: dict[str, Any] = field(default_factory=dict)  # merged Helm values, or compose service
    chart: str | None = None  # helm: the chart whose block the values hold
    values_file: Path | None = None
    # the document of `values_file` as written, with locations (helm: the service's values;
    # compose: the file whose `services:` defines it)
    source: YDict | None = None


    @property
    def is_ioc(self) -> bool:
        if self.layout == "helm":
            return self.chart == IOC_CHART
        labels = self.values.get("labels") or {}
        if isinstance(labels, list):  # compose allows ["k=v", ...]
            labels = dict(item.split("=", 1) for item in labels if "=" in item)
        return str(labels.get("is_ioc", "")).lower() == "true"

    @property
    def instance_values(self) -> dict[str, Any]:
        """The values the ioc-instance chart receives: its block plus `global`."""
        if self.layout != "helm":
            return {}
        block = dict(self.values.get(IOC_CHART) or {})
        if "global" in self.values:
            block["global"] = self.values["global"]
        return block

    @property
    def image(self) -> str | None:
        source = self.instance_values if self.layout == "helm" else self.values
        image = source.get("image")
        return str(image) if image else None

    @property
    def config_dir(self) -> Path | None:
        """The instance config folder (mounted at /epics/ioc/config), when it exists."""
        if self.layout == "compose":
            for entry in self.values.get("configs") or []:
                if isinstance(entry, dict) and str(entry.get("target", "")).rstrip("/").endswith(
                    "epics/ioc/config"
                ):
                    source = self.values.get("_config_sources", {}).get(entry.get("source"))
                    if source:
                        return Path(source)
        folder = self.path / "config"
        return folder if folder.is_dir() else None

    @property
    def environment(self) -> dict[str, str]:
        """Environment the IOC runs with (IOC_NAME, IOC_PREFIX, …)."""
        if self.layout == "helm":
            env: dict[str, str] = {}
            for item in (self.instance_values.get("global") or {}).get("env") or []:
                env[str(item["name"])] = str(item.get("value", ""))
            for item in self.instance_values.get("env") or []:
                if isinstance(item, dict) and "name" in item:
                    env[str(item["name"])] = str(item.get("value", ""))
            env.setdefault("IOC_NAME", self.name)
            return env
        raw = self.values.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}


@dataclass
class ServicesRepo:
    root: Path
    layout: Layout
    services: dict[str, Service]

    @classmethod
    def load(cls, root: Path) -> ServicesRepo:
        root = Path(root).resolve()
        if not root.is_dir():
            raise BerthError(Problem("services repository not found", Location(root)))
        if (root / "compose.yaml").is_file() or (root / "compose.yml").is_file():
            return cls(root, "compose", _load_compose(root))
        if (root / "services").is_dir():
            return cls(root, "helm", load_helm_services(root))
        raise BerthError(
            Problem(
                "not a services repository: expected services/<name>/values.yaml (Helm layout) "
                "or compose.yaml (compose layout)",
                Location(root),
            )
        )

    @property
    def iocs(self) -> dict[str, Service]:
        return {name: s for name, s in self.services.items() if s.is_ioc}

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.services), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise BerthError(
                Problem(f"unknown service '{name}' in {self.root}{hint}", Location(self.root))
            ) from None

    @cached_property
    def git(self) -> Git:
        return Git(self.root)

    def versions(self, name: str) -> list[str]:
        """Tags at which the service changed, oldest first."""
        service = self.service(name)
        return versions_of(self.git, service.path.relative_to(self.git.top),
                           self._shared_files())

    def _shared_files(self) -> list[str]:
        shared = self.root / "services" / "values.yaml"
        if self.layout == "helm" and shared.exists():
            return [str(shared.relative_to(self.git.top))]
        return []


def read_values(path: Path, what: str = "values file") -> YDict:
    """A values file's top-level mapping ({} when empty); an error if it cannot be read or
    is not a mapping."""
    data = _read_yaml(path, what, helm=True)
    _require_mapping(data, path)
    return data if isinstance(data, YDict) else YDict()


def load_helm_services(
    root: Path, read: Callable[[Path, str], YDict | None] = read_values,
) -> dict[str, Service]:
    """The services of a Helm-layout repository: each `services/<name>/values.yaml` merged over
    `services/values.yaml`. `read(path, what)` reads one values file (default: `read_values`,
    which raises); a reader that records problems instead may return None to skip the file
    (a shared file read as None counts as empty)."""
    services_dir = root / "services"
    shared_file = services_dir / "values.yaml"
    shared: dict[str, Any] = (read(shared_file, "shared values file")
                              if shared_file.exists() else None) or {}
    _check_values_shape(shared, shared_file)
    found: dict[str, Service] = {}
    for folder in sorted(services_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        values_file = folder / "values.yaml"
        if not values_file.exists() and not (folder / "Chart.yaml").exists():
            continue
        own = read(values_file, "values file") if values_file.exists() else YDict()
        if own is None:
            continue
        _check_values_shape(own, values_file)
        chart = IOC_CHART if IOC_CHART in own else _chart_key(own)
        found[folder.name] = Service(folder.name, folder, "helm", helm_merge(shared, own), chart,
                                     values_file, own if values_file.exists() else None)
    return found


def _kind_problem(doc: Any, key: str, what: str, file: Path, kind: type) -> None:
    """A located error when `doc[key]` is set to something other than a `kind`."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is not None and not isinstance(value, kind):
        noun = "a mapping" if kind is dict else "a list"
        raise BerthError(Problem(f"{what} must be {noun}, got {describe(value)}",
                                 location_of(doc, key) if isinstance(doc, YDict)
                                 else Location(file), field=key))


def _check_values_shape(values: Any, file: Path) -> None:
    """The parts of a values file berth reads must have the shape Helm's chart expects."""
    for key in (IOC_CHART, "global"):
        _kind_problem(values, key, f"'{key}'", file, dict)
    for block in (values.get(IOC_CHART), values.get("global")):
        _kind_problem(block, "env", "'env'", file, list)
        for item in (block or {}).get("env") or [] if isinstance(block, dict) else []:
            if not isinstance(item, dict) or "name" not in item:
                raise BerthError(Problem(
                    f"each item of 'env' must be a mapping with 'name' and 'value', got "
                    f"{describe(item)}", location_of(block["env"], block["env"].index(item))
                    if isinstance(block["env"], YList) else Location(file), field="env"))


def _check_compose_shape(doc: Any, file: Path) -> None:
    _kind_problem(doc, "services", "'services'", file, dict)
    _kind_problem(doc, "configs", "'configs'", file, dict)
    _kind_problem(doc, "include", "'include'", file, list)
    for name, spec in (doc.get("services") or {}).items():
        if not isinstance(spec, dict):
            raise BerthError(Problem(f"service '{name}' must be a mapping, got "
                                     f"{describe(spec)}", location_of(doc["services"], name)))
        for key, kind in (("labels", (dict, list)), ("environment", (dict, list)),
                          ("configs", list), ("extends", (str, dict))):
            value = spec.get(key)
            if value is not None and not isinstance(value, kind):
                raise BerthError(Problem(f"'{key}' of service '{name}' has the wrong kind: "
                                         f"{describe(value)}", location_of(spec, key),
                                         field=key))


def _chart_key(values: dict[str, Any]) -> str | None:
    keys = [k for k, v in values.items() if isinstance(v, dict) and k != "global"]
    return keys[0] if keys else None


def _require_mapping(data: Any, path: Path) -> None:
    if data is not None and not isinstance(data, dict):
        raise BerthError(
            Problem(f"expected a mapping at the top level, found {type(data).__name__}",
                    Location(path, 1, 1))
        )


def _load_compose(root: Path) -> dict[str, Service]:
    top = root / "compose.yaml"
    if not top.exists():
        top = root / "compose.yml"
    found: dict[str, Service] = {}
    _collect_compose(top, found, seen=set())
    return found


def _include_paths(doc: dict[str, Any], base: Path) -> list[Path]:
    paths: list[Path] = []
    for entry in doc.get("include") or []:
        targets = entry.get("path") if isinstance(entry, dict) else entry
        for target in targets if isinstance(targets, list) else [targets]:
            paths.append((base / str(target)).resolve())
    return paths


def _collect_compose(file: Path, found: dict[str, Service], seen: set[Path]) -> None:
    file = file.resolve()
    if file in seen:
        return
    seen.add(file)
    doc = _read_yaml(file, "compose file") or YDict()
    _require_mapping(doc, file)
    _check_compose_shape(doc, file)
    for included in _include_paths(doc, file.parent):
        _collect_compose(included, found, seen)
    configs = {
        name: str((file.parent / spec["file"]).resolve())
        for name, spec in (doc.get("configs") or {}).items()
        if isinstance(spec, dict) and "file" in spec
    }
    for name, spec in (doc.get("services") or {}).items():
        if not isinstance(spec, dict) or name in found:
            continue
        resolved = _resolve_extends(spec, file, depth=0)
        resolved["_config_sources"] = configs
        found[name] = Service(name, file.parent, "compose", resolved, None, file,
                              doc if isinstance(doc, YDict) else None)


def _resolve_extends(spec: dict[str, Any], file: Path, depth: int) -> dict[str, Any]:
    extends = spec.get("extends")
    if not extends:
        return dict(spec)
    if depth > 10:
        raise BerthError(Problem("'extends' nests too deeply (a cycle?)", Location(file)))
    if isinstance(extends, str):
        extends = {"service": extends}
    base_file = (file.parent / extends["file"]).resolve() if "file" in extends else file
    base_doc = _read_yaml(base_file, "compose file") or {}
    _require_mapping(base_doc, base_file)
    _check_compose_shape(base_doc, base_file)
    base_spec = (base_doc.get("services") or {}).get(extends.get("service"))
    if not isinstance(base_spec, dict):
        raise BerthError(
            Problem(f"'extends' names service '{extends.get('service')}' which {base_file} "
                    "does not define", Location(file))
        )
    base = _resolve_extends(base_spec, base_file, depth + 1)
    own = {k: v for k, v in spec.items() if k != "extends"}
    return _compose_merge(base, own)


def _compose_merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def versions_of(git: Git, service_path: Path, shared: list[str]) -> list[str]:
    """The tags at which the files under `service_path` or `shared` (followed through
    symbolic links) changed, oldest first; a tag where the service does not exist counts as
    a gap."""
    versions: list[str] = []
    previous: tuple[tuple[str, str], ...] | None = None
    for tag in git.tags:
        own = _fingerprint(git, tag, [str(service_path)])
        if not own:  # the service does not exist at this tag
            previous = None
            continue
        current = own + _fingerprint(git, tag, shared)
        if current != previous:
            versions.append(tag)
        previous = current
    return versions


def _fingerprint(git: Git, tag: str, roots: list[str]) -> tuple[tuple[str, str], ...]:
    tree = git.ls_tree(tag)
    collected: dict[str, str] = {}
    pending = list(roots)
    visited: set[str] = set()
    while pending:
        root = pending.pop().strip("/")
        if root in visited:
            continue
        visited.add(root)
        for path, (mode, blob) in tree.items():
            if path != root and not path.startswith(root + "/"):
                continue
            collected[path] = blob
            if mode == "120000":  # a symlink: its target counts too
                target = git.blob(blob).strip()
                resolved = _normalise(str(Path(path).parent / target))
                if resolved is not None:
                    pending.append(resolved)
    return tuple(sorted(collected.items()))


def _normalise(path: str) -> str | None:
    """Collapse `..` in a repo-relative path; None when it leaves the repository."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)
