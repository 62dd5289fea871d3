"""The screens and `.pvi.template`s of a generation, kept in the support cache's folder.

Drawing them (reading the PVI device files, laying out and writing the screens) costs more than
the rest of a small IOC's generation, and at every IOC start the inputs are the same. An entry
is found under a hash of what is known before drawing (IOC name, formats, the entities' rendered
`pvi` blocks, the search folders, berth's screens code) and holds what else the outputs came
from: each device-file path looked up and whether it was a file, and a hash of each file read.
It is used only while every one of those is still so; else the screens are drawn again (and
stored). `BERTH_NO_CACHE=1` turns it off with the support cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from berth.ioc.support_cache import SupportCache, digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.ioc.render import PviEntity

FORMAT = 1  # bump when an entry changes shape


def screen_files(ioc_name: str, entities: list[PviEntity], search: list[Path],
                 formats: tuple[str, ...]) -> dict[str, str]:
    """`berth.screens.ioc_screens` of these entities (those whose device file is missing are
    left out), from the cache when nothing it came from has changed."""
    cache = SupportCache.open()
    key = cache.key(_material(ioc_name, entities, search, formats)) if cache else ""
    if cache is not None:
        stored = _valid(cache.get_plain(key))
        if stored is not None:
            return stored
    from berth.screens import DeviceLoader, ioc_screens

    loader = DeviceLoader(search)
    files = ioc_screens(ioc_name, [p.screen_entry() for p in entities], search,
                        formats=formats, on_missing=lambda _problem: None, loader=loader)
    if cache is not None:
        try:
            digests = [(str(p), digest(p.read_bytes())) for p in loader.files]
        except OSError:
            return files
        cache.put_plain(key, {"format": FORMAT, "probes": loader.probes, "files": digests,
                              "outputs": files})
    return files


def _material(ioc_name: str, entities: list[PviEntity], search: list[Path],
              formats: tuple[str, ...]) -> bytes:
    rows = [(p.yaml_path, list(p.macros.items()), p.pvi.ui_index, p.pvi.pv, p.pvi.pv_prefix)
            for p in entities]
    return repr(("berth-screens", FORMAT, ioc_name, formats, [str(s) for s in search], rows,
                 _code_stamp())).encode()


def _code_stamp() -> list[str]:
    """Size and modification time of the modules that draw screens (so that a changed berth
    never reads entries of an older one), without importing them."""
    stamps = []
    for folder in (Path(__file__).parent, Path(__file__).parent.parent / "screens"):
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    st = entry.stat()
                    stamps.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return stamps


def _valid(entry: object) -> dict[str, str] | None:
    """The outputs of an entry whose probes and files are all still as recorded."""
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return None
    try:
        for path, was_file in entry["probes"]:
            if os.path.isfile(path) != was_file:
                return None
        for path, stored in entry["files"]:
            with open(path, "rb") as f:
                if digest(f.read()) != stored:
                    return None
        outputs = entry["outputs"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(outputs, dict):
        return None
    return {str(k): str(v) for k, v in outputs.items()}
