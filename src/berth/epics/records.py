"""Read record names (the PVs an IOC serves) and link fields out of database text.

EPICS has already parsed the same files in the load step; this light reader only needs the
names, aliases and link fields with their line numbers, so it skips anything it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|#[^\n]*|[(){},]|[^\s(){},"#]+|\n')
_LINK_FIELD = re.compile(
    r"^(INP|OUT|DOL|FLNK|SDIS|TSEL|SIML|SIOL|SELL|NVL|SUBL|INP[A-U]|OUT[A-U]|LNK[0-9A-F]|"
    r"DOL[0-9A-F]|DLY[0-9A-F])$")
LINK_MODIFIERS = ("NPP", "PP", "CA", "CP", "CPP", "NMS", "MS", "MSI", "MSS")


@dataclass
class Record:
    name: str
    rtype: str
    line: int
    aliases: list[tuple[str, int]] = field(default_factory=list)
    links: list[tuple[str, str, int]] = field(default_factory=list)  # (field, value, line)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _tokens(text: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    line = 1
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "\n":
            line += 1
        elif not token.startswith("#"):
            out.append((token, line))
            line += token.count("\n")
    return out


def read_records(text: str) -> tuple[list[Record], list[tuple[str, str, int]]]:
    """Records (with their aliases and link fields), and top-level `alias(rec, name)` as
    (record, alias, line)."""
    tokens = _tokens(text)
    records: list[Record] = []
    top_aliases: list[tuple[str, str, int]] = []
    i = 0
    depth = 0
    current: Record | None = None
    while i < len(tokens):
        token, line = tokens[i]
        if token == "{":
            depth += 1
        elif token == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                current = None
        elif token in ("record", "grecord") and depth == 0 and _is_call(tokens, i):
            args, i = _args(tokens, i + 1)
            if len(args) >= 2:
                current = Record(_unquote(args[1]), _unquote(args[0]), line)
                records.append(current)
            continue
        elif token == "alias" and _is_call(tokens, i):
            args, i = _args(tokens, i + 1)
            if depth == 0 and len(args) >= 2:
                top_aliases.append((_unquote(args[0]), _unquote(args[1]), line))
            elif depth == 1 and current is not None and args:
                current.aliases.append((_unquote(args[0]), line))
            continue
        elif token == "field" and depth == 1 and current is not None and _is_call(tokens, i):
            args, i = _args(tokens, i + 1)
            if len(args) >= 2 and _LINK_FIELD.match(_unquote(args[0])):
                current.links.append((_unquote(args[0]), _unquote(args[1]), line))
            continue
        i += 1
    return records, top_aliases


def _is_call(tokens: list[tuple[str, int]], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1][0] == "("


def _args(tokens: list[tuple[str, int]], i: int) -> tuple[list[str], int]:
    """Arguments of `( a , b )` starting at the '(' at i; returns them and the index after ')'.
    A JSON value (`{…}`) as an argument is kept as one piece of text."""
    args: list[str] = []
    current: list[str] = []
    depth = 0
    i += 1
    while i < len(tokens):
        token = tokens[i][0]
        if depth == 0 and token == ")":
            if current:
                args.append("".join(current))
            return args, i + 1
        if depth == 0 and token == ",":
            args.append("".join(current))
            current = []
        else:
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
            current.append(token)
        i += 1
    return args, i


def link_problem(value: str) -> str | None:
    """Why a CA/DB link string looks wrong, or None. EPICS accepts unknown modifiers silently
    (they are ignored), which hides typos such as `NPP NMSS`."""
    text = value.strip()
    if not text or text[0] in "@#{" or _is_number(text):
        return None
    parts = text.split()
    if len(parts) == 1:
        return None
    unknown = [p for p in parts[1:] if p not in LINK_MODIFIERS]
    if unknown:
        return (f"link '{value}': {', '.join(repr(u) for u in unknown)} "
                f"{'is not a link modifier' if len(unknown) == 1 else 'are not link modifiers'}"
                f" ({' '.join(LINK_MODIFIERS)}); EPICS ignores it")
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.lower().startswith("0x")
    return True
