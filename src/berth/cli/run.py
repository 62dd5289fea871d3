"""`berth run CONFIG_DIR`: start an IOC instance from its config folder.

Two entry points with the same options: the Typer command (for `berth --help`, `berth run
--help`, usage mistakes) and `fast` (`berth.cli.fastargs`), which every ordinary `berth run`
takes: an IOC's start-up should not pay for importing typer.
"""


import os
from pathlib import Path

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    import typer


def _start(config_dir: Path, ioc_dir: Path, runtime_dir: Path, ioc_name: str | None,
           console_socket: Path | None, defs: list[Path], no_wait: bool, strict: bool) -> None:
    from berth.run.launch import RunOptions, exec_launch, plan

    options = RunOptions(
        config_dir=config_dir, ioc_dir=ioc_dir, runtime_dir=runtime_dir,
        ioc_name=ioc_name or None, console_socket=console_socket, defs=defs,
        wait=not no_wait, strict=strict,
    )
    exec_launch(plan(options))  # the runtime folder is built while the IOC process starts


_RUN_OPTIONS = {"--ioc-dir": ("ioc_dir", "one"), "--runtime-dir": ("runtime_dir", "one"),
                "--ioc-name": ("ioc_name", "one"), "--console-socket": ("console_socket", "one"),
                "--defs": ("defs", "many"), "--no-wait": ("no_wait", "flag"),
                "--strict": ("strict", "flag")}


def fast(argv: list[str]) -> int | None:
    """`berth run ARGS` without typer (same options as the Typer command); None hands `--help`
    and anything unusual to typer. See `berth.cli.main.FAST_COMMANDS`."""
    from berth.cli.fastargs import parse

    opts = parse(argv[1:], _RUN_OPTIONS, 1)
    if opts is None:
        return None
    env, one = os.environ, opts.one
    _start(Path(opts.positional[0]), Path(one.get("ioc_dir") or env.get("IOC", "/epics/ioc")),
           Path(one.get("runtime_dir") or env.get("RUNTIME_DIR", "/epics/runtime")),
           one.get("ioc_name", env.get("IOC_NAME")), opts.path("console_socket"),
           opts.paths("defs"), "no_wait" in opts.flags, "strict" in opts.flags)
    return 0  # not reached: _start exec's the IOC


def register(app: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    @app.command("run")
    def run(
        config_dir: Annotated[Path, typer.Argument(help="The instance config folder.")],
        ioc_dir: Annotated[Path, typer.Option(
            "--ioc-dir", envvar="IOC",
            help="Generic IOC folder; without bin/linux-x86_64/ioc berth's embedded soft IOC "
            "runs.")] = Path("/epics/ioc"),
        runtime_dir: Annotated[Path, typer.Option(
            "--runtime-dir", envvar="RUNTIME_DIR",
            help="Where st.cmd, ioc.subst and ioc.db are generated.")] = Path("/epics/runtime"),
        ioc_name: Annotated[str | None, typer.Option(
            "--ioc-name", envvar="IOC_NAME",
            help="Default: the folder holding config/, else the config folder's name.")] = None,
        console_socket: Annotated[Path | None, typer.Option(
            "--console-socket", help="IOC shell socket (default <runtime>/console.sock).")] = None,
        defs: Annotated[list[Path] | None, typer.Option(
            "--defs", help="Extra support YAML (repeatable).")] = None,
        no_wait: Annotated[bool, typer.Option(
            "--no-wait", help="Do not wait for the devices of wait_list.yaml.")] = False,
        strict: Annotated[bool, typer.Option(
            "--strict", help="An undefined macro in the substitutions is an error.")] = False,
    ) -> None:
        """Start an IOC instance: start.sh > instance YAML > st.cmd (the IOC keeps this PID)."""
        _start(config_dir, ioc_dir, runtime_dir, ioc_name, console_socket, list(defs or []),
               no_wait, strict)
