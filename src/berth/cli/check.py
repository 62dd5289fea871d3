"""`berth check`: validate a services repository (or some of its instances) before deploying."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from berth.errors import Location, Problem

EXIT_PROBLEMS = 1  # the repository has errors (2 stays for mistakes in the command itself)


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        names: Annotated[list[str] | None, typer.Argument(
            help="Instances to check (default: every IOC instance).", show_default=False)] = None,
        repo: Annotated[Path | None, typer.Option(
            "-r", "--repo", envvar="BERTH_REPO", show_default=False,
            help="Services repository (default: the current directory).")] = None,
        defs: Annotated[list[Path] | None, typer.Option(
            "--defs", show_default=False,
            help="Support YAMLs (files or folders, repeatable) for instances whose Generic IOC "
            "is not on this host, so that they can still be schema-checked and generated.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    ) -> None:
        """Check every IOC instance of a repository: config, schema, generation, databases
        loaded into EPICS, values keys, duplicate names and PVs. Exit 1 on any error."""
        from berth.check import check_repo
        from berth.cli.common import print_json, print_table

        report = check_repo(repo or Path.cwd(), names or [], defs or [])
        if as_json:
            print_json(report.as_json())
        else:
            for problem in report.problems:
                print(_relative(problem))
            if report.problems:
                print()
            print_table(
                ["instance", "checked", "pvs", "errors", "warnings", "notes"],
                [[i.name, ",".join(i.checked) or "-", i.pvs, i.errors, i.warnings, i.notes]
                 for i in report.instances])
            counts = report.as_json()["counts"]
            print(f"\n{counts['error']} error(s), {counts['warning']} warning(s), "
                  f"{counts['note']} note(s) in {len(report.instances)} instance(s)")
        if not report.ok:
            raise typer.Exit(EXIT_PROBLEMS)


def _relative(problem: Problem) -> Problem:
    """The problem with its file relative to the current folder when it lies below it
    (shorter lines for people; --json keeps absolute paths)."""
    file = problem.location.file
    if file is None:
        return problem
    try:
        relative = Path(file).relative_to(Path.cwd())
    except ValueError:
        return problem
    where = Location(relative, problem.location.line, problem.location.column)
    return Problem(problem.message, where, problem.entity, problem.field, problem.severity)
