"""Operator verbs, the same on every backend: parse, call one Backend method, print.

Repository from -r/--repo or BERTH_REPO (default: the current directory), backend from
-b/--backend or BERTH_BACKEND (default local), target from -t/--target or BERTH_TARGET.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from berth.cli.common import (
    complete_instance,
    complete_version,
    confirm,
    dry_run,
    print_json,
    print_table,
)

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
NameArg = Annotated[str, typer.Argument(help="Instance name (a folder under services/).",
                                         autocompletion=complete_instance)]
NamesArg = Annotated[str, typer.Argument(
    help="Instance name (a folder under services/); several separated by commas.",
    autocompletion=complete_instance)]
VersionArg = Annotated[str | None, typer.Argument(help="Version (a git tag).",
                                                  autocompletion=complete_version)]
AllOpt = Annotated[bool, typer.Option(
    "--all", help="Every repository known to the state folder, not only this one.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Deploy without running the checks of `berth check` first.")]
YesOpt = Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation "
                                      "(needed when not on a terminal).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be done, and "
                                         "change nothing.")]
WaitOpt = Annotated[bool, typer.Option(
    "--wait", help="Return once every instance named answers (fail with its log if not).")]
TimeoutOpt = Annotated[float, typer.Option(
    "--timeout", min=0, help="Seconds --wait waits for readiness.")]
DEFAULT_WAIT = 60.0


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


def _where(backend: str, target: str | None) -> str:
    return f"{backend} backend" + (f" (target {target})" if target else "")


def _would(backend: str, repo: Path | None, target: str | None, verb: str,
           name: str | None = None, version: str | None = None) -> None:
    """--dry-run: say what `verb` would do, reading the services repository only (names are
    checked as the verb would); nothing is asked of the backend, so nothing changes."""
    from berth.deploy.services import ServicesRepo

    where = _where(backend, target)
    if backend == "argocd":  # its -r is the deployment repository: nothing more to resolve
        dry_run([f"{verb} {name or 'every instance'}"
                 f"{f' at {version}' if version else ''} on the {where}"])
        return
    services = ServicesRepo.load(repo or Path.cwd())
    if verb == "up":
        started = services.services if backend == "k8s" else services.iocs  # k8s: every chart
        dry_run([f"start {n} on the {where} (deploying it first if it never was)"
                 for n in sorted(started)])
        return
    if verb == "down":
        dry_run([f"stop every instance on the {where}"])
        return
    assert name is not None
    services.service(name)  # an unknown name: the verb's own error, with suggestions
    if verb == "deploy" and version is None:
        versions = services.versions(name) if services.git.is_repo else []
        version = versions[-1] if versions else "the working copy"
    dry_run([f"{verb} {name}{f' at {version}' if version else ''} on the {where}"])


def _releases(releases: list[Release], as_json: bool) -> None:
    if as_json:
        print_json([r.to_json() for r in releases])
        return
    print_table(["name", "version", "deployed", "current", "note"],
                [[r.service, r.version, r.deployed_at, "*" if r.current else "", r.note]
                 for r in releases])


def _wait(backend: Backend, names: list[str], wait: bool, timeout: float) -> None:
    if not wait:
        return
    from berth.deploy.wait import wait_ready

    if wait_ready(backend, names, timeout):
        raise typer.Exit(1)


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
    print_table(["name", "state", "ready", "version", "pid", "uptime", "restarts", "reason"],
                [[r.name, r.state, r.health, r.version or "", r.pid or "", _uptime(r.uptime),
                  r.restarts, r.reason] for r in rows])


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
               as_json: JsonOpt = False, force: ForceOpt = False,
               dry: DryRunOpt = False, wait: WaitOpt = False,
               timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Deploy a version of an instance (default: its latest tag, or the working copy when
        the repository has no tags), after checking it."""
        if dry:
            return _would(backend, repo, target, "deploy", name, version)
        chosen = _backend(backend, repo, target, force=force)
        _releases([chosen.deploy(name, version)], as_json)
        _wait(chosen, [name], wait, timeout)

    @app.command("deploy-local")
    def deploy_local(folder: Annotated[Path, typer.Argument(help="services/<name> folder.")],
                     backend: BackendOpt = "local", target: TargetOpt = None,
                     as_json: JsonOpt = False, force: ForceOpt = False,
                     dry: DryRunOpt = False, wait: WaitOpt = False,
                     timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Deploy an instance from a working copy (not a tag), after checking it."""
        root = folder.resolve().parent.parent
        if dry:
            return _would(backend, root, target, "deploy the working copy of", folder.name)
        chosen = _backend(backend, root, target, force=force)
        _releases([chosen.deploy_local(folder)], as_json)
        _wait(chosen, [folder.resolve().name], wait, timeout)

    @app.command()
    def start(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
              target: TargetOpt = None, dry: DryRunOpt = False, wait: WaitOpt = False,
              timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Start a deployed instance (stays started across restarts)."""
        if dry:
            return _would(backend, repo, target, "start", name)
        chosen = _backend(backend, repo, target)
        chosen.start(name)
        _wait(chosen, [name], wait, timeout)

    @app.command()
    def stop(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
             target: TargetOpt = None, dry: DryRunOpt = False) -> None:
        """Stop an instance (stays stopped across restarts)."""
        if dry:
            return _would(backend, repo, target, "stop", name)
        _backend(backend, repo, target).stop(name)

    @app.command()
    def restart(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
                target: TargetOpt = None, dry: DryRunOpt = False, wait: WaitOpt = False,
                timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Restart an instance."""
        if dry:
            return _would(backend, repo, target, "restart", name)
        chosen = _backend(backend, repo, target)
        chosen.restart(name)
        _wait(chosen, [name], wait, timeout)

    @app.command()
    def delete(name: NameArg, repo: RepoOpt = None, backend: BackendOpt = "local",
               target: TargetOpt = None, yes: YesOpt = False, dry: DryRunOpt = False) -> None:
        """Remove an instance from the backend (asks first on a terminal)."""
        if dry:
            return _would(backend, repo, target, "delete", name)
        confirm(f"delete instance {name} from the {_where(backend, target)}", yes)
        _backend(backend, repo, target).delete(name)

    @app.command()
    def logs(name: NameArg,
             follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
             previous: Annotated[bool, typer.Option("--previous",
                                                    help="The previous run's output.")] = False,
             tail: Annotated[int | None, typer.Option(
                 "--tail", "-n", help="Only the last N lines.", min=0)] = None,
             since: Annotated[str | None, typer.Option(
                 "--since", help="Only lines newer than this (90s, 10m, 2h, 1d).")] = None,
             repo: RepoOpt = None, backend: BackendOpt = "local", target: TargetOpt = None) -> None:
        """Print an instance's output (current run); colour codes are stripped when the output
        is not a terminal."""
        from berth.deploy.logs import LogQuery, parse_duration

        query = LogQuery(follow, previous, tail, None if since is None else parse_duration(since))
        raise typer.Exit(_backend(backend, repo, target).logs(name, query))

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
                 as_json: JsonOpt = False, force: ForceOpt = False,
                 dry: DryRunOpt = False, wait: WaitOpt = False,
                 timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Go back to an earlier deployed version (default: the previous one); it stays there
        until the next `deploy`."""
        if dry:
            return _would(backend, repo, target, "roll back", name, version)
        chosen = _backend(backend, repo, target, force=force)
        _releases([chosen.rollback(name, version)], as_json)
        _wait(chosen, [name], wait, timeout)

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
           = False, force: ForceOpt = False, yes: YesOpt = False,
           dry: DryRunOpt = False, wait: WaitOpt = False,
           timeout: TimeoutOpt = DEFAULT_WAIT) -> None:
        """Start the repository's instances as deployed; deploy (checked) those never deployed.
        Deployed instances keep their version unless --latest (which asks first)."""
        if dry:
            return _would(backend, repo, target, "up")
        if latest:
            confirm("move every deployed instance to its latest version on the "
                    f"{_where(backend, target)}", yes)
        chosen = _backend(backend, repo, target, all_repos, latest, force)
        started = chosen.up()
        _releases(started, as_json)
        _wait(chosen, [r.service for r in started], wait, timeout)

    @app.command()
    def down(repo: RepoOpt = None, backend: BackendOpt = "local",
             target: TargetOpt = None, all_repos: AllOpt = False, yes: YesOpt = False,
             dry: DryRunOpt = False) -> None:
        """Stop the repository's instances (--all: every instance of the state folder); asks
        first on a terminal."""
        if dry:
            return _would(backend, repo, target, "down")
        scope = "every repository's" if all_repos else "the repository's"
        confirm(f"stop {scope} instances on the {_where(backend, target)}", yes)
        stopped = _backend(backend, repo, target, all_repos).down()
        if stopped is not None:
            print("\n".join(f"stopped {name}" for name in stopped) or "nothing was running")

    @app.command()
    def template(name: NamesArg, version: VersionArg = None, repo: RepoOpt = None,
                 backend: BackendOpt = "local", target: TargetOpt = None) -> None:
        """Print what deploying would apply, without applying it (NAME may list several
        services, separated by commas: their outputs follow one another)."""
        names = [n.strip() for n in name.split(",") if n.strip()]
        if not names:
            from berth.errors import BerthError

            raise BerthError("give the name of at least one service")
        chosen = _backend(backend, repo, target)
        many = getattr(chosen, "templates", None)  # backends that render several at once
        if many is not None:
            sys.stdout.write(many(names, version))
        else:
            sys.stdout.write("".join(chosen.template(n, version) for n in names))
