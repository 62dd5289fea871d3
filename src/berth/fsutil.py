"""File-system helpers: outputs are written atomically, all or nothing, with the mode a plain
`open()` would give them (0666 less the umask) unless a mode is asked for."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterable, Mapping
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


# --- bounded reading of untrusted files --------------------------------------------------------

MAX_READ = 16 * 1024 * 1024  # no input berth reads (YAML, templates, .db, state) comes near


class UnreadableFile(OSError):
    """A file berth refuses to read: not a regular file, or larger than the limit. (An OSError,
    so callers that already report unreadable files report these the same way.)"""

    def __init__(self, path: str | Path, why: str):
        super().__init__(why)
        self.filename = str(path)
        self.strerror = why


def read_bytes(path: str | Path, limit: int = MAX_READ) -> bytes:
    """The content of the regular file `path`, at most `limit` bytes. A FIFO, device or socket
    is refused without blocking on it (opened non-blocking, checked before any read) and a
    larger file is refused before it is read whole: either raises `UnreadableFile`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode)
                    else "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file")
            raise UnreadableFile(path, f"not a regular file ({kind}); berth reads only files")
        if info.st_size > limit:
            raise UnreadableFile(path, f"file too large ({info.st_size} bytes; the limit is "
                                       f"{limit})")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while being read (or /proc-like size 0)
                raise UnreadableFile(path, f"file too large (over the limit of {limit} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | Path, errors: str = "strict", limit: int = MAX_READ) -> str:
    """`read_bytes` decoded as UTF-8 with universal newlines, as `Path.read_text` gives."""
    text = read_bytes(path, limit).decode("utf-8", errors)
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def only_mine(info: os.stat_result) -> bool:
    """Whether only this user can have written the file of `info`: owned by us and neither
    group- nor world-writable (a cache others can write could lie to us)."""
    return info.st_uid == os.geteuid() and not info.st_mode & 0o022


def leaves(path: str | Path, folder: str | Path) -> Path | None:
    """Where `path` really is (links followed) when that is outside `folder`, else None."""
    real = Path(os.path.realpath(path))
    top = Path(os.path.realpath(folder))
    return None if real == top or top in real.parents else real


def links_out(folder: str | Path, boundary: str | Path | None = None) -> list[tuple[Path, Path]]:
    """(link, where it leads) of every symbolic link under `folder` (links not followed) that
    leads outside `boundary` (default `folder`), dangling or not."""
    found: list[tuple[Path, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                target = leaves(path, folder if boundary is None else boundary)
                if target is not None:
                    found.append((path, target))
    return found


# --- switching a whole folder of outputs at once -------------------------------------------------

_OUR_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # what _mkstemp names
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the system cannot."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    function = getattr(libc, "renameat2", None)
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _carry(old: Path, new: Path, skip: set[Path]) -> None:
    """Give `new` every entry of `old` not in `skip`: hard links (the same files, sockets
    included), folders made anew, copies where a link is refused."""
    for entry in sorted(old.iterdir()):
        if entry in skip or _OUR_TEMP.match(entry.name):
            continue
        target = new / entry.name
        if entry.is_dir() and not entry.is_symlink():
            target.mkdir()
            _carry(entry, target, skip)
            os.chmod(target, stat.S_IMODE(entry.stat().st_mode))
            continue
        try:
            os.link(entry, target, follow_symlinks=False)
        except OSError:
            if entry.is_symlink():
                os.symlink(os.readlink(entry), target)
            else:
                with open(entry, "rb") as src, open(target, "xb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.chmod(target, stat.S_IMODE(entry.stat().st_mode))


def write_folder(folder: Path, files: Mapping[Path, str | bytes], remove: Iterable[Path] = ()
                 ) -> None:
    """Write `files` (paths inside `folder`) and drop `remove`, all or nothing: a new copy of
    the folder is made beside it and swapped in with one rename, so nobody ever sees old and
    new files mixed, and an interruption leaves the old folder whole. The folder's other
    entries are kept (hard-linked). Copies left by an interrupted run are removed first.
    Where the folder cannot be swapped (a mount point, a parent berth may not write in), the
    files are written one rename after another (`atomic_write_all`)."""
    given = Path(folder)
    # a link to the folder stays a link: its target is the folder swapped
    folder = Path(os.path.realpath(given))
    files = {folder / Path(p).relative_to(given): data for p, data in files.items()}
    remove = [folder / Path(p).relative_to(given) for p in remove]
    for path in files:
        _refuse_in_the_way(folder, Path(path))
    for stale in folder.parent.glob(f".{folder.name}.gen-*"):
        _remove_tree(stale)
    if _unchanged(folder, files, remove):
        return  # (an IOC's every start generates the same files again)
    stage = folder.parent / f".{folder.name}.gen-{os.urandom(6).hex()}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir(0o700)
    except OSError:
        atomic_write_all(files)
        for path in remove:
            Path(path).unlink(missing_ok=True)
        return
    try:
        if folder.is_dir():
            _carry(folder, stage, {Path(p) for p in files} | {Path(p) for p in remove})
        mode = 0o666 & ~umask()
        for path, data in files.items():
            target = stage / Path(path).relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                os.fchmod(f.fileno(), mode)
        if folder.is_dir():
            os.chmod(stage, stat.S_IMODE(folder.stat().st_mode))
            if not _exchange(stage, folder):
                raise OSError(errno.EXDEV, "cannot swap folders here", str(folder))
        else:
            stage.chmod(0o777 & ~umask())
            os.rename(stage, folder)
    except OSError as exc:
        _remove_tree(stage)
        if exc.errno in (errno.EXDEV, errno.EBUSY):  # a mount point: one file at a time
            atomic_write_all(files)
            for path in remove:
                Path(path).unlink(missing_ok=True)
            return
        raise
    except BaseException:
        _remove_tree(stage)
        raise
    _remove_tree(stage)  # (the old folder, now)


def _unchanged(folder: Path, files: Mapping[Path, str | bytes], remove: Iterable[Path]
               ) -> bool:
    """Whether every file already holds exactly its content, and nothing is to be removed
    (nor left by an interrupted write)."""
    if any(os.path.lexists(p) for p in remove):
        return False
    if folder.is_dir() and any(_OUR_TEMP.match(name) for name in os.listdir(folder)):
        return False
    for path, data in files.items():
        try:
            if Path(path).is_symlink() or read_bytes(path) != (
                    data.encode() if isinstance(data, str) else data):
                return False
        except OSError:
            return False
    return True


def _remove_tree(root: Path) -> None:
    """Delete a folder and what it holds, as far as possible (shutil costs an import); a link
    is removed, never followed."""
    if root.is_symlink() or not root.is_dir():
        with contextlib.suppress(OSError):
            root.unlink()
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dirpath, name))
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def _refuse_in_the_way(folder: Path, path: Path) -> None:
    """An output whose place holds a folder, or whose folder is a file, is refused rather than
    replaced: what is there is not berth's to delete."""
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(path))
    for parent in path.relative_to(folder).parents:
        place = folder / parent
        if place.exists() and not place.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way of a folder",
                                     str(place))
