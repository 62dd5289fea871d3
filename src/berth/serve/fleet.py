"""What the dashboard knows of the instances: the backend's rows and each instance's files.

Everything goes through the Backend interface, as the CLI's verbs do; only the files of an
instance (its generated st.cmd, screens) come from where the backend keeps them: the local
backend's runtime folder, else the repository's outputs generated at the deployed version
(serve/outputs.py). A Fleet is one or several repositories (`-r A -r B`), each a RepoFleet; an
instance is known by its key: its name, or `name@repo` where two repositories could both have it
(several repositories on a cluster backend; local names are unique per state folder).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.deploy import Backend, InstanceStatus, Release, VerbOptions, get_backend
from berth.deploy.services import Service, ServicesRepo
from berth.errors import BerthError, Problem
from berth.serve.outputs import Outputs, cache_root, generate

SCREEN_SUFFIXES = (".bob", ".adl", ".edl", ".opi")
VERBS = ("start", "stop", "restart", "deploy", "rollback")
SOURCE_REFRESH = 30.0  # seconds between fetches of an ArgoCD deployment's services repository


@dataclass
class RepoFleet:
    """One backend and one repository as the dashboard sees it."""

    backend_name: str
    repo: Path | None
    target: str | None = None
    all_repos: bool = False
    backend: Backend | None = None  # given by tests and benches; else made from the names
    _repo_cache: ServicesRepo | None = field(default=None, repr=False)
    latest: dict[str, InstanceStatus] = field(default_factory=dict, repr=False)
    label: str = ""  # how the pages name the repository
    _fetched: float = field(default=-1e9, repr=False)  # when the ArgoCD source was fetched

    def __post_init__(self) -> None:
        if self.backend is None:
            options = VerbOptions(all_repos=self.all_repos, preflight=_preflight)
            self.backend = get_backend(self.backend_name, self.repo, self.target, options)

    @property
    def chosen(self) -> Backend:
        assert self.backend is not None
        return self.backend

    # -- reading ---------------------------------------------------------------------------
    def rows(self) -> list[InstanceStatus]:
        rows = self.chosen.ps()
        self.latest = {row.name: row for row in rows}
        return rows

    def history(self, name: str) -> list[Release]:
        return self.chosen.history(name)

    def services(self) -> ServicesRepo | None:
        """The services repository, when there is one to read (re-read at most once a call).
        On ArgoCD, a local clone of the services repository its deployment repository names."""
        if self.repo is None:
            return None
        if self.backend_name == "argocd":
            return self._argocd_source()
        try:
            self._repo_cache = ServicesRepo.load(self.repo)
        except BerthError:
            return self._repo_cache
        return self._repo_cache

    def _argocd_source(self) -> ServicesRepo | None:
        """The services repository of `source.repoURL` in the deployment repository, cloned
        into the serve cache and fetched at most every SOURCE_REFRESH seconds."""
        import time

        from berth.deploy.kube.argocd_repo import DeploymentRepo
        from berth.tools.git import clone_of

        if self._repo_cache is not None and time.monotonic() < self._fetched + SOURCE_REFRESH:
            return self._repo_cache
        assert self.repo is not None
        try:
            url = (DeploymentRepo(self.repo).data.get("source") or {}).get("repoURL")
            if not url:
                return None
            clone = cache_root(self.state_dir(), self.repo) / "source"
            clone_of(str(url), clone)
            self._repo_cache = ServicesRepo.load(clone)
        except BerthError as err:
            print(f"berth serve: {err}", file=sys.stderr)
        self._fetched = time.monotonic()
        return self._repo_cache

    def service(self, name: str) -> Service | None:
        repo = self.services()
        return repo.services.get(name) if repo is not None else None

    def state_dir(self) -> Path:
        """The state folder: the local backend's own, else berth's default one."""
        from berth.deploy.state import default_state_dir

        if self.backend_name == "local" and self.target:
            return Path(self.target).expanduser().resolve()
        return default_state_dir()

    def runtime_dir(self, name: str) -> Path | None:
        """Where the instance's generated files are: the local backend's runtime folder, else
        the outputs generated at the deployed version."""
        if self.backend_name != "local":
            outputs = self.outputs(name)
            return outputs.runtime if outputs is not None else None
        from berth.deploy.state import StateDir

        folder = StateDir(self.state_dir()).instance_dir(name) / "runtime"
        return folder if folder.is_dir() else None

    def outputs(self, name: str) -> Outputs | None:
        """The generated outputs of a deployed instance of a cluster/compose backend."""
        row = self.latest.get(name)
        repo = self.services()
        if row is None or repo is None or self.repo is None or name not in repo.iocs or \
                row.state in ("not deployed", "stray"):
            return None
        return generate(repo, name, row.version, cache_root(self.state_dir(), self.repo))

    def config_dir(self, name: str) -> Path | None:
        """The deployed release's config folder when known, else the repository's."""
        release = self._release_of(name)
        if release is not None:
            folder = release / "services" / name / "config"
            if folder.is_dir():
                return folder
        service = self.service(name)
        return service.config_dir if service is not None else None

    def values_file(self, name: str) -> Path | None:
        release = self._release_of(name)
        if release is not None and (release / "services" / name / "values.yaml").is_file():
            return release / "services" / name / "values.yaml"
        service = self.service(name)
        return service.values_file if service is not None else None

    def _release_of(self, name: str) -> Path | None:
        """The release folder the instance runs from, as the last `ps` said (local), or whose
        outputs were generated (other backends)."""
        if self.backend_name != "local":
            outputs = self.outputs(name)
            return outputs.release if outputs is not None else None
        row = self.latest.get(name)
        release = row.extra.get("release") if row is not None else None
        return Path(release) if release else None

    def screen_dirs(self, name: str) -> list[Path]:
        """Folders whose screens are served for the instance, first match wins: generated
        screens (runtime/opi), then hand-written ones of the config folder."""
        found = []
        runtime = self.runtime_dir(name)
        if runtime is not None and (runtime / "opi").is_dir():
            found.append(runtime / "opi")
        config = self.config_dir(name)
        if config is not None:
            found.append(config)
        return found

    def screens(self, name: str) -> list[str]:
        names: set[str] = set()
        for folder in self.screen_dirs(name):
            names.update(p.name for p in folder.iterdir()
                         if p.is_file() and p.suffix in SCREEN_SUFFIXES)
        return sorted(names, key=lambda n: (n.split(".")[0] != "index", n))

    def screen_file(self, name: str, file: str) -> Path | None:
        """The screen `file` of instance `name`; None for anything else (no paths)."""
        if "/" in file or "\\" in file or file.startswith(".") or \
                not file.endswith(SCREEN_SUFFIXES):
            return None
        for folder in self.screen_dirs(name):
            candidate = folder / file
            if candidate.is_file():
                return candidate
        return None

    def generated(self, name: str) -> dict[str, str]:
        """The instance's configuration texts for its page: values, ioc.yaml, st.cmd, ioc.subst."""
        texts: dict[str, str] = {}
        values = self.values_file(name)
        if values is not None and values.is_file():
            texts["values.yaml"] = values.read_text(errors="replace")
        config = self.config_dir(name)
        runtime = self.runtime_dir(name)
        for file, folders in (("ioc.yaml", [config]), ("st.cmd", [runtime, config]),
                              ("ioc.subst", [runtime, config])):
            for folder in folders:
                if folder is not None and (folder / file).is_file():
                    texts[file] = (folder / file).read_text(errors="replace")
                    break
        return texts

    # -- acting ----------------------------------------------------------------------------
    def act(self, verb: str, name: str, version: str | None = None) -> str:
        """Run one operator verb; returns what happened, in words. BerthError when refused."""
        backend = self.chosen
        if verb == "start":
            backend.start(name)
        elif verb == "stop":
            backend.stop(name)
        elif verb == "restart":
            backend.restart(name)
        elif verb == "deploy":
            return f"deployed {name} {backend.deploy(name, version or None).version}"
        elif verb == "rollback":
            return f"rolled {name} back to {backend.rollback(name, version or None).version}"
        else:
            raise BerthError(Problem(f"unknown action '{verb}': expected {', '.join(VERBS)}"))
        return f"{verb} {name}: done"

    def versions(self, name: str) -> list[str]:
        repo = self.services()
        if repo is None or name not in repo.services or not repo.git.is_repo:
            return []
        try:
            return repo.versions(name)
        except BerthError:
            return []


@dataclass
class Fleet:
    """Every instance of the given repositories, by key, as the pages and verbs see them."""

    backend_name: str
    repos: list[Path] | Path | None
    target: str | None = None
    all_repos: bool = False
    backend: Backend | None = None  # given by tests and benches (one repository)
    members: list[RepoFleet] = field(init=False)
    latest: dict[str, InstanceStatus] = field(default_factory=dict, repr=False)
    _where: dict[str, tuple[RepoFleet, str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        given = self.repos if isinstance(self.repos, list) else [self.repos]
        labels = _labels([p for p in given if p is not None])
        self.members = [RepoFleet(self.backend_name, repo, self.target, self.all_repos,
                                  self.backend, label=labels.get(repo, "") if repo else "")
                        for repo in given]
        if self.backend is None:
            self.backend = self.members[0].backend

    @property
    def repo(self) -> Path | None:
        return self.members[0].repo

    @property
    def several(self) -> bool:
        return len(self.members) > 1

    def state_dir(self) -> Path:
        return self.members[0].state_dir()

    def key_of(self, member: RepoFleet, name: str, taken: dict[str, Any]) -> str:
        """`name`, or `name@repo` for a cluster backend of several repositories (the same
        release name may exist in two), or when another repository already has it."""
        keyed = f"{name}@{member.label}"
        if self.several and (self.backend_name != "local" or name in taken):
            return keyed
        return name

    # -- reading ---------------------------------------------------------------------------
    def rows(self) -> list[InstanceStatus]:
        """Every repository's rows, each named by its key (extra: service, repo_label)."""
        found: dict[str, InstanceStatus] = {}
        where: dict[str, tuple[RepoFleet, str]] = {}
        for member in self.members:
            for row in member.rows():
                key = self.key_of(member, row.name, found)
                keyed = InstanceStatus(**{**vars(row), "name": key,
                                          "extra": {**row.extra, "service": row.name,
                                                    "repo_label": member.label}})
                found[key], where[key] = keyed, (member, row.name)
        self.latest, self._where = found, where
        return list(found.values())

    def find(self, key: str) -> tuple[RepoFleet, str]:
        """The repository and instance name of a key (an unknown key: the first repository's,
        so its backend names the mistake)."""
        if key not in self._where:
            self.rows()
        return self._where.get(key, (self.members[0], key))

    def where(self, key: str) -> tuple[str, Path | None]:
        """(instance name, repository) of a key, for `berth logs` of it."""
        member, name = self.find(key)
        return name, member.repo

    def history(self, key: str) -> list[Release]:
        member, name = self.find(key)
        return member.history(name)

    def runtime_dir(self, key: str) -> Path | None:
        member, name = self.find(key)
        return member.runtime_dir(name)

    def config_dir(self, key: str) -> Path | None:
        member, name = self.find(key)
        return member.config_dir(name)

    def screens(self, key: str) -> list[str]:
        member, name = self.find(key)
        return member.screens(name)

    def screen_file(self, key: str, file: str) -> Path | None:
        member, name = self.find(key)
        return member.screen_file(name, file)

    def generated(self, key: str) -> dict[str, str]:
        member, name = self.find(key)
        return member.generated(name)

    def versions(self, key: str) -> list[str]:
        member, name = self.find(key)
        return member.versions(name)

    def act(self, verb: str, key: str, version: str | None = None) -> str:
        member, name = self.find(key)
        return member.act(verb, name, version)


def _labels(repos: list[Path]) -> dict[Path, str]:
    """Each repository's folder name; a number added where two folders share one."""
    labels: dict[Path, str] = {}
    for repo in repos:
        base = repo.resolve().name or "repo"
        label, n = base, 1
        while label in labels.values():
            n += 1
            label = f"{base}-{n}"
        labels[repo] = label
    return labels


def _preflight(release: Path, name: str) -> list[Problem]:
    """`berth check` of one instance, as deploys from the CLI run it."""
    from berth.check import check_repo

    return check_repo(release, [name]).problems


def row_json(row: InstanceStatus) -> dict[str, Any]:
    """A row as the pages and /metrics use it (the same fields as `ps --json`)."""
    data = row.to_json()
    data["target"] = row.extra.get("target") or row.extra.get("repo") or ""
    data["repo_label"] = row.extra.get("repo_label") or ""
    return data


def log(message: str) -> None:
    print(f"berth serve: {message}", file=sys.stderr, flush=True)
