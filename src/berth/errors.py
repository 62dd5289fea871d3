"""Errors users see: each names where (file, line, column), what (entity, field) and why.

Every user-facing failure is a `BerthError` carrying one or more `Problem`s. The CLI prints them,
one per line, and exits with code 2 and no traceback.
"""

from __future__ import annotations

from berth.values import Frozen

TYPE_CHECKING = False  # (pathlib is needed for annotations only)
if TYPE_CHECKING:
    from pathlib import Path


class Location(Frozen):
    """A place in a file; line and column are 1-based, 0 when unknown."""

    FIELDS = ("file", "line", "column")
    file: str | Path | None
    line: int
    column: int

    def __init__(self, file: str | Path | None = None, line: int = 0, column: int = 0):
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "column", column)

    def __str__(self) -> str:
        if self.file is None:
            return ""
        text = str(self.file)
        if self.line:
            text += f":{self.line}"
            if self.column:
                text += f":{self.column}"
        return text


class Problem(Frozen):
    """One mistake: where it is, which entity and field, and what was expected."""

    FIELDS = ("message", "location", "entity", "field", "severity")
    message: str
    location: Location
    entity: str | None  # e.g. "entity 3 (asyn.AsynIP)"
    field: str | None
    severity: str  # "error", "warning" or "note"

    def __init__(self, message: str, location: Location | None = None,
                 entity: str | None = None, field: str | None = None,
                 severity: str = "error"):
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "location", Location() if location is None else location)
        object.__setattr__(self, "entity", entity)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "severity", severity)

    def __str__(self) -> str:
        parts = []
        where = str(self.location)
        if where:
            parts.append(where)
        if self.severity != "error":
            parts.append(self.severity)
        if self.entity:
            parts.append(self.entity)
        if self.field:
            parts.append(f"field '{self.field}'")
        head = ": ".join(parts)
        return f"{head}: {self.message}" if head else self.message


class BerthError(Exception):
    """A failure caused by the user's input or environment, reported without a traceback."""

    exit_code = 2

    def __init__(self, problems: Problem | str | list[Problem]):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def error(
    message: str,
    file: str | Path | None = None,
    line: int = 0,
    column: int = 0,
    entity: str | None = None,
    field: str | None = None,
) -> BerthError:
    """Shorthand for a BerthError with one Problem."""
    return BerthError(Problem(message, Location(file, line, column), entity, field))
