"""`berth serve` (the web dashboard) and `berth pv find` (which instance serves a PV).

Starlette and uvicorn (the `serve` extra) are imported only when the dashboard starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from berth.cli.common import print_json, print_table
from berth.cli.deploy import AllOpt, BackendOpt, JsonOpt, TargetOpt

ReposOpt = Annotated[list[Path] | None, typer.Option(
    "-r", "--repo", envvar="BERTH_REPO", show_default=False,
    help="Services repository (repeatable: every instance of each; default: the current "
    "directory).")]


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(repo: ReposOpt = None, backend: BackendOpt = "local", target: TargetOpt = None,
              all_repos: AllOpt = False,
              host: Annotated[str, typer.Option("--host", help="Address to listen on; beyond "
                                                "127.0.0.1 needs --token or --users.")]
              = "127.0.0.1",
              port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8800,
              token: Annotated[str | None, typer.Option(
                  "--token", envvar="BERTH_SERVE_TOKEN", show_default=False,
                  help="A shared secret giving the operator role (Bearer, or as the Basic "
                  "password).")] = None,
              users: Annotated[Path | None, typer.Option(
                  "--users", show_default=False,
                  help="YAML user file: name: {role: read-only|operator, password: scrypt "
                  "hash}.")] = None,
              webhook: Annotated[list[str] | None, typer.Option(
                  "--webhook", show_default=False,
                  help="POST alerts here (repeatable); slack:URL or teams:URL for their "
                  "payloads.")] = None,
              alert_settle: Annotated[float, typer.Option(
                  "--alert-settle", min=0, help="Seconds an incident's condition must be "
                  "over before its recovery is sent.")] = 30.0,
              alert_grace: Annotated[float, typer.Option(
                  "--alert-grace", min=0, help="Seconds an IOC may not answer, or be "
                  "stopped against its desired state, before an alert.")] = 30.0,
              hash_password: Annotated[bool, typer.Option(
                  "--hash-password", help="Read a password and print its hash for --users, "
                  "then exit.")] = False,
              install_unit: Annotated[bool, typer.Option(
                  "--install-unit", help="Write a systemd user unit running berth serve with "
                  "these options (~/.config/systemd/user/berth-serve.service; a --token goes "
                  "to ~/.config/berth/serve.env, mode 0600), then exit.")] = False) -> None:
        """Serve the operator's dashboard: every instance live, logs, screens over HTTP
        (/opi/<ioc>/<file>), PV search, actions, /metrics and /healthz."""
        if hash_password:
            from berth.serve.security import hash_password as make_hash

            print(make_hash(typer.prompt("password", hide_input=True,
                                         confirmation_prompt=True)))
            return
        repos = list(repo or [Path.cwd()])
        if install_unit:
            from berth.serve import unit
            from berth.serve.security import Guard, load_users

            # the server would refuse these options at boot: refuse them now
            Guard(host, token, load_users(users) if users is not None else None)
            argv = unit.serve_argv(repos, backend, target, all_repos, host, port, users,
                                   webhook or [], alert_settle, alert_grace)
            for path in unit.install(argv, token):
                print(f"wrote {path}")
            print(f"start it: systemctl --user daemon-reload && systemctl --user enable --now "
                  f"{unit.UNIT_NAME}")
            return
        from berth.serve.main import run_server

        run_server(repos, backend, target, all_repos, host, port, token,
                   users, webhook or [], alert_settle, alert_grace)

    pv = typer.Typer(help="PVs of the running instances.", no_args_is_help=True)
    app.add_typer(pv, name="pv")

    @pv.command("find")
    def find(pattern: Annotated[str, typer.Argument(
                 help="A PV name, glob (BL01B-*:X*) or regex (/.../ or re:...).")],
             repo: ReposOpt = None, backend: BackendOpt = "local", target: TargetOpt = None,
             as_json: JsonOpt = False, all_repos: AllOpt = False) -> None:
        """Which instance serves the PVs matching PATTERN, and their record types."""
        from berth.serve import pvs
        from berth.serve.fleet import Fleet

        fleet = Fleet(backend, list(repo or [Path.cwd()]), target, all_repos)
        found = pvs.find(pvs.index(fleet), pattern)
        if as_json:
            print_json([e.to_json() for e in found])
            return
        print_table(["pv", "record type", "instance", "screen"],
                    [[e.pv, e.record_type, e.instance, e.screen or ""] for e in found])
        if not found:
            raise typer.Exit(1)
