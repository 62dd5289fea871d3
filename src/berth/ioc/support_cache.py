"""A content-addressed cache of checked support files, as Python's `.pyc` files are for modules.

The entity models read from one support file are pickled, each on its own, under a hash of the
file's bytes, salted with berth's version, a format number and the state of the modules that
build them; the same bytes in give the same models out, so an entry is never stale, and a
changed file is simply parsed again. A model is unpickled when generation first asks for its
type. Only files without problems are stored. The same folder keeps plain values for other
outputs that are pure functions of files (`berth.ioc.screens_cache`).

The path of the file is not stored: every location in the models names the file through one
string, which is pickled as a reference and replaced on load by the path actually loaded, so
that error messages name file:line:column of the file given, wherever the same content was
first seen.

Entries live in `$BERTH_CACHE_DIR`, else `$XDG_CACHE_HOME/berth/support`, else
`~/.cache/berth/support`. `BERTH_NO_CACHE=1` turns the cache off. Any failure to read or write
an entry (read-only or missing folder, corrupt or foreign entry, unpicklable value) falls back
to parsing, silently. Entries are read only when owned by this user and writable by nobody
else, and unpickling accepts only the classes of the models.
"""

from __future__ import annotations

import _pickle
import gc
import io
import os
import sys
from pathlib import Path

from berth import paths
from berth.fsutil import atomic_write, only_mine, read_bytes

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

    from berth.ioc.support import EntityModel

try:  # _blake2 alone: hashlib would also load OpenSSL (~3 ms at start-up)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - Python built without it
    from hashlib import blake2b

def digest(data: bytes) -> str:
    """A short hash of some bytes (of a file an entry depends on)."""
    return blake2b(data, digest_size=20).hexdigest()


FORMAT = 2  # bump when what is stored changes shape (2: each model pickled on its own)
SUFFIX = ".pickle"

# classes an entry may name (anything else makes the entry unusable, not an error)
_ALLOWED = {
    "berth.ioc.support": {"EntityModel", "Param", "Define", "ScriptItem", "Database",
                            "EnvVar", "Pvi", "MISSING"},
    "berth.yamlio": {"YDict", "YList", "MISSING"},
    "berth.errors": {"Location"},
    "copyreg": {"__newobj__", "_reconstructor"},
    "builtins": {"object", "dict", "list", "set", "frozenset", "tuple", "float", "int",
                 "str", "bool", "complex"},
}
_FILE_ID = "file"  # the persistent id that stands for the path of the support file


def cache_dir() -> Path:
    """Where entries are kept (see the module's documentation)."""
    value = os.environ.get("BERTH_CACHE_DIR")
    if value:
        return Path(value)
    return paths.user_cache_dir() / "support"


def _code_stamp() -> bytes:
    """Size and modification time of the modules that build the models, so that a changed
    berth (an editable install, a patched file) never reads entries of an older one."""
    from berth import errors, values, yamlio
    from berth.ioc import support

    parts = []
    for module in (support, yamlio, errors, values, sys.modules[__name__]):
        try:
            st = os.stat(module.__file__ or "")
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except (OSError, TypeError):
            parts.append("?")
    return "|".join(parts).encode()


class _Unpickler(_pickle.Unpickler):
    def __init__(self, data: Any, file: str):
        super().__init__(data)
        self.file = file

    def persistent_load(self, pid: Any) -> Any:
        if pid == _FILE_ID:
            return self.file
        raise _pickle.UnpicklingError(f"unknown persistent id {pid!r}")

    def find_class(self, module: str, name: str) -> Any:
        if name not in _ALLOWED.get(module, ()):
            raise _pickle.UnpicklingError(f"{module}.{name} is not allowed in a support cache")
        return super().find_class(module, name)


class _PlainUnpickler(_pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise _pickle.UnpicklingError(f"{module}.{name}: only plain values are allowed here")


class SupportCache:
    """Entries of one cache folder; use `SupportCache.open()`."""

    def __init__(self, folder: Path):
        self.folder = folder
        from berth import __version__

        self.salt = b"\0".join((b"berth-support", str(FORMAT).encode(), __version__.encode(),
                                sys.implementation.cache_tag.encode(), _code_stamp())) + b"\0"

    @classmethod
    def open(cls) -> SupportCache | None:
        """The cache, or None when BERTH_NO_CACHE turns it off."""
        if os.environ.get("BERTH_NO_CACHE", "") not in ("", "0"):
            return None
        try:
            return cls(cache_dir())
        except Exception:  # e.g. no home folder: no cache
            return None

    def key(self, content: bytes) -> str:
        return blake2b(self.salt + content, digest_size=20).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def read(self, key: str) -> bytes | None:
        """The bytes of the entry under `key`, if it exists and only this user can write it."""
        try:
            fd = os.open(self.path(key), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not only_mine(st):
                return None
            data = os.read(fd, st.st_size)
            return data if len(data) == st.st_size else None
        except OSError:
            return None
        finally:
            os.close(fd)

    def load(self, key: str, file: str) -> Any:
        """What `put` stored under `key` (a document read from YAML), its locations naming
        `file`; None when there is no usable entry."""
        data = self.read(key)
        return None if data is None else _loads(data, file)

    def get_models(self, key: str) -> list[tuple[str, str, bytes]] | None:
        """The models of a support file stored under `key`, as (module, name, pickle) triples;
        None when there is no usable entry. `model()` unpickles one: an IOC uses a few models
        of each file, and unpickling them all cost more than the generation itself (~7 ms for
        the 96 models of the twelve ibek-support files a p47 IOC loads)."""
        stored = self.get_plain(key)
        if type(stored) is not list or not all(
                type(item) is tuple and len(item) == 3 and type(item[0]) is str
                and type(item[1]) is str and type(item[2]) is bytes for item in stored):
            return None
        return stored

    def model(self, data: bytes, file: str) -> EntityModel | None:
        """One model of `get_models`, its locations naming `file`; None if it is damaged."""
        from berth.ioc.support import EntityModel

        model = _loads(data, file)
        return model if type(model) is EntityModel else None

    def put_models(self, key: str, file: str, models: list[EntityModel]) -> None:
        """Store the models read from `file` under `key`, each pickled on its own; failures
        (an unpicklable value) store nothing."""
        try:
            stored = [(m.module, m.name, _dumps(m, file)) for m in models]
        except Exception:
            return
        self.put_plain(key, stored)

    def get_plain(self, key: str) -> Any:
        """The plain value (dicts, lists, tuples, text, numbers) stored under `key`, or None."""
        data = self.read(key)
        if data is None:
            return None
        try:
            return _PlainUnpickler(io.BytesIO(data)).load()
        except Exception:
            return None

    def put_plain(self, key: str, value: Any) -> None:
        """Store a plain value under `key`; failures are ignored."""
        try:
            import pickle

            atomic_write(self.path(key), pickle.dumps(value, protocol=5))
        except Exception:
            return

    def put(self, key: str, file: str, value: Any) -> None:
        """Store a YAML document (read from `file`) under `key`; failures are ignored."""
        try:
            atomic_write(self.path(key), _dumps(value, file))
        except Exception:
            return


def _dumps(value: Any, file: str) -> bytes:
    """A pickle of `value` in which the string `file` is a reference (see the module)."""
    import pickle

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> str | None:
            return _FILE_ID if obj is file else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def _loads(data: bytes, file: str) -> Any:
    """What `_dumps` wrote, its file references replaced by `file`; None when it is unusable."""
    try:
        collecting = gc.isenabled()
        gc.disable()  # thousands of new containers: collecting them meanwhile costs ~40%
        try:
            return _Unpickler(io.BytesIO(data), file).load()
        finally:
            if collecting:
                gc.enable()
    except Exception:
        return None


def load_yaml_cached(path: Path) -> Any:
    """`berth.yamlio.load_yaml` of a file, through the cache: the same bytes seen before are
    unpickled, not parsed (and PyYAML is not even imported). Used for IOC instance files,
    which are the same at every start of an IOC."""
    from berth.yamlio import YDict, load_yaml, loads_yaml

    cache = SupportCache.open()
    try:
        data = read_bytes(path)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return load_yaml(path)  # (which says what is wrong)
    if "\r" in text:  # as load_yaml's read_text does
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cache is None:
        return loads_yaml(text, path)
    name = str(path)
    key = cache.key(b"instance\0" + data)
    doc = cache.load(key, name)
    if type(doc) is YDict:
        return doc
    doc = loads_yaml(text, name)
    if type(doc) is YDict:
        cache.put(key, name, doc)
    return doc
