"""A services repository as it was at a tag: `git archive` extracted into a temporary folder."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth.deploy.services import ServicesRepo
from berth.errors import BerthError
from berth.tools import find_tool


def _git(top: Path, *args: str) -> bytes:
    result = subprocess.run([find_tool("git"), "-C", str(top), *args], capture_output=True)
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip()
        raise BerthError(f"git {' '.join(args)} failed in {top}: {said}")
    return result.stdout


def commit_of(repo: ServicesRepo, tag: str) -> str:
    return _git(repo.git.top, "rev-parse", f"{tag}^{{commit}}").decode().strip()


@contextmanager
def checkout(repo: ServicesRepo, tag: str) -> Iterator[ServicesRepo]:
    """The repository at `tag`, loaded from a temporary extraction (never the working copy)."""
    if not repo.git.is_repo:
        raise BerthError(f"{repo.root} is not in a git repository: it has no versions to deploy")
    if tag not in repo.git.tags:
        known = ", ".join(repo.git.tags[-10:]) or "none"
        raise BerthError(f"'{tag}' is not a tag of {repo.git.top} (latest tags: {known})")
    archive = _git(repo.git.top, "archive", "--format=tar", tag)
    with tempfile.TemporaryDirectory(prefix="berth-checkout-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            # the archive is our own repository's, but still refuse anything leaving the folder
            try:
                tar.extractall(tmp, filter="data")
            except tarfile.FilterError as exc:
                raise BerthError(f"{tag} of {repo.git.top} holds a file berth will not "
                                 f"extract: {exc}") from None
        relative = repo.root.relative_to(repo.git.top)
        yield ServicesRepo.load(Path(tmp) / relative)
