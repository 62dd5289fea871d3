"""`berth expand`: msi in pure Python (substitution files and templates into a database)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(name="expand")(expand)


def expand(
    template: Annotated[Path | None, typer.Argument(
        help="Template to expand (with -S: used for every file set of the substitution file).",
        metavar="TEMPLATE", show_default=False)] = None,
    subst: Annotated[Path | None, typer.Option(
        "-S", "--subst", metavar="SUBST", help="Substitution file to expand.",
        show_default=False)] = None,
    include: Annotated[list[Path] | None, typer.Option(
        "-I", "--include", metavar="DIR",
        help="Directory to search for templates and includes (repeatable, in order).",
        show_default=False)] = None,
    macro: Annotated[list[str] | None, typer.Option(
        "-M", "--macros", metavar="A=1,B=2", help="Macro definitions A=1,B=2 (repeatable).",
        show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="OUT", help="Write here (atomically) instead of stdout.",
        show_default=False)] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", "-V", help="Undefined macros are an error (exit 2), not a warning.")] = False,
) -> None:
    """Expand a substitution file or a template the way EPICS msi does."""
    from berth.epics.macros import parse_definitions
    from berth.epics.substitutions import expand_substitutions, expand_template
    from berth.errors import BerthError, Problem
    from berth.fsutil import atomic_write

    if subst is None and template is None:
        raise BerthError("give a template, or a substitution file with -S")
    macros: dict[str, str] = {}
    for text in macro or []:
        for name, value in parse_definitions(text):
            if value is None:
                macros.pop(name, None)
            else:
                macros[name] = value
    paths = list(include or [])
    warnings: list[Problem] = []
    if subst is not None:
        result = expand_substitutions(subst, paths, macros, strict, warnings, template=template)
    else:
        assert template is not None
        result = expand_template(template, paths, macros, strict, warnings)
    for problem in warnings:
        print(f"berth: {problem}", file=sys.stderr)
    data = result.encode("utf-8", errors="surrogateescape")
    if output is not None:
        atomic_write(output, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
