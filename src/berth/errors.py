"""Errors users see: each names where (file, line, column), what (entity, field) and why.

Every user-facing failure is a `BerthError` carrying one or more `Problem`s. The CLI prints them,
one per line, and exits with code 2 and no traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # (pathlib is needed for annotations only)
if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Location:
    """A place in a file; line and column are 1-based, 0 when unknown."""

    file: str | Path | None = None
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.file is None:
            return ""
        text = str(self.file)
        if self.line:
            text += f":{self.line}"
            if self.column:
                text += f":{self.column}"
        return text


@dataclass(frozen=True)
class Problem:
    """One mistake: where it is, which entity and field, and what was expected."""

    message: str
    location: Location = field(default_factory=Location)
    entity: str | None = None  # e.g. "entity 3 (asyn.AsynIP)"
    field: str | None = None
    severity: str = "error"  # or "warning" / "note"

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
