"""Support definitions, templates and dbd of a Generic IOC image, on this host.

A Generic IOC image keeps what `check`, `schema` and `generate` need under /epics:
`ibek-defs/*.ibek.support.yaml`, `support/<module>/db/` (templates), `ioc/dbd/` and
`pvi-defs/`. They are found, in order, in a private cache keyed by the image's digest (filled
before, or by `berth images pull-defs`), else in the image itself when the local docker/podman
has it: copied out of a created, never started, container into the cache.

Cache layout (`$BERTH_IMAGE_DEFS_DIR`, else `$BERTH_CACHE_DIR/image-defs`, else
`$XDG_CACHE_HOME/berth/image-defs`): `<digest>/` holds the copied folders as /epics lays them
out; `names/<hash of the image reference>` holds the digest that reference had when copied,
so a second run needs no engine at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from berth import paths
from berth.errors import BerthError
from berth.fsutil import atomic_write, only_mine
from berth.tools.engine import Engine, detect

# what is copied out of the image: /epics/<source> → <digest>/<source>, and which members
WANTED = {"ibek-defs": None, "pvi-defs": None, "ioc/dbd": None, "support": "db"}


@dataclass(frozen=True)
class ImageDefs:
    image: str
    digest: str
    root: Path  # laid out as the image's /epics
    origin: str  # "cache" or "image"

    @property
    def defs(self) -> list[Path]:
        return sorted((self.root / "ibek-defs").glob(paths.SUPPORT_GLOB))

    @property
    def db_dirs(self) -> list[Path]:
        support = self.root / "support"
        return sorted(p for p in support.glob("*/db") if p.is_dir())

    @property
    def dbd(self) -> Path | None:
        dbd = self.root / "ioc" / "dbd" / "ioc.dbd"
        return dbd if dbd.is_file() else None

    def path_map(self) -> dict[str, Path]:
        """Container paths of the image → their copies here."""
        return {f"{paths.EPICS_ROOT}/support": self.root / "support",
                f"{paths.IOC_DIR}/dbd": self.root / "ioc" / "dbd"}


def cache_root() -> Path:
    value = os.environ.get("BERTH_IMAGE_DEFS_DIR")
    if value:
        return Path(value)
    if os.environ.get("BERTH_CACHE_DIR"):
        return Path(os.environ["BERTH_CACHE_DIR"]) / "image-defs"
    return paths.user_cache_dir() / "image-defs"


def _private(path: Path) -> bool:
    """Only this user may have written it (a cache others can write could lie to us)."""
    try:
        return only_mine(path.stat())
    except OSError:
        return False


def name_file_of(root: Path, image: str) -> Path:
    return root / "names" / hashlib.sha256(image.encode()).hexdigest()[:32]


def _folder(root: Path, digest: str) -> Path:
    return root / digest.replace(":", "-")


def cached(image: str) -> ImageDefs | None:
    """The definitions of `image` from the cache, without asking any engine."""
    root = cache_root()
    name_file = name_file_of(root, image)
    if not _private(root) or not _private(name_file):
        return None
    try:
        digest, _, named = name_file.read_text().partition("\n")
    except OSError:
        return None
    folder = _folder(root, digest.strip())
    if named.strip() != image or not _private(folder) or not (folder / "ibek-defs").is_dir():
        return None
    return ImageDefs(image, digest.strip(), folder, "cache")


def copy_out(engine: Engine, image: str) -> ImageDefs:
    """Copy the definitions out of the local image `image` (a container is created, never
    started, then removed) into the cache. Raises BerthError when they cannot be had."""
    digest = engine.image_id(image)
    if not digest:
        raise BerthError(f"image {image} is not in the local {engine.name}")
    root = cache_root()
    for folder in (root, root / "names"):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
    target = _folder(root, digest)
    if not (target / "ibek-defs").is_dir():
        created = engine.run("create", image, "berth-copies-definitions-only")
        container = created.stdout.strip()
        try:
            with tempfile.TemporaryDirectory(prefix=".copy-", dir=root) as tmp:
                staging = Path(tmp) / "epics"
                for source, under in WANTED.items():
                    _copy(engine, container, source, under, staging / source)
                if not (staging / "ibek-defs").is_dir():
                    raise BerthError(f"image {image} has no {paths.EPICS_ROOT}/ibek-defs: it is "
                                     "not a Generic IOC with support definitions")
                staging.chmod(0o700)
                shutil.rmtree(target, ignore_errors=True)  # a copy that lacks ibek-defs
                try:
                    staging.rename(target)
                except OSError:  # another berth copied the same digest meanwhile: keep its
                    if not (target / "ibek-defs").is_dir():
                        raise
        finally:
            engine.run("rm", "-f", container, check=False)
    atomic_write(name_file_of(root, image), f"{digest}\n{image}\n", mode=0o600)
    return ImageDefs(image, digest, target, "image")


def _copy(engine: Engine, container: str, source: str, under: str | None, dest: Path) -> None:
    """`cp CONTAINER:/epics/SOURCE -` as a tar stream; regular files only, kept when their
    path (below SOURCE) has `under` as its second part (support/<module>/db/...)."""
    argv = engine.argv("cp", "-L", f"{container}:{paths.EPICS_ROOT}/{source}/.", "-")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    parts = PurePosixPath(member.name).parts
                    parts = parts[1:] if parts and parts[0] == "." else parts
                    if (not member.isfile() or not parts or ".." in parts
                            or (under and (len(parts) < 3 or parts[1] != under))):
                        continue
                    data = tar.extractfile(member)
                    if data is None:
                        continue
                    path = dest.joinpath(*parts)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as out:
                        shutil.copyfileobj(data, out)
        except tarfile.ReadError:
            pass  # the image has no such folder: the stream is empty
        proc.stdout.close()


class Finder:
    """Image definitions for one command: each image looked up once, the engine found once
    (and only when some image is not in the cache)."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[ImageDefs | None, str]] = {}
        self._engine: Engine | None = None
        self._no_engine = ""

    def find(self, image: str) -> tuple[ImageDefs | None, str]:
        """(definitions, "") or (None, why not, naming what to do)."""
        if image not in self._found:
            self._found[image] = self._look(image)
        return self._found[image]

    def _look(self, image: str) -> tuple[ImageDefs | None, str]:
        found = cached(image)
        if found is not None:
            return found, ""
        pull = (f"pull it (docker pull {image}) and run `berth images pull-defs`, or give "
                "its support YAMLs with --defs")
        engine = self._get_engine()
        if engine is None:
            return None, f"no container engine to read it from ({self._no_engine}): {pull}"
        if not engine.image_exists(image):
            return None, f"it is not in the local {engine.name}: {pull}"
        try:
            return copy_out(engine, image), ""
        except BerthError as err:
            return None, str(err.problems[0].message)

    def _get_engine(self) -> Engine | None:
        if self._engine is None and not self._no_engine:
            try:
                self._engine = detect()
            except BerthError as err:
                self._no_engine = str(err.problems[0].message)
        return self._engine
