"""The `berth` command line: a thin layer that parses, calls one function and prints.

Each area registers its commands from its own module (`berth.cli.<area>.register`), and each
command imports the heavy machinery it needs inside its body so that `berth --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys

# (typing and berth.errors, which needs dataclasses, are not imported on `berth run`'s path
# before it forks its builder: ~15 ms of every IOC's start-up)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import typer

    from berth.errors import BerthError

# Modules under berth.cli that add commands; each has `register(app: typer.Typer) -> None`.
COMMAND_MODULES: tuple[str, ...] = (
    "ioc",
    "expand",
    "run",
    "deploy",
    "screens",
    "image",
    "check",
)

# Commands that, given ordinary arguments, run without typer (they run at every IOC start, where
# typer's own start-up would cost more than the work): command -> module under berth.cli with
# `fast(argv) -> int | None`, None meaning "let typer handle these arguments" (help, mistakes).
FAST_COMMANDS: dict[str, str] = {"generate": "ioc", "schema": "ioc", "run": "run"}

_app: typer.Typer | None = None


def _make_app() -> typer.Typer:
    import typer

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

    return app


def __getattr__(name: str) -> Any:
    """`app`, the typer application, is made on first use (typer costs ~0.1 s to import)."""
    global _app
    if name == "app":
        if _app is None:
            _app = _make_app()
        return _app
    raise AttributeError(name)


def _register_all() -> None:
    app = __getattr__("app")
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


def _fast(args: list[str]) -> None:
    if not args or args[0] not in FAST_COMMANDS:
        return
    module = importlib.import_module(f"berth.cli.{FAST_COMMANDS[args[0]]}")
    try:
        code = module.fast(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        errors = sys.modules.get("berth.errors")  # a BerthError exists only once it is imported
        if errors is None or not isinstance(exc, errors.BerthError):
            raise
        sys.exit(report(exc))
    if code is not None:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    _fast(list(sys.argv[1:] if argv is None else argv))
    from berth.errors import BerthError

    _register_all()
    app = __getattr__("app")
    try:
        app(args=argv, standalone_mode=True)
    except BerthError as err:
        sys.exit(report(err))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
