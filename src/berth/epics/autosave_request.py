"""autosave's request files (`*.req`): which PVs a save set holds.

As autosave's documentation describes them: one PV name per line (`#` starts a comment line),
macros expanded on the whole line with the set's macro string, and
`file <name.req> <macros>` including another request file found on the request-file path
(`set_requestfile_path(path, subpath)`), with its own macros on top of the includer's. In the
`file` line quotes are ignored and whitespace separates macro definitions as a comma does.
"""

from __future__ import annotations

import re
from pathlib import Path

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    from berth.epics.macros import MacroTable

MAX_DEPTH = 20  # includes nested deeper than this are a loop


class RequestList:
    """The PV names of one request file (with its includes), and what went wrong reading it."""

    def __init__(self) -> None:
        self.pvs: list[str] = []
        self.problems: list[str] = []


def find(name: str, search: list[Path]) -> Path | None:
    """A request file by name: absolute as given, else in the first search folder holding it,
    else in the current folder."""
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    for folder in search:
        if (folder / name).is_file():
            return folder / name
    return path if path.is_file() else None


def _include_macros(text: str) -> str:
    return ",".join(part for part in re.split(r"[\s,]+", text.replace('"', "").replace("'", ""))
                    if part)


def read(name: str, search: list[Path], macros: str = "") -> RequestList:
    from berth.epics.macros import MacroTable

    table = MacroTable()
    if macros.strip():
        table.define_text(_include_macros(macros))
    result = RequestList()
    _read(name, search, table, result, 0, None)
    return result


def _read(name: str, search: list[Path], table: MacroTable, result: RequestList, depth: int,
          where: str | None) -> None:
    path = find(name, search)
    if path is None:
        places = ", ".join(str(p) for p in search) or "the current folder"
        result.problems.append(f"{where + ': ' if where else ''}request file {name} not found "
                               f"(searched {places})")
        return
    if depth > MAX_DEPTH:
        result.problems.append(f"{where}: request files included more than {MAX_DEPTH} deep "
                               "(an include loop?)")
        return
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        result.problems.append(f"{path}: cannot be read: {err.strerror}")
        return
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = table.expand(line).strip()
        words = line.replace('"', " ").split(None, 2)
        if not words:
            continue
        if words[0] == "file" and len(words) >= 2:
            table.push()
            if len(words) == 3:
                table.define_text(_include_macros(words[2]))
            _read(words[1], search, table, result, depth + 1, f"{path}:{number}")
            table.pop()
            continue
        result.pvs.append(words[0])
