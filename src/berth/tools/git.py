"""The one git wrapper: tags, trees and blobs at a tag, archive extraction, commit and push.

Every call is `git -C <top> …` through `berth.tools.run`, so a failure reads the same everywhere
("'git … ' failed (exit N): what git said").
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path, PurePosixPath

from berth.errors import BerthError
from berth.tools import run, run_bytes

TreeEntry = tuple[str, str]  # (mode, blob)


class Git:
    """A git working tree; `top` is its top folder when `path` is inside one, else `path`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            top = run(["git", "-C", str(self.path), "rev-parse", "--show-toplevel"]).strip()
        except BerthError:
            top = ""
        self.is_repo = bool(top)
        self.top = Path(top).resolve() if top else self.path
        self._trees: dict[str, dict[str, TreeEntry]] = {}

    def __call__(self, *args: str) -> str:
        """Run `git -C top ARGS…` and return its output."""
        return run(["git", "-C", str(self.top), *args])

    def answer(self, *args: str) -> str | None:
        """As calling, but None when git refuses (a question whose answer may be 'no')."""
        try:
            return self(*args)
        except BerthError:
            return None

    @cached_property
    def tags(self) -> list[str]:
        """All tags, oldest first (by the date of the commit they point at)."""
        if not self.is_repo:
            return []
        return [line for line in self("tag", "--list", "--sort=creatordate").splitlines()
                if line]

    def commit_of(self, rev: str) -> str:
        return self("rev-parse", f"{rev}^{{commit}}").strip()

    def ls_tree(self, rev: str) -> dict[str, TreeEntry]:
        """{repo-relative path: (mode, blob)} of every file at `rev` (read once per rev)."""
        if rev in self._trees:
            return self._trees[rev]
        entries: dict[str, TreeEntry] = self._trees.setdefault(rev, {})
        for line in self("ls-tree", "-r", "--full-tree", rev).splitlines():
            meta, _, path = line.partition("\t")
            mode, _kind, blob = meta.split()
            entries[path] = (mode, blob)
        return entries

    def blob(self, blob: str) -> str:
        return self("cat-file", "blob", blob)

    def show(self, rev: str, path: str) -> str | None:
        """A file's text at `rev`, or None when it did not exist there."""
        return self.answer("show", f"{rev}:{path}")

    def archive(self, rev: str, prefix: str = "") -> bytes:
        """`git archive` of `rev` (only `prefix`, a repo-relative folder, when given) as tar."""
        limit = ["--", prefix] if prefix not in ("", ".") else []
        return run_bytes(["git", "-C", str(self.top), "archive", "--format=tar", rev, *limit])

    def extract(self, rev: str, prefix: str, dest: Path,
                wanted: Callable[[PurePosixPath], bool] = lambda _path: True) -> None:
        """Write the files under `prefix` at `rev` into `dest`, paths relative to `prefix`;
        only those `wanted` accepts. Nothing may leave `dest`: absolute paths and `..` are
        skipped, a symbolic link pointing out of `dest` is an error, and links are never
        followed while extracting."""
        with tarfile.open(fileobj=io.BytesIO(self.archive(rev, prefix))) as tar:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if prefix not in ("", "."):
                    try:
                        path = path.relative_to(prefix)
                    except ValueError:
                        continue
                if path.is_absolute() or ".." in path.parts or not path.parts \
                        or not wanted(path):
                    continue
                target = dest / path
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.issym():
                    if _leaves(path, member.linkname):
                        raise BerthError(f"{rev} of {self.top} holds a link berth will not "
                                         f"extract: {path} -> {member.linkname} leaves the "
                                         "extracted folder")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
                    if member.mode & 0o111:
                        target.chmod(0o755)

    def has_remote(self) -> bool:
        return bool(self("remote").strip())

    def upstream(self) -> str | None:
        """The branch the current one tracks, None when it tracks none."""
        answer = self.answer("rev-parse", "--abbrev-ref", "@{upstream}")
        return answer.strip() or None if answer else None

    def commit(self, message: str, *paths: str) -> str:
        """Commit `paths` (only) with `message`; returns the new commit."""
        self("add", "--", *paths)
        self("commit", "--quiet", "-m", message, "--", *paths)
        return self.commit_of("HEAD")

    def push(self) -> None:
        self("push", "--quiet")

    def log(self, path: str, fmt: str) -> list[str]:
        """`git log --format=FMT -- path`, newest first, one line per commit."""
        return self("log", f"--format={fmt}", "--", path).splitlines()


def _leaves(path: PurePosixPath, link: str) -> bool:
    """Whether a link at `path` (relative to the extraction folder) points outside it."""
    if link.startswith("/"):
        return True
    depth = len(path.parts) - 1
    for part in PurePosixPath(link).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def clone_of(url: str, dest: Path) -> Git:
    """A working copy of the repository at `url` in `dest`: cloned the first time, fetched (tags
    too) and moved to the remote's default branch after. `url` comes from files others edit:
    it is never read as an option, and git's `ext::` command transport stays off."""
    safe = ["-c", "protocol.ext.allow=never"]
    if (dest / ".git").is_dir():
        git = Git(dest)
        git(*safe, "fetch", "--quiet", "--tags", "--force", "--prune", "origin")
        git("reset", "--quiet", "--hard", "origin/HEAD")
        return git
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        run(["git", *safe, "clone", "--quiet", "--", url, str(partial)])
        partial.rename(dest)
    finally:
        if partial.exists():
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
    return Git(dest)
