"""Which instance serves a PV: the record names (and aliases) of each instance's generated
database — what its st.cmd loads, `ioc.db` (the expanded ioc.subst) and the templates it names —
read with the same record reader `berth check` uses for duplicate PVs."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from berth.epics.records import read_records
from berth.epics.startup_script import database_loads
from berth.errors import BerthError, Problem
from berth.serve.fleet import Fleet


@dataclass(frozen=True)
class PvEntry:
    pv: str
    instance: str
    record_type: str
    screen: str | None  # URL path of the instance's index screen, when it has one

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _macros(text: str) -> dict[str, str]:
    found = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


def instance_pvs(runtime: Path, config: Path | None) -> list[tuple[str, str]]:
    """(PV, record type) of one instance's generated runtime folder."""
    from berth.epics import substitutions as msi

    st_cmd = runtime / "st.cmd"
    if not st_cmd.is_file():
        return []
    script = st_cmd.read_text(errors="replace")
    cd = re.search(r'^\s*cd\s+"?([^"\s]+)"?', script, re.MULTILINE)
    search = [runtime, runtime / "db", *([config] if config else [])]
    if cd:
        search += [Path(cd.group(1)), Path(cd.group(1)).parent / "db"]
    found: list[tuple[str, str]] = []
    for load in database_loads(script, {}, {}):
        path = Path(load.file)
        if not path.is_absolute():
            path = next((f / load.file for f in search if (f / load.file).is_file()), path)
        if not path.is_file() or load.command != "dbLoadRecords":
            continue
        try:
            text = msi.expand_template(path, search, _macros(load.macros)) \
                if load.macros else path.read_text(errors="replace")
        except (BerthError, OSError):
            continue
        records, aliases = read_records(text)
        types = {r.name: r.rtype for r in records}
        for record in records:
            found.append((record.name, record.rtype))
            found += [(alias, record.rtype) for alias, _line in record.aliases]
        found += [(alias, types.get(target, "alias")) for target, alias, _line in aliases]
    return found


def matcher(pattern: str) -> re.Pattern[str]:
    """A glob (`*`, `?`, `[..]`), or a regular expression written as /regex/ or re:regex."""
    try:
        if pattern.startswith("re:"):
            return re.compile(pattern[3:])
        if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
            return re.compile(pattern[1:-1])
    except re.error as exc:
        raise BerthError(Problem(f"PV pattern {pattern!r}: not a regular expression: {exc}",
                                 field="pattern")) from None
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"  # a plain name matches wherever it appears
    return re.compile(fnmatch.translate(pattern))


def index(fleet: Fleet) -> list[PvEntry]:
    """Every PV of every instance the backend has a runtime folder for."""
    if not fleet.latest:
        fleet.rows()
    entries: list[PvEntry] = []
    for name in sorted(fleet.latest):
        runtime = fleet.runtime_dir(name)
        if runtime is None:
            continue
        screens = fleet.screens(name)
        screen = f"/opi/{name}/{screens[0]}" if screens else None
        seen: set[str] = set()
        for pv, rtype in instance_pvs(runtime, fleet.config_dir(name)):
            if pv not in seen:
                seen.add(pv)
                entries.append(PvEntry(pv, name, rtype, screen))
    return entries


def find(entries: list[PvEntry], pattern: str, instance: str | None = None) -> list[PvEntry]:
    wanted = matcher(pattern)
    return [e for e in entries if (instance is None or e.instance == instance)
            and wanted.fullmatch(e.pv)]
