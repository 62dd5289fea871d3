"""What the dashboard knows of the instances: the backend's rows and each instance's files.

Everything goes through the Backend interface, as the CLI's verbs do; only the files of an
instance (its generated st.cmd, screens) come from where the backend keeps them: the local
backend's runtime folder, else the services repository's config folder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.deploy import Backend, InstanceStatus, Release, VerbOptions, get_backend
from berth.deploy.services import Service, ServicesRepo
from berth.errors import BerthError, Problem

SCREEN_SUFFIXES = (".bob", ".adl", ".edl", ".opi")
VERBS = ("start", "stop", "restart", "deploy", "rollback")


@dataclass
class Fleet:
    """One backend (and its repository) as the dashboard sees it."""

    backend_name: str
    repo: Path | None
    target: str | None = None
    all_repos: bool = False
    backend: Backend | None = None  # given by tests and benches; else made from the names
    _repo_cache: ServicesRepo | None = field(default=None, repr=False)
    latest: dict[str, InstanceStatus] = field(default_factory=dict, repr=False)

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
        """The services repository, when there is one to read (re-read at most once a call)."""
        if self.repo is None or self.backend_name == "argocd":
            return None
        try:
            self._repo_cache = ServicesRepo.load(self.repo)
        except BerthError:
            return self._repo_cache
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
        """Where the instance's generated files are (local backend only)."""
        if self.backend_name != "local":
            return None
        from berth.deploy.state import StateDir

        folder = StateDir(self.state_dir()).instance_dir(name) / "runtime"
        return folder if folder.is_dir() else None

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
        """The release folder the instance runs from, as the last `ps` said (local)."""
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


def _preflight(release: Path, name: str) -> list[Problem]:
    """`berth check` of one instance, as deploys from the CLI run it."""
    from berth.check import check_repo

    return check_repo(release, [name]).problems


def row_json(row: InstanceStatus) -> dict[str, Any]:
    """A row as the pages and /metrics use it (the same fields as `ps --json`)."""
    data = row.to_json()
    data["target"] = row.extra.get("target") or row.extra.get("repo") or ""
    return data


def log(message: str) -> None:
    print(f"berth serve: {message}", file=sys.stderr, flush=True)
