"""`berth run CONFIG_DIR`: start an IOC instance from its config folder.

Two entry points reading the same option table (`berth.run.launch.RUN_OPTIONS`): the Typer
command (for `berth --help`, `berth run --help`, usage mistakes) and `fast`
(`berth.run.launch.main`), which every ordinary `berth run` takes: an IOC's start-up should
not pay for importing typer.
"""


import sys
from pathlib import Path

TYPE_CHECKING = False  # (typing is not imported on the IOC start-up path)
if TYPE_CHECKING:
    import typer


def fast(argv: list[str]) -> int | None:
    """`berth run ARGS` without typer; None hands `--help` and anything unusual to typer. See
    `berth.cli.main.FAST_COMMANDS`."""
    from berth.run.launch import main

    return main(argv[1:])


def register(app: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from berth import paths
    from berth.run.launch import RUN_OPTIONS, RunOptions, exec_launch, plan, prepare_runtime

    def envvar(option: str) -> str | None:
        return RUN_OPTIONS[option][2] or None

    @app.command("run")
    def run(
        config_dir: Annotated[Path, typer.Argument(help="The instance config folder.")],
        ioc_dir: Annotated[Path, typer.Option(
            "--ioc-dir", envvar=envvar("--ioc-dir"),
            help="Generic IOC folder; without bin/linux-x86_64/ioc berth's embedded soft IOC "
            "runs.")] = Path(paths.IOC_DIR),
        runtime_dir: Annotated[Path, typer.Option(
            "--runtime-dir", envvar=envvar("--runtime-dir"),
            help="Where st.cmd, ioc.subst and ioc.db are generated.")] = Path(paths.RUNTIME_DIR),
        ioc_name: Annotated[str | None, typer.Option(
            "--ioc-name", envvar=envvar("--ioc-name"),
            help="Default: the folder holding config/, else the config folder's name.")] = None,
        console_socket: Annotated[Path | None, typer.Option(
            "--console-socket", help="IOC shell socket (default <runtime>/console.sock).")] = None,
        defs: Annotated[list[Path] | None, typer.Option(
            "--defs", help="Extra support YAML (repeatable).")] = None,
        no_wait: Annotated[bool, typer.Option(
            "--no-wait", help="Do not wait for the devices of wait_list.yaml.")] = False,
        strict: Annotated[bool, typer.Option(
            "--strict", help="An undefined macro in the substitutions is an error.")] = False,
        prebuilt: Annotated[Path | None, typer.Option(
            "--prebuilt", help="Start from the outputs built ahead in DIR (the local backend "
            "builds them at deploy time) when they were made for this start.")] = None,
    ) -> None:
        """Start an IOC instance: start.sh > ioc.py > instance YAML > st.cmd (it keeps this PID).

        A config folder with ioc.py holds a Python soft IOC (pythonSoftIOC): berth runs it with
        the Python of a virtual environment holding softioc and what requirements.txt next to
        it lists, built (pip, with progress lines) in berth's user cache and reused while the
        requirements do not change. Logs, attach (its Python shell), restart and readiness work
        as for any IOC; BERTH_DATA_DIR/AUTOSAVE_DIR name its data folder.
        """
        options = RunOptions.from_values(config_dir, ioc_dir, runtime_dir, ioc_name,
                                         console_socket, list(defs or []), no_wait, strict,
                                         prebuilt=prebuilt)
        launch = plan(options)
        prepare_runtime(launch)
        exec_launch(launch)  # the runtime folder is built while the IOC process starts

    def runtime_default() -> Path:
        import os

        return Path(os.environ.get("RUNTIME_DIR") or paths.RUNTIME_DIR)

    @app.command("ioc-alive")
    def ioc_alive(
        runtime_dir: Annotated[Path | None, typer.Option(
            "--runtime-dir", show_default=False,
            help="The IOC's runtime folder (default $RUNTIME_DIR, else /epics/runtime).")] = None,
        pv: Annotated[str | None, typer.Option(
            "--pv", help="The PV to ask for (default: the one the IOC's runner probes).")
        ] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 1.0,
    ) -> None:
        """Liveness probe (the image's liveness.sh): exit 0 iff the IOC started here answers a
        Channel Access search for its own PV."""
        import os

        from berth.run.ready import alive

        ok, why = alive(runtime_dir or runtime_default(), dict(os.environ), pv, timeout)
        print(why, file=sys.stdout if ok else sys.stderr)
        raise typer.Exit(0 if ok else 1)

    @app.command("ioc-stop")
    def ioc_stop(
        runtime_dir: Annotated[Path | None, typer.Option(
            "--runtime-dir", show_default=False,
            help="The IOC's runtime folder (default $RUNTIME_DIR, else /epics/runtime).")] = None,
        timeout: Annotated[float, typer.Option(
            "--timeout", help="Seconds to wait for the IOC to end.")] = 10.0,
    ) -> None:
        """preStop hook (the image's stop.sh): end the IOC started here cleanly (SIGTERM to its
        runner) and wait until it has ended."""
        from berth.run.ready import stop

        ok, why = stop(runtime_dir or runtime_default(), timeout)
        print(why, file=sys.stdout if ok else sys.stderr)
        raise typer.Exit(0 if ok else 1)
