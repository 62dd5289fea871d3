"""Operator verbs, the same on every backend: parse, call one Backend method, print.

Repository from -r/--repo or BERTH_REPO (default: the current directory), backend from
-b/--backend or BERTH_BACKEND (default local), target from -t/--target or BERTH_TARGET.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from berth.cli.common import print_json, print_table

if TYPE_CHECKING:
    from berth.deploy import Backend, InstanceStatus, Release
    from berth.errors import Problem

RepoOpt = Annotated[
    Path | None,
    typer.Option("-r", "--repo", envvar="BERTH_REPO", show_default=False,
                 help="Services repository (default: the current directory)."),
]
BackendOpt = Annotated[
    str,
    typer.Option("-b", "--backend", envvar="BERTH_BACKEND",
                 help="Where instances run: local, compose, k8s or argocd."),
]
TargetOpt = Annotated[
    str | None,
    typer.Option("-t", "--target", envvar="BERTH_TARGET", show_default=False,
                 help="Backend target (local: the state dir; k8s: the namespace/context)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NameArg = Annotated[str, typer.Argument(help="Instance name (a folder under services/).")]
VersionArg = Annotated[str | None, typer.Argument(help="Version (a git tag).")]
AllOpt = Annotated[bool, typer.Option(
    "--all", help="Every repository known to the state folder, not only this one.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Deploy without running the checks of `berth check` first.")]


def _backend(backend: str, repo: Path | None, target: str | None, all_repos: bool = False,
             latest: bool = False, force: bool = False) -> Backend:
    from berth.deploy import VerbOptions, get_backend

    if force:
        print("berth: --force: deploying without the checks of `berth check`", file=sys.stderr)
    options = VerbOptions(all_repos=all_repos, latest=latest, force=force, preflight=_preflight)
    return get_backend(backend, repo, target, options)


def _preflight(release: Path, name: str) -> list[Problem]:
    """`berth check` of one instance of a release folder (what deploys run first)."""
    from berth.check import check_repo

    return check_repo(release, [name]).problems


def _releases(releases: list[Release], as_json: bool) -> None:
    if as_json:
        print_json([r.to_json() for r in releases])
        return
    print_table(["name", "version", "deployed", "current", "note"],
                [[r.service, r.version, r.deployed_at, "*" if r.current else "", r.note]
                 for r in releases])


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _status_table(rows: list[InstanceStatus]) -> None:
    print_table(["name", "state", "version", "pid", "uptime", "restarts", "reason"],
                [[r.name, r.state, r.version or "", r.pid or "", _uptime(r.uptime),
                  r.restarts, r.reason] for r in rows])


def _new_group(app: typer.Typer) -> typer.Typer:
    """The `berth new` group, shared with other modules that add templates to it (whoever
    registers first creates it)."""
    for group in app.registered_groups:
        if group.name == "new" and group.typer_instance is not None:
            return group.typer_instance
    new = typer.Typer(help="Start new projects from templates: services repositories, IOC "
                      "instances, deployments.", no_args_is_help=True)
    app.add_typer(new, name="new")
    return new


def register(app: typer.Typer) -> None:  # noqa: C901 - one short function per verb
    @app.command("list")
    def list_(repo: RepoOpt = None, as_json: JsonOpt = False) -> None:
        """List the services of a repository with their latest version."""
        from berth.deploy.services import ServicesRepo

        services = ServicesRepo.load(repo or Path.cwd())
        rows: list[dict[str, Any]] = []
        for name, service in sorted(services.services.items()):
            versions = services.versions(name) if services.git.is_repo else []
            rows.append({"name": name, "latest": versions[-1] if versions else None,
                         "ioc": service.is_ioc, "image": service.image})
        if as_json:
            print_json(rows)
        else:
            print_table(["name", "latest", "ioc", "image"],
                        [[r["name"], r["latest"] or "-", "yes" if r["ioc"] else "",
                          r["image"] or ""] for r in rows])

    @app.command()
    def instances(name: NameArg, repo: RepoOpt = None, as_json: JsonOpt = False) -> None:
        """List the versions (git tags) of one service, oldest first."""
        from berth.deploy.services import ServicesRepo

        services = ServicesRepo.load(repo or Path.cwd())
        versions = services.versions(name) if services.git.is_repo else []
        services.service(name)  # unknown name: an error with suggestions
        if as_json:
            print_json(versions)
        else:
            for version in versions:
                print(version)

    @app.command()
    def ps(repo: RepoOpt = None, backend: BackendOpt = "local", target: TargetOpt = None,
           as_json: JsonOpt = False, all_repos: AllOpt = False) -> None:
        """Show the repository's instances: state, version, pid, uptime, restarts."""
        rows = _backend(backend, repo, target, all_repos).ps()
        if as_json:
            print_json([r.to_json() for r in rows])
        else:
            _status_table(rows)

    @app.command()
    def deploy(name: NameArg, version: VersionArg = None, repo: RepoOpt = None,
               backend: BackendOpt = "local", target: TargetOpt = None,
               as_json: JsonOpt = False, force: ForceOpt = False) -> None:
        """Deploy a version of an instance (default: its latest tag, or the working copy when
        the repository has no tags), after checking it."""
        _releases([_backend(backend, repo, target, force=force).deploy(name, version)], as_json)

    @app.command("deploy-local")
    def deploy_local(folder: Annotated[Path, typer.Argument(help="services/<name> folder.")],
                     backend: BackendOpt = "local", target: TargetOpt = None,
                     as_json: JsonOpt = False, force: ForceOpt = False) -> None:
        """Deploy an instance from a working copy (not a tag), after checking it."""
        root = folder.resolve().parent.parent
        _releases([_backend(backend, root, target, force=force).deploy_local(folder)], as_json)

    @app.command()
    def start(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
              target: TargetOpt = None) -> None:
        """Start a deployed instance (stays started across restarts)."""
        _backend(backend, repo, target).start(name)

    @app.command()
    def stop(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
             target: TargetOpt = None) -> None:
        """Stop an instance (stays stopped across restarts)."""
        _backend(backend, repo, target).stop(name)

    @app.command()
    def restart(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
                target: TargetOpt = None) -> None:
        """Restart an instance."""
        _backend(backend, repo, target).restart(name)

    @app.command()
    def delete(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
               target: TargetOpt = None) -> None:
        """Remove an instance from the backend."""
        _backend(backend, repo, target).delete(name)

    @app.command()
    def logs(name: NameArg,
             follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
             previous: Annotated[bool, typer.Option("--previous",
                                                    help="The previous run's output.")] = False,
             repo: RepoOpt = None, backend: BackendOpt = "local", target: TargetOpt = None) -> None:
        """Print an instance's output (current run)."""
        code = _backend(backend, repo, target).logs(name, follow=follow, previous=previous)
        raise typer.Exit(code)

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
        raise typer.Exit(_backend(backend, repo, target).attach(name))

    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def exec(name: NameArg,
             command: Annotated[list[str] | None, typer.Argument(help="Command (after --).")]
             = None,
             repo: RepoOpt = None, backend: BackendOpt = "local", target: TargetOpt = None) -> None:
        """Run a command where the instance runs: `berth exec NAME -- CMD...`."""
        raise typer.Exit(_backend(backend, repo, target).exec(name, command or []))

    @app.command()
    def rollback(name: NameArg, version: VersionArg = None, repo: RepoOpt = None,
                 backend: BackendOpt = "local", target: TargetOpt = None,
                 as_json: JsonOpt = False, force: ForceOpt = False) -> None:
        """Go back to an earlier deployed version (default: the previous one); it stays there
        until the next `deploy`."""
        _releases([_backend(backend, repo, target, force=force).rollback(name, version)],
                  as_json)

    @app.command()
    def history(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
                target: TargetOpt = None, as_json: JsonOpt = False) -> None:
        """What was deployed for an instance, and when."""
        _releases(_backend(backend, repo, target).history(name), as_json)

    @app.command()
    def up(repo: RepoOpt = None, backend: BackendOpt = "local", target: TargetOpt = None,
           as_json: JsonOpt = False, all_repos: AllOpt = False,
           latest: Annotated[bool, typer.Option(
               "--latest", help="Also move deployed instances to their latest version.")]
           = False, force: ForceOpt = False) -> None:
        """Start the repository's instances as deployed; deploy (checked) those never deployed.
        Deployed instances keep their version unless --latest."""
        _releases(_backend(backend, repo, target, all_repos, latest, force).up(), as_json)

    @app.command()
    def down(repo: RepoOpt = None, backend: BackendOpt = "local",
             target: TargetOpt = None, all_repos: AllOpt = False) -> None:
        """Stop the repository's instances (--all: every instance of the state folder)."""
        stopped = _backend(backend, repo, target, all_repos).down()
        if stopped is not None:
            print("\n".join(f"stopped {name}" for name in stopped) or "nothing was running")

    @app.command()
    def template(name: NameArg, version: VersionArg = None, repo: RepoOpt = None,
                 backend: BackendOpt = "local", target: TargetOpt = None) -> None:
        """Print what deploying would apply, without applying it."""
        sys.stdout.write(_backend(backend, repo, target).template(name, version))

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

    new = _new_group(app)

    @new.command("services")
    def new_services(folder: Annotated[Path, typer.Argument(help="Folder to create.")],
                     layout: Annotated[str, typer.Option(
                         "--layout", help="helm or compose.")] = "helm") -> None:
        """Make a working services repository with one soft IOC example."""
        print(_new_services(folder, layout))

    @new.command("ioc")
    def new_ioc(name: Annotated[str, typer.Argument(help="New instance name.")],
                repo: RepoOpt = None) -> None:
        """Add an IOC instance to a services repository."""
        print(_new_ioc(repo or Path.cwd(), name))

    @new.command("deployment")
    def new_deployment(folder: Annotated[Path, typer.Argument(help="Folder to create.")]) -> None:
        """Make an ArgoCD deployment repository."""
        from berth.deploy.kube import argocd

        created = argocd.new_deployment(folder)
        print(f"created deployment repository {folder.resolve()}")
        for path in created or []:
            print(f"  {path}")


# -- berth new ------------------------------------------------------------------------------------
NEW_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "new"
INSTANCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label, as k8s needs


def _fill(text: str, words: dict[str, str]) -> str:
    for key, value in words.items():
        text = text.replace(f"__{key}__", value)
    return text


def _render_tree(source: Path, dest: Path, words: dict[str, str]) -> dict[Path, str]:
    return {dest / _fill(str(path.relative_to(source)), words): _fill(path.read_text(), words)
            for path in sorted(source.rglob("*")) if path.is_file()}


def _new_services(folder: Path, layout: str) -> str:
    """Create a services repository with one soft IOC instance; returns a summary."""
    from berth.errors import BerthError, Location, Problem
    from berth.fsutil import atomic_write_all

    if layout not in ("helm", "compose"):
        raise BerthError(Problem(f"unknown layout '{layout}': expected helm or compose",
                                 field="--layout"))
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()):
        raise BerthError(Problem("folder exists and is not empty", Location(folder)))
    beamline = re.sub(r"[^a-z0-9-]", "-", folder.name.lower()).removesuffix("-services").strip("-")
    beamline = beamline or "bl00x"
    files = _render_tree(NEW_ASSETS / layout, folder, {"BEAMLINE": beamline})
    atomic_write_all(files)
    created = _new_ioc(folder, f"{beamline}-ea-test-01")
    return f"created {layout} services repository {folder}\n{created}"


def _new_ioc(root: Path, name: str) -> str:
    """Add an IOC instance (a soft IOC example) to a services repository."""
    from berth.deploy.services import ServicesRepo
    from berth.errors import BerthError, Location, Problem
    from berth.fsutil import atomic_write_all

    if not INSTANCE_NAME.match(name):
        raise BerthError(Problem(f"invalid instance name '{name}': use lower-case letters, "
                                 "digits and '-' (at most 63)", field="NAME"))
    repo = ServicesRepo.load(root)
    target = repo.root / "services" / name
    if target.exists() or name in repo.services:
        raise BerthError(Problem(f"instance '{name}' already exists", Location(target)))
    words = {"NAME": name, "PREFIX": name.upper()}
    files = _render_tree(NEW_ASSETS / "ioc" / "config", target / "config", words)
    if repo.layout == "helm":
        files.update(_render_tree(NEW_ASSETS / "ioc", target, words))
    else:
        files.update(_render_tree(NEW_ASSETS / "ioc-compose", target, words))
        top = repo.root / "compose.yaml"
        if not top.exists():
            top = repo.root / "compose.yml"
        files[top] = _add_include(top.read_text(), f"services/{name}/compose.yml", top)
    atomic_write_all(files)
    return f"created instance {name} in {target}"


def _add_include(text: str, entry: str, file: Path) -> str:
    """Append `entry` to the top-level `include:` list of a compose file, keeping comments."""
    from berth.errors import BerthError, Location, Problem

    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^include:\s*(#.*)?$", line):
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or
                                        not lines[end].strip()):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1
            lines.insert(end, f"  - {entry}")
            return "\n".join(lines) + "\n"
    if re.search(r"^include:", text, re.MULTILINE):
        raise BerthError(Problem("cannot add to an inline 'include:' list; add "
                                 f"{entry} by hand", Location(file)))
    return text.rstrip("\n") + f"\n\ninclude:\n  - {entry}\n"
