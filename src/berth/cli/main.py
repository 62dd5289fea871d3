"""The `berth` command line: a thin layer that parses, calls one function and prints.

Each area registers its commands from its own module (`berth.cli.<area>.register`), and each
command imports the heavy machinery it needs inside its body so that `berth --help` stays fast.
As with `ec`, the options every operator verb shares (-r, -b, -t, --json) may also come before
the verb: `berth -b k8s -t bl99 ps` is `berth ps -b k8s -t bl99`.
"""

from __future__ import annotations

import sys

# (typing and berth.errors, which needs dataclasses, are not imported on `berth run`'s path
# before it forks its builder: ~15 ms of every IOC's start-up)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import typer

    from berth.errors import BerthError

# Commands that, given ordinary arguments, run without typer (they run at every IOC start, where
# typer's own start-up would cost more than the work); see `_fast`.
FAST_COMMANDS = ("generate", "schema", "run")

# Options that may come before the verb: spelling -> the long name the verb knows it by.
GLOBAL_OPTIONS: dict[str, str] = {"-r": "--repo", "--repo": "--repo", "-b": "--backend",
                                  "--backend": "--backend", "-t": "--target",
                                  "--target": "--target", "--json": "--json"}
GLOBAL_FLAGS = ("--json",)

_app: typer.Typer | None = None


def _make_app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="berth",
        help="Build, run and deploy EPICS IOCs: ibek-compatible generation, an embedded EPICS "
        "runtime, and operation of a beamline's services on one machine, compose or Kubernetes. "
        "-r -b -t --json may also come before the verb; EC_SERVICES_REPO, EC_TARGET and "
        "EC_CLI_BACKEND stand in for BERTH_REPO, BERTH_TARGET and BERTH_BACKEND. "
        "Shell completion: berth --install-completion.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    def _print_version(value: bool) -> None:
        if value:
            from berth import __version__

            print(f"berth {__version__}")
            raise typer.Exit()

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                     help="Print berth's version and exit."),
    ) -> None:
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


def _register_all(app: typer.Typer) -> None:
    from berth.cli import check, deploy, expand, image, ioc, local, new, run, screens, serve

    for module in (ioc, expand, run, deploy, local, new, screens, image, check, serve):
        module.register(app)


def report(err: BerthError) -> int:
    """Print a BerthError's problems to stderr, one per line; return its exit code."""
    for problem in err.problems:
        print(f"berth: {problem}", file=sys.stderr)
    return err.exit_code


DISK_TROUBLE = {28, 30, 13, 1, 122}  # ENOSPC, EROFS, EACCES, EPERM, EDQUOT


def report_os_error(err: OSError) -> int:
    """An OS refusal no check foresaw (permission denied, a name too long, a folder where a
    file was expected...): one line naming the path, exit 2, no traceback."""
    where = f"{err.filename}: " if err.filename else ""
    # What the file system refuses (full, read-only, not ours) stops the verb where it was.
    after = "; nothing more was changed" if err.errno in DISK_TROUBLE else ""
    print(f"berth: {where}{err.strerror or err}{after}", file=sys.stderr)
    return 2


def _fast(args: list[str]) -> None:
    """`generate`, `schema` and `run` with ordinary arguments, without typer: their `fast(argv)`
    returns an exit code, or None for "let typer handle these arguments" (help, mistakes)."""
    if not args or args[0] not in FAST_COMMANDS:
        return
    if args[0] == "run":
        from berth.cli import run as module
    else:
        from berth.cli import ioc as module  # type: ignore[no-redef]
    try:
        code = module.fast(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        sys.exit(report_os_error(exc))
    except Exception as exc:
        errors = sys.modules.get("berth.errors")  # a BerthError exists only once it is imported
        if errors is None or not isinstance(exc, errors.BerthError):
            raise
        sys.exit(report(exc))
    if code is not None:
        sys.exit(code)


def split_leading_options(args: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The global options written before the verb, as (long name, value or None for a flag),
    and the rest of the command line."""
    hoisted: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        word, equals, inline = args[i].partition("=")
        if word not in GLOBAL_OPTIONS:
            break
        if word in GLOBAL_FLAGS:
            hoisted.append((GLOBAL_OPTIONS[word], None))
            i += 1
        elif equals:
            hoisted.append((GLOBAL_OPTIONS[word], inline))
            i += 1
        elif i + 1 < len(args):
            hoisted.append((GLOBAL_OPTIONS[word], args[i + 1]))
            i += 2
        else:
            break  # a missing value: the verb's own parser says so
    return hoisted, args[i:]


def hoist_options(app: typer.Typer, args: list[str]) -> list[str]:
    """Move the global options written before the verb to just after it, when that verb takes
    them; when it does not, say so instead of letting the verb misread them."""
    import click
    import typer

    from berth.errors import BerthError

    hoisted, rest = split_leading_options(args)
    if not hoisted or not rest or rest[0].startswith("-"):
        return args
    command: click.Command = typer.main.get_command(app)
    path: list[str] = []
    while isinstance(command, click.Group) and len(path) < len(rest):
        sub = command.get_command(click.Context(command), rest[len(path)])
        if sub is None:
            return args  # an unknown verb: typer reports it
        command = sub
        path.append(rest[len(path)])
    known = {opt for param in command.params for opt in param.opts}
    moved: list[str] = []
    for option, value in hoisted:
        if option not in known:
            raise BerthError(f"{option} does not apply to `berth {' '.join(path)}`")
        moved += [option] if value is None else [option, value]
    return [*path, *moved, *rest[len(path):]]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _fast(args)
    import os

    from berth.cli.common import apply_ec_fallbacks
    from berth.errors import BerthError

    apply_ec_fallbacks(os.environ)
    app = __getattr__("app")
    _register_all(app)
    try:
        if args and args[0].partition("=")[0] in GLOBAL_OPTIONS:
            args = hoist_options(app, args)
            _fast(args)
        app(args=args, prog_name="berth", standalone_mode=True)
    except BerthError as err:
        sys.exit(report(err))
    except OSError as err:
        sys.exit(report_os_error(err))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
