"""Build the soft-IOC Generic IOC image on a machine that reaches no container registry.

Steps (each skipped when its result is already there):
1. base image `berth-base:bookworm`: `debootstrap --variant=minbase` from the Debian mirror apt
   already uses, then `tar | <engine> import`;
2. wheels: `pip wheel` of berth itself and `pip download` of its dependencies, on the host
   (inside builds pip cannot reach the registry);
3. `<engine> build` of the packaged Dockerfile (`assets/image`: developer and runtime stages)
   with those wheels and the IOC scripts the charts call (start.sh, liveness.sh, stop.sh).

Everything comes from the installed package: berth's own wheel is built from its source tree when
it runs from one (an editable install), else packed from the installed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import BerthError
from berth.tools import call
from berth.tools.engine import Engine

BASE_IMAGE = "berth-base:bookworm"
# The name the example beamline and the local backend use for berth's soft-IOC image.
IMAGE_NAME = "ghcr.io/berth/softioc"
SUITE = "bookworm"
# The dashboard image (`--dashboard`): berth serve with the tools its backends call.
DASHBOARD_TOOLS = ("docker", "helm", "kubectl")  # static binaries, copied from this host
# kind -> (image name, Dockerfile target, berth's extras in its virtualenv)
KINDS = {"softioc": (IMAGE_NAME, "runtime", "softioc"),
         "dashboard": ("ghcr.io/berth/berth", "dashboard", "serve")}
# the extras whose wheels the build context holds: every kind's
IMAGE_EXTRAS = ",".join(sorted({extras for _name, _target, extras in KINDS.values()}))
# python3-venv brings ensurepip; nothing here compiles, so the base has no compiler.
BASE_PACKAGES = ("python3", "python3-venv")
FALLBACK_MIRROR = "http://deb.debian.org/debian"


@dataclass
class BuildReport:
    """What `berth image build` did, with timings (seconds) for the bench and the user."""

    tags: list[str]
    base_built: bool = False
    up_to_date: bool = False  # the image was already built from these very sources
    timings: dict[str, float] = field(default_factory=dict)
    size_bytes: int = 0


def image_assets() -> Path:
    """The Dockerfile and the IOC scripts (ioc/*.sh), shipped inside the berth package."""
    return Path(__file__).resolve().parent / "assets" / "image"


def source_checkout() -> Path | None:
    """The berth source tree this package runs from (an editable install), or None when berth
    was installed from a wheel or sdist."""
    root = Path(__file__).resolve().parents[2]
    has_project = (root / "pyproject.toml").is_file() and (root / "src" / "berth").is_dir()
    return root if has_project else None


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (one-line or deb822 sources), for debootstrap."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list")),
             *sorted((sources / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (m.group(1).lower(), m.group(2).strip())
                    for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)
                )
                suites = fields.get("suites", "").split()
                if SUITE in suites and fields.get("enabled", "yes").lower() != "no":
                    return str(fields.get("uris", "").split()[0])
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 3 and parts[0] == "deb":
                    rest = [p for p in parts[1:] if not p.startswith("[")]
                    if len(rest) >= 2 and rest[1] == SUITE:
                        return rest[0]
    return FALLBACK_MIRROR


def ensure_base(engine: Engine, rebuild: bool = False) -> bool:
    """Make BASE_IMAGE with debootstrap unless it exists; True when it was built now."""
    if not rebuild and engine.image_exists(BASE_IMAGE):
        return False
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None
    )
    if debootstrap is None:
        raise BerthError(
            "debootstrap is not installed: it makes the base image without a registry "
            "(apt-get install debootstrap, or run scripts/install-engine)"
        )
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="berth-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                SUITE, str(rootfs), mirror]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise BerthError(f"debootstrap from {mirror} failed (exit {result.returncode}): {tail}")
        _slim_rootfs(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [*engine.argv("import"), "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
            stdin=tar.stdout, capture_output=True, text=True,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise BerthError(f"importing the base image failed: {imported.stderr.strip()}")
    return True


def _slim_rootfs(rootfs: Path) -> None:
    """Drop what a container never needs: downloaded packages, apt lists, docs, man pages."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                "usr/share/info", "usr/share/locale"):
        folder = rootfs / sub
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name not in ("lock", "partial"):
                    child.unlink(missing_ok=True)


def wheel_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "berth" / "wheels"


def collect_wheels(dest: Path) -> None:
    """berth's own wheel plus every dependency's (with the image's extras), into `dest`
    (dependencies cached)."""
    cache = wheel_cache()
    cache.mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix="berth-wheel-", dir=dest.parent))
    try:
        berth_wheel = own_wheel(own)
        wanted = f"{berth_wheel}[{IMAGE_EXTRAS}]"
        # pip prefers a file already in --dest: a berth wheel left there from an earlier build
        # would bring its old requirements along.
        for stale in cache.glob("berth-*.whl"):
            stale.unlink()
        # Resolve the dependencies from the cache first; download only what is missing.
        offline = _pip("download", "--quiet", "--no-index", "--find-links", str(cache),
                       "--find-links", str(own), "--dest", str(cache), wanted, check=False)
        if offline.returncode != 0:
            _pip("download", "--quiet", "--only-binary", ":all:", "--find-links", str(own),
                 "--dest", str(cache), wanted)
        for stale in cache.glob("berth-*.whl"):
            stale.unlink()
        dest.mkdir(parents=True, exist_ok=True)
        for wheel in cache.glob("*.whl"):
            if not wheel.name.startswith("berth-"):
                shutil.copy2(wheel, dest / wheel.name)
        shutil.copy2(berth_wheel, dest / berth_wheel.name)
    finally:
        shutil.rmtree(own, ignore_errors=True)


def own_wheel(folder: Path) -> Path:
    """berth's wheel in `folder`: built from the source tree when berth runs from one, else
    packed from the installed files (a wheel or sdist install has no tree to build from)."""
    checkout = source_checkout()
    if checkout is not None:
        _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(folder), str(checkout))
        (wheel,) = folder.glob("berth-*.whl")
        return wheel
    return pack_installed(folder)


# files of an installed distribution that belong to the installation, not to the wheel
_INSTALL_ONLY = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def pack_installed(folder: Path) -> Path:
    """A wheel of the installed berth, made from its own files (package and metadata)."""
    import base64
    import zipfile
    from importlib import metadata

    from berth import __version__

    dist = metadata.distribution("berth")
    entries: list[tuple[str, Path]] = []
    info_dir = ""
    for name in dist.files or []:
        text = str(name)
        parts = Path(text).parts
        if ".." in parts or "__pycache__" in parts or not parts:
            continue  # console scripts (pip writes them again) and bytecode
        if parts[0].endswith(".dist-info"):
            info_dir = parts[0]
            if parts[-1] in _INSTALL_ONLY:
                continue
        elif parts[0] != "berth":
            continue
        entries.append((Path(text).as_posix(), Path(str(dist.locate_file(name)))))
    if not info_dir:
        raise BerthError("the installed berth has no metadata to pack into a wheel "
                         "(reinstall it with pip)")
    wheel = folder / f"berth-{__version__}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in entries:
            data = path.read_bytes()
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{arcname},sha256={sha.decode()},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        archive.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return wheel


def _pip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = call([sys.executable, "-m", "pip", *args], timeout=3600)
    if check and result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise BerthError(f"pip {args[0]} failed (exit {result.returncode}): {tail}")
    return result


def default_tags(kind: str = "softioc") -> list[str]:
    from berth import __version__

    name = KINDS[kind][0]
    return [f"{name}:{__version__}", f"{name}:latest"]


def dashboard_tools() -> dict[str, Path]:
    """The programs the dashboard image carries, found on this host's PATH (berth's own
    environment first); an error naming any that is missing."""
    found: dict[str, Path] = {}
    missing = []
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for tool in DASHBOARD_TOOLS:
        where = shutil.which(tool, path=search)
        if where is None:
            missing.append(tool)
        else:
            found[tool] = Path(where).resolve()
    if missing:
        raise BerthError(f"the dashboard image carries {', '.join(DASHBOARD_TOOLS)} from this "
                         f"host, and {', '.join(missing)} is not on PATH (scripts/setup "
                         "--extras installs helm; kubectl and docker come with the engine)")
    return found


SOURCE_LABEL = "berth.source-hash"


def source_hash(dev_packages: str = "", tools: dict[str, Path] | None = None) -> str:
    """A digest of everything that goes into the image: berth's package files (sources,
    assets, Dockerfile), its requirements, the developer stage's packages and the tools it
    carries (the dashboard's, `dashboard_tools()`)."""
    from importlib import metadata

    digest = hashlib.sha256(dev_packages.encode())
    for name, path in (tools or {}).items():
        info = path.stat()
        digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    package = Path(__file__).resolve().parent
    checkout = source_checkout()
    requirements = ((checkout / "pyproject.toml").read_text() if checkout is not None
                    else "\n".join(metadata.requires("berth") or []))
    digest.update(requirements.encode() + b"\0")
    for path in sorted(p for p in package.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_context(context: Path, tools: dict[str, Path] | None = None) -> None:
    """The Dockerfile, berth's and its dependencies' wheels, the IOC scripts and the `tools`
    the image carries (in `tools/`) in `context`."""
    assets = image_assets()
    collect_wheels(context / "wheels")
    (context / "tools").mkdir()
    for name, path in (tools or {}).items():
        shutil.copy2(path, context / "tools" / name)
    shutil.copy2(assets / "Dockerfile", context / "Dockerfile")
    scripts = context / "ioc"
    scripts.mkdir()
    for script in sorted((assets / "ioc").glob("*.sh")):
        target = scripts / script.name
        shutil.copyfile(script, target)
        target.chmod(0o755)  # package data may lose the mode on install


TICK = 2.0  # seconds between progress lines of a step that prints nothing itself


@contextlib.contextmanager
def phase(say: Callable[[str], None] | None, what: str, tick: bool = True) -> Iterator[None]:
    """Announce a step of the build through `say`, then (with `tick`) repeat it with the time
    spent every TICK seconds until it ends, so a long quiet step never looks hung."""
    if say is None:
        yield
        return
    say(what)
    if not tick:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def ticking() -> None:
        while not done.wait(TICK):
            say(f"{what} ({time.monotonic() - started:.0f} s)")

    ticker = threading.Thread(target=ticking, name="progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def build(engine: Engine, tags: list[str] | None = None, rebuild_base: bool = False,
          dev_packages: str = "", log: bool = False, force: bool = False,
          say: Callable[[str], None] | None = None, kind: str = "softioc") -> BuildReport:
    """Build the soft-IOC image (or with kind "dashboard" the dashboard's) and return what
    happened and how long it took. Nothing is built when every tag already holds an image of
    the same sources. `say`: where progress lines go (each step, and every TICK seconds while
    one is quiet)."""
    tags = tags or default_tags(kind)
    report = BuildReport(tags)
    start = time.monotonic()
    tools = dashboard_tools() if kind == "dashboard" else {}  # (what is hashed is copied)
    wanted = source_hash(dev_packages, tools)
    if not force and not rebuild_base and all(
            engine.image_label(tag, SOURCE_LABEL) == wanted for tag in tags):
        report.up_to_date = True
        report.size_bytes = engine.image_size(tags[0])
        report.timings["total"] = time.monotonic() - start
        return report
    if rebuild_base or not engine.image_exists(BASE_IMAGE):
        with phase(say, f"making the base image {BASE_IMAGE} (debootstrap)"):
            report.base_built = ensure_base(engine, rebuild=rebuild_base)
    report.timings["base"] = time.monotonic() - start
    with tempfile.TemporaryDirectory(prefix="berth-image-") as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        mark = time.monotonic()
        with phase(say, "collecting the wheels of berth and its dependencies (pip)"):
            build_context(context, tools)
        report.timings["wheels"] = time.monotonic() - mark
        mark = time.monotonic()
        tag_flags = [flag for tag in tags for flag in ("-t", tag)]
        _name, target, extras = KINDS[kind]
        argv = [*engine.argv("build"), "--force-rm", "--network", "host", "--target", target,
                *tag_flags,
                "--label", f"{SOURCE_LABEL}={wanted}",
                "--build-arg", f"DEV_PACKAGES={dev_packages}",
                "--build-arg", f"BERTH_EXTRAS={extras}", str(context)]
        with phase(say, f"building {', '.join(tags)} ({engine.name} build)", tick=not log):
            result = subprocess.run(argv, env=engine.build_env(), text=True,
                                    capture_output=not log)
        if result.returncode != 0:
            output = (result.stdout or "") + (result.stderr or "")
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise BerthError(f"image build failed (exit {result.returncode}): {tail}".rstrip())
        report.timings["build"] = time.monotonic() - mark
    report.timings["total"] = time.monotonic() - start
    report.size_bytes = engine.image_size(tags[0])
    return report
