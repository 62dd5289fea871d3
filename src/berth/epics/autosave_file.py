"""autosave's `.sav` files: reading, writing, and the backup and sequence copies it keeps.

The format, as autosave's documentation (docs/autoSaveRestore.md, "About save files") gives it:

    # save/restore V5.11<TAB>Automatically generated - DO NOT MODIFY - 261204-214500
    ! 1 channel(s) not connected - or not all gets were successful
    xxx:ao.VAL 4.1234567890123
    xxx:ao.DESC some text
    #xxx:gone.VAL Search Issued
    xxx:wave @array@ { "1" "2" "3" }
    <END>

A value is the rest of its line; array elements are double-quoted with backslash escapes. A file
that does not end with `<END>` plus one or two characters was cut short and must not be used.
Beside `x.sav` autosave keeps `x.savB` (the same contents, written as a pair), `x.sav0..N-1`
(sequence copies) and, at each boot, `x.sav_YYMMDD-HHMMSS` (dated) or `x.sav.bu`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from berth.fsutil import atomic_write

VERSION = "5.11"  # the autosave release whose file format this writes
HEADER = "# save/restore V{version}\tAutomatically generated - DO NOT MODIFY - {stamp}"
ARRAY_MARK = "@array@"
END = "<END>"

Value = str | list[str]


def stamp(when: float | None = None) -> str:
    """autosave's date string: YYMMDD-HHMMSS, local time."""
    return time.strftime("%y%m%d-%H%M%S", time.localtime(when))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a",
            "\b": "\\b", "\f": "\\f", "\v": "\\v", "'": "\\'"}
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
              "\\": "\\", '"': '"', "'": "'", "?": "?", "0": "\0"}


_HEX = frozenset("0123456789abcdefABCDEF")


def escape(text: str) -> str:
    """EPICS's escaped form (epicsStrPrintEscaped): C escapes, \\xNN for other controls."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        digits = text[i + 2:i + 4]
        if nxt == "x" and len(digits) == 2 and all(c in _HEX for c in digits):
            out.append(chr(int(digits, 16)))
            i += 4
            continue
        out.append(_UNESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f\x7f\\\"']")


def _needs_escape(text: str) -> bool:
    return _NEEDS_ESCAPE.search(text) is not None


def render(values: list[tuple[str, Value | None]], when: float | None = None) -> str:
    """The text of a .sav file; a value of None is a PV that could not be read."""
    missing = sum(1 for _, v in values if v is None)
    lines = [HEADER.format(version=VERSION, stamp=stamp(when))]
    if missing:
        lines.append(f"! {missing} channel(s) not connected - or not all gets were successful")
    for pv, value in values:
        if value is None:
            lines.append(f"#{pv} Search Issued")
        elif isinstance(value, list):
            items = "".join(f'"{escape(v)}" ' for v in value)
            lines.append(f"{pv} {ARRAY_MARK} {{ {items}}}")
        else:
            # Only text that would not survive a line of its own is escaped (the reader
            # unescapes the same way), so ordinary values read exactly as autosave's do.
            lines.append(f"{pv} {escape(value) if _needs_escape(value) else value}")
    lines.append(END)
    return "\n".join(lines) + "\n"


class SaveFile:
    """A parsed .sav file. `complete` is False when it was cut short (no `<END>`)."""

    def __init__(self, path: Path, header: str, entries: list[tuple[str, Value]],
                 complete: bool, errors: list[str]) -> None:
        self.path, self.header, self.entries = path, header, entries
        self.complete, self.errors = complete, errors

    def values(self) -> dict[str, Value]:
        return dict(self.entries)


def _split_array(text: str) -> tuple[list[str], bool]:
    """`{ "a" "b" }` → (["a", "b"], closed?)."""
    items: list[str] = []
    i = text.find("{")
    if i < 0:
        return items, False
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "}":
            return items, True
        if ch == '"':
            j, raw = i + 1, []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text):
                    raw.append(text[j:j + 2])
                    j += 2
                    continue
                raw.append(text[j])
                j += 1
            items.append(unescape("".join(raw)))
            i = j + 1
            continue
        i += 1
    return items, False


def is_complete(data: str) -> bool:
    """Ends with `<END>` and one or two more characters (\\n or \\r\\n), as autosave checks."""
    tail = data[-(len(END) + 2):]
    at = tail.rfind(END)
    return at >= 0 and 1 <= len(tail) - at - len(END) <= 2


def parse(path: Path, data: str) -> SaveFile:
    complete = is_complete(data)
    lines = data.splitlines()
    header = lines[0] if lines and lines[0].startswith("#") else ""
    entries: list[tuple[str, Value]] = []
    errors: list[str] = []
    pending: tuple[str, str, int] | None = None  # an array spanning lines
    for number, line in enumerate(lines, start=1):
        if pending is not None:
            pv, text, start = pending
            text += " " + line
            items, closed = _split_array(text)
            if closed:
                entries.append((pv, items))
                pending = None
            else:
                pending = (pv, text, start)
            continue
        stripped = line.strip()
        if not stripped or stripped[0] in "#!" or stripped == END:
            continue
        pv, _, rest = stripped.partition(" ")
        rest = rest.lstrip(" \t")
        if "\t" in pv:
            pv, _, rest = stripped.partition("\t")
        if rest.startswith(ARRAY_MARK):
            items, closed = _split_array(rest)
            if closed:
                entries.append((pv, items))
            else:
                pending = (pv, rest, number)
            continue
        entries.append((pv, unescape(rest) if "\\" in rest else rest))
    if pending is not None:
        errors.append(f"{path}:{pending[2]}: the array of {pending[0]} has no closing '}}'")
    return SaveFile(path, header, entries, complete, errors)


def read(path: Path) -> SaveFile | None:
    """The file, or None when it does not exist or cannot be read."""
    try:
        data = path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
    return parse(path, data)


# --- the family of files around one .sav ----------------------------------------------------


def backup_path(sav: Path) -> Path:
    return sav.with_name(sav.name + "B")


def sequence_path(sav: Path, index: int) -> Path:
    return sav.with_name(f"{sav.name}{index}")


def write(sav: Path, text: str) -> None:
    """Write the pair: `.savB` first, then `.sav`, each by rename, so that whatever moment the
    process dies at, at least one of them is whole (and a reader never sees half a file)."""
    atomic_write(backup_path(sav), text)
    atomic_write(sav, text)


def remove_stale_temporaries(sav: Path) -> int:
    """Delete the temporary files (fsutil's `.<name>.<random>.tmp`) a killed save of `sav`,
    its backup or its sequence copies left; only call it while nothing is saving them."""
    removed = 0
    for tmp in sav.parent.glob(f".{glob_escape(sav.name)}*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def glob_escape(text: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def write_sequence(sav: Path, text: str, count: int) -> None:
    """Rotate `.sav0..count-1`: the oldest is replaced by `text`."""
    if count <= 0:
        return
    paths = [sequence_path(sav, i) for i in range(count)]
    existing = [p for p in paths if p.exists()]
    target = paths[len(existing)] if len(existing) < count else min(
        paths, key=lambda p: p.stat().st_mtime)
    atomic_write(target, text)


def boot_backup(source: Path, sav: Path, dated: bool, when: float | None = None) -> Path:
    """The copy autosave makes of the file it restored from, at boot."""
    target = sav.with_name(f"{sav.name}_{stamp(when)}") if dated else sav.with_name(
        sav.name + ".bu")
    atomic_write(target, source.read_bytes())
    return target


def choose(sav: Path) -> tuple[SaveFile | None, list[str]]:
    """The file to restore from: `.sav`, else `.savB`, else the newest whole sequence file;
    with log lines saying why a fallback was taken."""
    log: list[str] = []
    first = read(sav)
    if first is not None and first.complete:
        return first, log
    if first is not None:
        log.append(f"{sav} is incomplete (no {END} at its end; cut short or corrupt)")
    backup = read(backup_path(sav))
    if backup is not None and backup.complete:
        if first is not None:
            log.append(f"restoring from the backup {backup.path} instead")
        return backup, log
    candidates = []
    for i in range(10):
        seq = sequence_path(sav, i)
        if seq.exists():
            candidates.append((seq.stat().st_mtime, seq))
    for _, seq in sorted(candidates, reverse=True):
        parsed = read(seq)
        if parsed is not None and parsed.complete:
            log.append(f"{sav} and {backup_path(sav).name} unusable; restoring from {seq}")
            return parsed, log
    if first is not None or backup is not None:
        log.append(f"no whole save file for {sav}: nothing restored from it")
    return None, log

