"""The /epics container layout, berth's built-in soft IOC (src/berth/assets/softioc), and the
one rule finding an instance's start-up files in its config folder (system.md §1).

Imported on every IOC start (`berth run`): only `os`, `re` and `pathlib` at import time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from berth.fsutil import leaves, read_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

EPICS_ROOT = "/epics"
IOC_DIR = "/epics/ioc"  # the Generic IOC folder in its container ($IOC)
RUNTIME_DIR = "/epics/runtime"  # where start-up files are generated ($RUNTIME_DIR)
CONFIG_DIR = IOC_DIR + "/config"  # where the instance's config folder is mounted
SUPPORT_GLOB = "*.ibek.support.yaml"
GENERIC_IOC_BINARY = Path("bin") / "linux-x86_64" / "ioc"

ASSETS = Path(__file__).resolve().parent / "assets" / "softioc"


def epics_root(env: Mapping[str, str] | None = None) -> Path:
    """$EPICS_ROOT (default /epics)."""
    return Path((os.environ if env is None else env).get("EPICS_ROOT") or EPICS_ROOT)


def ibek_defs_dir(env: Mapping[str, str] | None = None) -> Path:
    return epics_root(env) / "ibek-defs"


def pvi_defs_dir(env: Mapping[str, str] | None = None) -> Path:
    return epics_root(env) / "pvi-defs"


def default_defs(env: Mapping[str, str] | None = None) -> list[Path]:
    """`$EPICS_ROOT/ibek-defs/*.ibek.support.yaml`: a Generic IOC's support definitions."""
    return sorted(ibek_defs_dir(env).glob(SUPPORT_GLOB))


def standard_defs(env: Mapping[str, str] | None = None) -> list[Path]:
    """The support definitions used when none are given: the Generic IOC's, or outside a
    Generic IOC (no ibek-defs) berth's soft IOC's, which is what runs there."""
    return default_defs(env) or support_files()


def support_db_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """`db/` folders of the support modules of a Generic IOC ($EPICS_ROOT/support/*/db)."""
    root = epics_root(env) / "support"
    return sorted(p for p in root.glob("*/db") if p.is_dir()) if root.is_dir() else []


def generic_binary(ioc_dir: Path) -> Path | None:
    """A Generic IOC folder's executable, or None (then berth's soft IOC runs)."""
    binary = ioc_dir / GENERIC_IOC_BINARY
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


# -- berth's built-in soft IOC ----------------------------------------------------------------


def ioc_dir() -> Path:
    """The soft IOC folder written into st.cmd (`cd "<IOC>"`); holds `dbd/ioc.dbd`."""
    return ASSETS / "ioc"


def db_dir() -> Path:
    """Templates the soft IOC's own entities use (any.template, alias.template)."""
    return ASSETS / "db"


def iocstats_dir() -> Path:
    """The soft IOC's devIocStats folder ($IOCSTATS: `db/iocAdminSoft.db`, ...)."""
    return ASSETS / "iocStats"


def support_files() -> list[Path]:
    """The support YAMLs describing what the soft IOC can instantiate (modules epics, berth)."""
    return sorted((ASSETS / "support").glob(SUPPORT_GLOB))


# -- an instance's start-up files -------------------------------------------------------------

_ENTITIES_KEY = re.compile(r"^entities\s*:", re.MULTILINE)
_NOT_INSTANCES = ("runtime.yaml", "wait_list.yaml")


class Startup:
    """How an instance starts: `kind` "start.sh" | "python" | "yaml" | "st.cmd", and its files:
    [start.sh], [ioc.py, requirements.txt?], [instance YAML, runtime.yaml?] or
    [st.cmd, ioc.subst?]."""

    def __init__(self, kind: str, files: list[Path]) -> None:
        self.kind = kind
        self.files = files

    def __repr__(self) -> str:
        return f"Startup({self.kind!r}, {self.files!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Startup) and (other.kind, other.files) == (self.kind,
                                                                               self.files)


def user_cache_dir() -> Path:
    """berth's folder in the user's cache: $XDG_CACHE_HOME (when absolute) or ~/.cache."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "berth"


def _error(message: str, where: Path) -> Exception:
    from berth.errors import BerthError, Location, Problem

    return BerthError(Problem(message, Location(where)))


def instance_yaml(config_dir: Path) -> Path | None:
    """The instance YAML of a config folder: `ioc.yaml`, else the one other *.yaml with a
    top-level `entities:` key (two are an error); None when there is none."""
    main = config_dir / "ioc.yaml"
    if main.is_file():
        return main
    found = []
    for path in sorted(config_dir.glob("*.yaml")):
        if path.name in _NOT_INSTANCES or path.name.endswith(".ibek.support.yaml"):
            continue
        try:
            text = read_text(path, errors="replace")
        except OSError as exc:  # a FIFO, a device, unreadable: say so, never block on it
            raise _error(f"cannot read: {exc.strerror or exc}", path) from None
        if _ENTITIES_KEY.search(text):
            found.append(path)
    if len(found) > 1:
        raise _error("more than one IOC instance YAML (files with a top-level 'entities:' "
                     "key): " + ", ".join(p.name for p in found)
                     + "; keep one, or name it ioc.yaml", config_dir)
    return found[0] if found else None


def find_startup(config_dir: Path) -> Startup:
    """By precedence: start.sh > ioc.py [+ requirements.txt] (a Python soft IOC) > instance
    YAML [+ runtime.yaml] > st.cmd [+ ioc.subst]."""
    if not config_dir.is_dir():
        raise _error("config folder not found", config_dir)
    start_sh = config_dir / "start.sh"
    if start_sh.is_file():
        return Startup("start.sh", _inside(config_dir, [start_sh]))
    script = config_dir / "ioc.py"
    if script.is_file():
        requirements = config_dir / "requirements.txt"
        return Startup("python", _inside(config_dir, [script, requirements]
                                         if requirements.is_file() else [script]))
    main = instance_yaml(config_dir)
    if main is not None:
        runtime = config_dir / "runtime.yaml"
        return Startup("yaml", _inside(config_dir, [main, runtime] if runtime.is_file()
                                       else [main]))
    st_cmd = config_dir / "st.cmd"
    if st_cmd.is_file():
        subst = config_dir / "ioc.subst"
        return Startup("st.cmd", _inside(config_dir, [st_cmd, subst] if subst.is_file()
                                         else [st_cmd]))
    raise _error("nothing to run: expected start.sh, ioc.py, an instance YAML (ioc.yaml or a "
                 "*.yaml with 'entities:') or st.cmd", config_dir)


def find_instance_files(config: Path) -> list[Path]:
    """What `berth generate` reads: [instance YAML, runtime.yaml?] of a config folder (start.sh
    and st.cmd play no part), or [file] for an instance YAML file."""
    config = Path(config)
    if config.is_file():
        return [config]
    if not config.is_dir():
        raise _error("no such file or folder", config)
    main = instance_yaml(config)
    if main is None:
        raise _error("no IOC instance YAML here: expected ioc.yaml or one *.yaml with a "
                     "top-level 'entities:' key", config)
    runtime = config / "runtime.yaml"
    return _inside(config, [main, runtime] if runtime.is_file() else [main])


def _inside(config: Path, files: list[Path]) -> list[Path]:
    """`files`, each checked to be in the config folder: an instance file that is a link out
    of it (`ioc.yaml -> /etc/passwd`) would make berth read, and show, what it points at."""
    for file in files:
        target = leaves(file, config)
        if target is not None:
            raise _error(f"is a symbolic link to {target}, outside the config folder "
                         f"{config}: refused (copy the file into the folder instead)", file)
    return files


# -- private folders (sockets) ----------------------------------------------------------------


def private_dir(path: Path, levels: int = 1) -> Path:
    """Make `path` a folder only this user can enter, creating it (and missing parents) with
    mode 0700, and check its last `levels` components: each must be a real folder (not a
    symlink) owned by this user, which berth then keeps at mode 0700. Someone else's folder is
    refused: whoever owns the folder of a socket can capture or replace it."""
    import contextlib

    path = Path(path)
    checked = [path, *list(path.parents)[: max(levels, 1) - 1]]
    for folder in reversed([path, *path.parents]):
        if not os.path.lexists(folder):
            with contextlib.suppress(FileExistsError):  # a concurrent berth's: checked below
                os.mkdir(folder, 0o700)
    for folder in reversed(checked):
        _check_private(folder)
    return path


def _check_private(folder: Path) -> None:
    import stat

    info = _own_folder(folder, "socket folder", "another user could capture or replace the "
                       "sockets in it (remove it, or use a state folder with a shorter path)")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)  # ours, made by an older berth with the umask's mode


def _own_folder(folder: Path, what: str, risk: str, root_too: bool = False) -> os.stat_result:
    """`folder`'s status when it is a real folder (not a symlink) of this user (or, with
    `root_too`, of root); else an error saying why this `what` is refused and the `risk` of
    using it anyway."""
    import stat

    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise _error(f"cannot use this {what}: {exc.strerror}", folder) from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise _error(f"refusing to use this {what}: it is a symbolic link or not a folder "
                     "(remove it)", folder)
    if info.st_uid != os.getuid() and not (root_too and info.st_uid == 0):
        raise _error(f"refusing to use this {what}: it belongs to uid {info.st_uid}, not to you "
                     f"(uid {os.getuid()}); {risk}", folder)
    return info

def guarded_dir(path: Path) -> Path:
    """Make `path` (an IOC's runtime folder, which holds its console socket) a folder that
    others may read but no one else can change: created with the umask's mode less group and
    other write, and checked to be a real folder owned by this user, whose group/other write
    bits berth clears, in a parent that no other user can rename it out of. Whoever can
    replace the console socket reads what the operator types into the IOC shell.

    In a container, root's folders open to all are accepted (a Kubernetes emptyDir is root's,
    mode 0777, and the IOC's user is the only one in the pod)."""
    import stat

    path = Path(path)
    if not os.path.lexists(path):
        mask = os.umask(0o022)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o777 & ~(mask | 0o022))
        finally:
            os.umask(mask)
    info = _own_folder(path, "runtime folder", "its owner could replace the IOC's console "
                       "socket (remove it, or choose another --runtime-dir)",
                       root_too=in_container())
    if info.st_mode & 0o022 and info.st_uid == os.getuid():
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o022)
    parent = os.stat(path.parent)
    others_may_rename = parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX
    if parent.st_uid not in (0, os.getuid()) or others_may_rename:
        raise _error("refusing to use this runtime folder: its parent folder can be changed by "
                     "another user, who could replace the IOC's console socket (choose another "
                     "--runtime-dir)", path)
    return path


def in_container() -> bool:
    """Whether this process runs in a container (docker, podman, Kubernetes)."""
    return any(os.path.exists(marker) for marker in ("/.dockerenv", "/run/.containerenv")) \
        or "KUBERNETES_SERVICE_HOST" in os.environ
