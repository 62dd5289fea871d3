"""A services repository as it was at a tag: `git archive` extracted into a temporary folder."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth.deploy.services import ServicesRepo
from berth.errors import BerthError


def commit_of(repo: ServicesRepo, tag: str) -> str:
    return repo.git.commit_of(tag)


@contextmanager
def checkout(repo: ServicesRepo, tag: str) -> Iterator[ServicesRepo]:
    """The repository at `tag`, loaded from a temporary extraction (never the working copy)."""
    if not repo.git.is_repo:
        raise BerthError(f"{repo.root} is not in a git repository: it has no versions to deploy")
    if tag not in repo.git.tags:
        known = ", ".join(repo.git.tags[-10:]) or "none"
        raise BerthError(f"'{tag}' is not a tag of {repo.git.top} (latest tags: {known})")
    with tempfile.TemporaryDirectory(prefix="berth-checkout-") as tmp:
        repo.git.extract(tag, "", Path(tmp))
        relative = repo.root.relative_to(repo.git.top)
        yield ServicesRepo.load(Path(tmp) / relative)
