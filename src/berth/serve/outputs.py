"""The generated files of an instance that runs where berth cannot read its runtime folder
(compose, k8s): its release at the deployed version, generated into a cache the way `berth check`
generates it, with ioc.subst expanded into ioc.db as `berth run` does. Made once per version."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from berth.deploy import releases
from berth.deploy.services import ServicesRepo
from berth.errors import BerthError


@dataclass(frozen=True)
class Outputs:
    name: str
    release: Path  # the release folder (services/<name>/...) at the deployed version
    runtime: Path  # its generated st.cmd, ioc.subst, ioc.db, opi/


def cache_root(state_dir: Path, repo: Path) -> Path:
    """One cache folder per repository, in the user's state folder (private to the user)."""
    digest = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:12]
    return state_dir / "serve-cache" / f"{repo.name}-{digest}"


def generate(repo: ServicesRepo, name: str, version: str | None, cache: Path) -> Outputs | None:
    """The outputs of `name` at `version` (a tag; else the working copy), made when missing.
    None when the instance cannot be generated here (the problems are `berth check`'s to tell)."""
    try:
        release = _release(repo, name, version, cache / name / "releases")
    except BerthError:
        return None
    work = cache / name / "outputs" / release.name
    runtime = work / "runtime"
    done = work / ".done"
    if not done.is_file():
        if not _generate(release, name, work):
            return None
        done.touch()
    return Outputs(name, release, runtime)


def _release(repo: ServicesRepo, name: str, version: str | None, folder: Path) -> Path:
    if version and releases.own_tags(repo) and version in repo.git.tags:
        return releases.from_tag(repo, name, version, folder)
    _label, release = releases.from_working_copy(repo.root, name, repo.layout, folder)
    return release


def _generate(release: Path, name: str, work: Path) -> bool:
    from berth.check.instance import SchemaCache, prepare
    from berth.epics import substitutions as msi
    from berth.fsutil import atomic_write

    try:
        service = ServicesRepo.load(release).service(name)
    except BerthError:
        return False
    check = prepare(service, work, [], SchemaCache())
    runtime = work / "runtime"
    subst = runtime / "ioc.subst"
    if not (runtime / "st.cmd").is_file() and service.config_dir is not None:
        st_cmd = service.config_dir / "st.cmd"  # a hand-written start-up: it is the script
        if not st_cmd.is_file():
            return False
        atomic_write(runtime / "st.cmd", st_cmd.read_text(errors="replace"))
    if subst.is_file():
        include = check.plan.include if check.plan is not None else []
        try:
            text = msi.expand_substitutions(subst, [runtime, *include], {}, strict=False,
                                            warnings=[])
        except (BerthError, OSError):
            text = ""
        atomic_write(runtime / "ioc.db", text)
    return (runtime / "st.cmd").is_file()
