"""`berth new`: the one group that starts projects from templates (berth.scaffold)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Print the files it would write, and write nothing.")]


def _created(what: str, folder: Path, files: list[Path], dry_run: bool) -> None:
    from berth.cli.common import dry_run as print_dry_run

    if dry_run:
        print_dry_run([f"create {what} {folder}"] + [f"write {path}" for path in files])
        return
    print(f"created {what} {folder} ({len(files)} files)")


def register(app: typer.Typer) -> None:
    new = typer.Typer(help="Start new projects from templates: services repositories, IOC "
                      "instances, ArgoCD deployments, Generic IOCs.", no_args_is_help=True)
    app.add_typer(new, name="new")

    @new.command("services")
    def services(folder: Annotated[Path, typer.Argument(help="Folder to create.")],
                 layout: Annotated[str, typer.Option("--layout", help="helm or compose.")] =
                 "helm",
                 dry_run: DryRunOpt = False) -> None:
        """Make a services repository (a git repository with a first commit) with one soft IOC
        instance, the instances' JSON schema in .berth/, and CI that runs `berth check`."""
        from berth.scaffold import new_services

        files = new_services(folder, layout, dry_run)
        _created(f"{layout} services repository", folder.resolve(), files, dry_run)

    @new.command("ioc")
    def ioc(name: Annotated[str, typer.Argument(help="New instance name.")],
            repo: Annotated[Path | None, typer.Option(
                "-r", "--repo", envvar="BERTH_REPO", show_default=False,
                help="Services repository (default: the current directory).")] = None,
            dry_run: DryRunOpt = False) -> None:
        """Add a soft IOC instance to a services repository (and refresh .berth/ schema)."""
        from berth.scaffold import new_ioc

        root = (repo or Path.cwd()).resolve()
        files = new_ioc(root, name, dry_run)
        _created(f"instance {name} in", root / "services" / name, files, dry_run)

    @new.command("service")
    def service(kind: Annotated[str, typer.Argument(help="What to add: dashboard.")],
                name: Annotated[str | None, typer.Option(
                    "--name", show_default=False,
                    help="Service name (default berth-KIND).")] = None,
                repo: Annotated[Path | None, typer.Option(
                    "-r", "--repo", envvar="BERTH_REPO", show_default=False,
                    help="Services repository (default: the current directory).")] = None,
                dry_run: DryRunOpt = False) -> None:
        """Add a service that is not an IOC: `dashboard` runs `berth serve` beside the IOCs
        (Helm layout: a chart with a Deployment, ClusterIP Service, token Secret and RBAC;
        compose layout: a compose service)."""
        from berth.scaffold import new_service

        root = (repo or Path.cwd()).resolve()
        files = new_service(root, kind, name, dry_run)
        _created(f"{kind} service", root / "services" / (name or f"berth-{kind}"), files,
                 dry_run)

    @new.command("deployment")
    def deployment(folder: Annotated[Path, typer.Argument(help="Folder to create.")],
                   dry_run: DryRunOpt = False) -> None:
        """Make an ArgoCD deployment repository."""
        from berth.scaffold import new_deployment

        files = new_deployment(folder, dry_run)
        _created("deployment repository", folder.resolve(), files, dry_run)

    @new.command("generic-ioc")
    def generic_ioc(
        name: Annotated[str, typer.Argument(help="Project name, e.g. ioc-adaravis.")],
        directory: Annotated[Path | None, typer.Option(
            "--dir", help="Where to create it (default ./NAME); must not exist or be empty.")] =
        None,
        modules: Annotated[str, typer.Option(
            "--modules", help="Support modules to compile, comma separated.")] =
        "asyn,autosave,iocStats",
        description: Annotated[str, typer.Option("--description")] = "",
        dry_run: DryRunOpt = False,
    ) -> None:
        """Create a C++ Generic IOC project: Dockerfile, support modules, CI, devcontainer."""
        from berth.scaffold import new_generic_ioc

        target = (directory or Path.cwd() / name).resolve()
        files = new_generic_ioc(name, target,
                                [m.strip() for m in modules.split(",") if m.strip()],
                                description, dry_run=dry_run)
        _created("Generic IOC project", target, files, dry_run)
