"""Read the database loads out of an st.cmd (generated or hand-written), the way iocsh would
see them: `epicsEnvSet` values and `$(NAME)` references expanded, container paths mapped to
the folders on this host."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_WORD = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s,()"]+)')
_REF = re.compile(r"\$\(([A-Za-z0-9_]+)(?:=([^)]*))?\)|\$\{([A-Za-z0-9_]+)(?:=([^}]*))?\}")
LOAD_COMMANDS = ("dbLoadRecords", "dbLoadTemplate")


@dataclass(frozen=True)
class DbLoad:
    command: str  # dbLoadRecords | dbLoadTemplate
    file: str  # as written (after macro expansion and path mapping)
    macros: str
    line: int  # in the st.cmd


def split_command(line: str) -> tuple[str, list[str]]:
    """`cmd a b`, `cmd("a", "b")` or `cmd "a","b"` → (cmd, [a, b])."""
    text = line.strip()
    name_match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text)
    if not name_match:
        return "", []
    rest = text[name_match.end():]
    args = [m.group(1) if m.group(1) is not None else m.group(2) for m in _WORD.finditer(rest)]
    return name_match.group(), [re.sub(r"\\(.)", r"\1", a) for a in args]


def expand_env(text: str, env: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2) if match.group(1) else match.group(4)
        if name in env:
            return env[name]
        return default if default is not None else match.group()

    return _REF.sub(value, text)


def map_path(path: str, mapping: Mapping[str, Path]) -> str:
    """Container path → host path, longest prefix first."""
    for prefix in sorted(mapping, key=len, reverse=True):
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return str(mapping[prefix]) + path[len(prefix.rstrip("/")):]
    return path


def database_loads(script: str, env: Mapping[str, str], mapping: Mapping[str, Path]
                   ) -> list[DbLoad]:
    current = dict(env)
    loads: list[DbLoad] = []
    for number, raw in enumerate(script.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        command, args = split_command(expand_env(line, current))
        if command == "epicsEnvSet" and len(args) >= 2:
            current[args[0]] = args[1]
        elif command in LOAD_COMMANDS and args:
            loads.append(DbLoad(command, map_path(args[0], mapping),
                                args[1] if len(args) > 1 else "", number))
    return loads
