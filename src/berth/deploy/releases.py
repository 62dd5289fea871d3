"""Immutable release folders: a service's files at one version, made read-only.

A release is a services-repository root holding what one instance needs: for the Helm layout
`services/values.yaml` and `services/<name>/`; for the compose layout everything except the other
services' folders. From a tag it comes from `git archive`; from a working copy it is a copy
labelled `local-<content hash>`, so deploying unchanged files again is recognised.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

from berth.deploy.services import Layout, Service, ServicesRepo
from berth.errors import BerthError, Location, Problem
from berth.fsutil import links_out

LOCAL_PREFIX = "local-"
SERVICES = PurePosixPath("services")


def _wanted(rel: PurePosixPath, name: str, layout: Layout) -> bool:
    """Whether a repo-relative path belongs in the release of service `name`."""
    parts = rel.parts
    if not parts or parts[0] == ".git":
        return False
    if layout == "helm":
        return rel == PurePosixPath("services/values.yaml") or parts[:2] == ("services", name)
    return True  # compose: compose.yaml includes every service's file, so keep them all


def folder_name(version: str) -> str:
    return version.replace("/", "%2F")


def make_read_only(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for item in filenames:
            path = Path(dirpath) / item
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
        Path(dirpath).chmod(0o555)


def remove_tree(root: Path) -> None:
    """Delete a (possibly read-only) tree."""
    if not root.exists():
        return
    for dirpath, _dirs, _files in os.walk(root):
        Path(dirpath).chmod(stat.S_IRWXU)
    shutil.rmtree(root)


def _finish(tmp: Path, final: Path) -> Path:
    make_read_only(tmp)
    if final.exists():  # made before: releases never change
        remove_tree(tmp)
        return final
    os.replace(tmp, final)
    return final


def _check(release: Path, name: str, shown_as: str) -> Service:
    """Load the service from a release, naming `shown_as` instead of the release's temp path."""
    try:
        for link, target in links_out(release):  # a release must hold all it serves
            raise BerthError(Problem(f"is a symbolic link to {target}, outside the release: "
                                     "refused (copy the file into the repository instead)",
                                     Location(link), entity=name))
        for link in release.rglob("*"):
            if link.is_symlink() and not link.exists():
                raise BerthError(Problem(f"is a symbolic link to {os.readlink(link)}, which is "
                                         "not in the release: refused", Location(link),
                                         entity=name))
        service = ServicesRepo.load(release).service(name)
        if service.config_dir is None:
            raise BerthError(Problem(f"instance '{name}' has no config folder",
                                     Location(service.path / "config"), entity=name))
    except BerthError as err:
        problems = [
            Problem(p.message.replace(str(release), shown_as),
                    Location(str(p.location.file).replace(str(release), shown_as),
                             p.location.line, p.location.column)
                    if p.location.file else p.location, p.entity, p.field, p.severity)
            for p in err.problems
        ]
        raise BerthError(problems) from None
    return service


def from_working_copy(root: Path, name: str, layout: Layout, releases: Path) -> tuple[str, Path]:
    """Copy the service's files from a folder; returns (version label, release folder)."""
    releases.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=releases, prefix=".tmp-"))
    digest = hashlib.sha256()
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            here = Path(dirpath)
            rel_dir = PurePosixPath(here.relative_to(root).as_posix())
            keep = []
            for d in dirnames:
                rel = rel_dir / d
                if (here / d).is_symlink():
                    filenames.append(d)
                elif d != ".git" and (_wanted(rel, name, layout) or rel == SERVICES):
                    keep.append(d)
            dirnames[:] = keep
            for item in sorted(filenames):
                rel = rel_dir / item
                if not _wanted(rel, name, layout):
                    continue
                source, target = here / item, tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest.update(str(rel).encode() + b"\0")
                if source.is_symlink():
                    link = os.readlink(source)
                    digest.update(b"link:" + link.encode())
                    os.symlink(link, target)
                else:
                    shutil.copy2(source, target)
                    digest.update(source.read_bytes())
                digest.update(b"\0")
        _check(tmp, name, str(root))
        version = LOCAL_PREFIX + digest.hexdigest()[:10]
        return version, _finish(tmp, releases / folder_name(version))
    except BaseException:
        remove_tree(tmp)
        raise


def from_tag(repo: ServicesRepo, name: str, tag: str, releases: Path) -> Path:
    """Extract the service's files at `tag` (git archive) into a read-only release folder."""
    git = repo.git
    if not git.is_repo or tag not in git.tags:
        known = repo.versions(name) if git.is_repo else []
        listing = ", ".join(known) if known else "none (the repository has no tags)"
        raise BerthError(Problem(f"unknown version '{tag}' of '{name}'; versions: {listing}",
                                 Location(repo.root), entity=name))
    final = releases / folder_name(tag)
    if final.exists():
        return final
    prefix = repo.root.relative_to(git.top).as_posix()
    releases.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=releases, prefix=".tmp-"))
    try:
        git.extract(tag, prefix, tmp, lambda path: _wanted(path, name, repo.layout))
        if not (tmp / "services" / name).is_dir():
            raise BerthError(Problem(f"instance '{name}' does not exist at version {tag}",
                                     Location(repo.root), entity=name))
        _check(tmp, name, f"{repo.root}@{tag}")
        return _finish(tmp, final)
    except BaseException:
        remove_tree(tmp)
        raise


def instance_folder(folder: Path) -> tuple[ServicesRepo, str]:
    """The services repository and instance name of an instance folder `services/<name>`
    (what `deploy-local` is given)."""
    folder = Path(folder).resolve()
    if folder.parent.name != "services" or not folder.is_dir():
        raise BerthError(Problem("expected an instance folder services/<name> of a services "
                                 "repository", Location(folder)))
    return ServicesRepo.load(folder.parent.parent), folder.name


def own_tags(repo: ServicesRepo) -> bool:
    """Tags count only when the services repo is its own git repository (the example
    inside berth's repo is not: berth's tags say nothing about it)."""
    return repo.git.is_repo and repo.git.top == repo.root


def make(repo: ServicesRepo, name: str, version: str | None,
         releases: Path) -> tuple[str, Path, str]:
    """(version, release folder, note) for `version`, the latest tag, or the working copy."""
    if version is None:
        versions = repo.versions(name) if own_tags(repo) else []
        version = versions[-1] if versions else None
    if version is None:
        label, folder = from_working_copy(repo.root, name, repo.layout, releases)
        return label, folder, f"working copy of {repo.root}"
    if not own_tags(repo):
        raise BerthError(Problem(f"unknown version '{version}' of '{name}': {repo.root} is "
                                 "not a git repository with tags", Location(repo.root),
                                 entity=name))
    return version, from_tag(repo, name, version, releases), ""
