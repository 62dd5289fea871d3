"""File-system helpers: outputs are written atomically, all or nothing, with the mode a plain
`open()` would give them (0666 less the umask) unless a mode is asked for."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc, since 4.7):
    the `os.umask` round trip briefly sets it to 0 for every thread."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o077)
    os.umask(old)
    return old


def _mkstemp(folder: Path, name: str) -> tuple[int, str]:
    """As `tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")`: a new file only
    this user can read and write (0600) while it is being filled, created exclusively under a
    random name. (Importing tempfile would cost an IOC's start-up ~4 ms: random, hashlib,
    shutil.)"""
    for _ in range(10000):
        tmp = os.path.abspath(os.path.join(folder, f".{name}.{os.urandom(6).hex()}.tmp"))
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def _stage(path: Path, data: str | bytes, mode: int) -> str:
    """Write `data` to a new temporary file beside `path`, give it `mode`; return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            os.fchmod(f.fileno(), mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write `data` to `path` through a temporary file and a rename, so readers never see half.
    `mode` (e.g. 0o600 for private state) defaults to 0666 less the umask."""
    path = Path(path)
    tmp = _stage(path, data, (0o666 & ~umask()) if mode is None else mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_all(files: Mapping[Path, str | bytes]) -> None:
    """Write several files: every content is ready before the first rename, so an error in
    producing them leaves nothing written. Renames happen last, one after another."""
    mode = 0o666 & ~umask()
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_stage(Path(path), data, mode), Path(path)))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
