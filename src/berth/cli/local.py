"""Verbs of the local backend alone: the boot-time supervisor (`systemd-unit`, `supervise`)
and `attach`, which also reaches a bare `berth run`'s console socket (`attach --socket`)
where no backend is involved."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from berth.cli.deploy import BackendOpt, RepoOpt, TargetOpt


def register(app: typer.Typer) -> None:
    @app.command()
    def attach(name: Annotated[str | None, typer.Argument(help="Instance name.")] = None,
               socket: Annotated[Path | None, typer.Option(
                   "--socket", help="Console socket of a bare `berth run`.")] = None,
               repo: RepoOpt = None, backend: BackendOpt = "local",
               target: TargetOpt = None) -> None:
        """Attach the terminal to an instance's IOC shell (Ctrl-] detaches)."""
        from berth.errors import BerthError

        if socket is not None:
            from berth.deploy.local.backend import attach_socket

            raise typer.Exit(attach_socket(socket))
        if name is None:
            raise BerthError("give an instance name or --socket PATH")
        from berth.deploy import get_backend

        raise typer.Exit(get_backend(backend, repo, target).attach(name))

    @app.command("systemd-unit")
    def systemd_unit(target: TargetOpt = None) -> None:
        """Print a systemd unit that runs the local supervisor at boot (see
        docs/local-backend.md)."""
        from berth.deploy.local.systemd import unit_text

        sys.stdout.write(unit_text(Path(target) if target else None))

    @app.command("supervise", hidden=True)
    def supervise(target: TargetOpt = None) -> None:
        """Run the local supervisor in the foreground (what the systemd unit starts)."""
        from berth.deploy.local.systemd import run_foreground

        run_foreground(Path(target) if target else None)
