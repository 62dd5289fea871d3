"""The `berth` command line: a thin layer that parses, calls one function and prints.

Each area registers its commands from its own module (`berth.cli.<area>.register`), and each
command imports the heavy machinery it needs inside its body so that `berth --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from berth.errors import BerthError

# Modules under berth.cli that add commands; each has `register(app: typer.Typer) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "build",
    "expand",
    "run",
    "ops",
    "screens",
)

app = typer.Typer(
    name="berth",
    help="Build, run and deploy EPICS IOCs: ibek-compatible generation, an embedded EPICS "
    "runtime, and operation of a beamline's services on one machine, compose or Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Build, run and deploy EPICS IOCs."""


@app.command()
def version() -> None:
    """Print berth's version."""
    from berth import __version__

    print(__version__)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"berth.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"berth.cli.{name}":
                continue  # area not built yet
            raise
        module.register(app)


def report(err: BerthError) -> int:
    """Print a BerthError's problems to stderr, one per line; return its exit code."""
    for problem in err.problems:
        print(f"berth: {problem}", file=sys.stderr)
    return err.exit_code


def main(argv: list[str] | None = None) -> None:
    _register_all()
    try:
        app(args=argv, standalone_mode=True)
    except BerthError as err:
        sys.exit(report(err))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
