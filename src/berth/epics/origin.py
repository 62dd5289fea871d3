"""Find where a line of an expanded `ioc.db` came from: which template, which line.

An `ioc.db` is the concatenation of its templates, each expanded with macros, so a line of it
is matched against the template lines with every macro reference read as a wildcard, inside the
same record (the record's header must match a header above, in the same template).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

_FILE_IN_SUBST = re.compile(r'^\s*file\s+(?:"([^"]+)"|(\S+))', re.MULTILINE)
_HEADER = re.compile(r"^\s*g?record\s*\(")


def templates_of_subst(subst_text: str, include: Sequence[Path]) -> list[Path]:
    """The template files a substitution file names, found along the include path."""
    found: list[Path] = []
    for match in _FILE_IN_SUBST.finditer(subst_text):
        name = match.group(1) or match.group(2)
        if "$" in name:
            continue
        path = Path(name)
        candidates = [path] if path.is_absolute() else [d / path for d in include]
        for candidate in candidates:
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
                break
    return found


def _pattern(line: str) -> re.Pattern[str]:
    """A template line as a regex: literal text, each macro reference matching anything."""
    parts: list[str] = []
    i = 0
    literal_start = 0
    while i < len(line):
        if line[i] == "$" and i + 1 < len(line) and line[i + 1] in "({":
            parts.append(re.escape(line[literal_start:i]))
            depth, j = 0, i + 1
            while j < len(line):
                if line[j] in "({":
                    depth += 1
                elif line[j] in ")}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            parts.append(".*?")
            i = literal_start = j + 1
            continue
        i += 1
    parts.append(re.escape(line[literal_start:]))
    return re.compile("".join(parts))


class _Template:
    def __init__(self, path: Path):
        self.path = path
        from berth.fsutil import read_text

        self.lines = [t.strip() for t in read_text(path, errors="replace").splitlines()]

    @cached_property
    def patterns(self) -> list[re.Pattern[str]]:
        return [_pattern(t) for t in self.lines]

    def find(self, header: str | None, target: str) -> int | None:
        """0-based line matching `target` below a header matching `header`."""
        current_header_ok = header is None
        for index, pattern in enumerate(self.patterns):
            text = self.lines[index]
            is_header = bool(_HEADER.match(text))
            if is_header and header is not None:
                current_header_ok = bool(pattern.fullmatch(header))
            if current_header_ok and pattern.fullmatch(target):
                return index
        return None


class Origins:
    """Maps lines of an expanded database back to the templates it was made from."""

    def __init__(self, expanded: str, templates: Sequence[Path]):
        self.lines = expanded.splitlines()
        self.templates = [_Template(p) for p in templates]

    def locate(self, line: int) -> tuple[Path, int] | None:
        """(template, 1-based line) of 1-based `line` of the expanded text, when found."""
        if not 0 < line <= len(self.lines):
            return None
        target = self.lines[line - 1].strip()
        header = None
        if not _HEADER.match(target):
            for i in range(line - 2, -1, -1):
                if _HEADER.match(self.lines[i]):
                    header = self.lines[i].strip()
                    break
        for template in self.templates:
            found = template.find(header, target)
            if found is not None:
                return template.path, found + 1
        return None
