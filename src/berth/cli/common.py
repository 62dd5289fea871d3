"""Small helpers shared by the CLI modules: tables for people, JSON for scripts, the `ec`
environment names, confirmation of destructive verbs, and shell completion of names."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

# ec's environment variable -> berth's, read when berth's is unset (ec spells backends in
# capitals: K8S, ARGOCD).
EC_FALLBACKS: dict[str, str] = {
    "EC_SERVICES_REPO": "BERTH_REPO",
    "EC_TARGET": "BERTH_TARGET",
    "EC_CLI_BACKEND": "BERTH_BACKEND",
}


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table (no colour, so it pipes and diffs well)."""
    body = [["" if c is None else str(c) for c in row] for row in rows]
    cells = [[str(h).upper() for h in headers], *body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def apply_ec_fallbacks(environ: MutableMapping[str, str]) -> None:
    """Fill BERTH_REPO, BERTH_TARGET, BERTH_BACKEND from ec's names when only those are set."""
    for ec_name, berth_name in EC_FALLBACKS.items():
        value = environ.get(ec_name)
        if value and not environ.get(berth_name):
            environ[berth_name] = value.lower() if berth_name == "BERTH_BACKEND" else value


def confirm(action: str, yes: bool) -> None:
    """Ask before a destructive `action` on a terminal; without one, go on only with -y."""
    from berth.errors import BerthError

    if yes:
        return
    if not sys.stdin.isatty():
        raise BerthError(f"not asking on a non-terminal whether to {action}: pass -y to do it")
    import typer

    if not typer.confirm(f"{action[0].upper()}{action[1:]}?", default=False):
        print("nothing done", file=sys.stderr)
        raise typer.Exit(1)


def dry_run(lines: Sequence[str]) -> None:
    """Print what a verb would do; the caller has changed nothing."""
    for line in lines:
        print(f"would {line}")
    print("(dry run: nothing was changed)")


def _completion_repo(params: dict[str, Any]) -> Path:
    return Path(params.get("repo") or os.environ.get("BERTH_REPO") or
                os.environ.get("EC_SERVICES_REPO") or Path.cwd())


def complete_instance(ctx: Any, incomplete: str) -> list[str]:
    """Shell completion: the instance names of the repository given so far (or the cwd)."""
    try:
        from berth.deploy.services import ServicesRepo

        names = ServicesRepo.load(_completion_repo(ctx.params)).services
    except Exception:  # completion must never print a traceback into the shell
        return []
    return sorted(n for n in names if n.startswith(incomplete))


def complete_version(ctx: Any, incomplete: str) -> list[str]:
    """Shell completion: the versions (git tags) of the instance named before."""
    try:
        from berth.deploy.services import ServicesRepo

        services = ServicesRepo.load(_completion_repo(ctx.params))
        versions = services.versions(ctx.params["name"]) if services.git.is_repo else []
    except Exception:  # as above
        return []
    return [v for v in versions if v.startswith(incomplete)]
