"""`berth new services|ioc|service|deployment|generic-ioc`: new projects from templates.

One mechanism for all of them: a kind is a folder `assets/new/<kind>/` of `*.jinja` files,
rendered in a sandbox with `[[ ]]` / `[% %]` / `[# #]` delimiters so that the `{{ }}` of Helm,
GitHub Actions and instance YAML pass through untouched. A path part `dot-x` is written `.x`
(package data globs skip hidden files). Every `new` writes all its files or none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write_all, umask

ASSETS = Path(__file__).resolve().parent / "assets" / "new"
INSTANCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label, as k8s needs
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
MODULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
LAYOUTS = ("helm", "compose")
# The schema of berth's soft IOC entities, committed in every new services repository; the
# `$schema` header of each new instance points at it (VS Code's YAML extension reads it).
SCHEMA_FILE = Path(".berth") / "ioc.schema.json"
# Versions a new Generic IOC starts from (ibek-support's tags at the time of writing).
MODULE_VERSIONS = {"asyn": "R4-44-2", "autosave": "R5-11", "iocStats": "3.2.0",
                   "busy": "R1-7-4", "calc": "R3-7-5", "sscan": "R2-11-6",
                   "StreamDevice": "2.8.24", "motor": "R7-3-1", "ADCore": "R3-13"}
DEFAULT_BASES = {"base_developer": "ghcr.io/epics-containers/epics-base-developer:7.0.9ec1",
                 "base_runtime": "ghcr.io/epics-containers/epics-base-runtime:7.0.9ec1"}


def render(kind: str, context: dict[str, Any]) -> dict[str, str]:
    """Every file of template folder `kind`: relative path -> text."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        variable_start_string="[[", variable_end_string="]]",
        block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]",
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
        trim_blocks=True, lstrip_blocks=True,
    )
    source = ASSETS / kind
    files: dict[str, str] = {}
    for template in sorted(source.rglob("*.jinja")):
        relative = template.relative_to(source).with_suffix("")
        parts = ["." + p[4:] if p.startswith("dot-") else p for p in relative.parts]
        try:
            files["/".join(parts)] = env.from_string(template.read_text()).render(context)
        except TemplateError as exc:
            raise BerthError(Problem(f"template error: {exc}", Location(template))) from None
    return files


def _under(folder: Path, files: dict[str, str]) -> dict[Path, str]:
    return {folder / relative: text for relative, text in files.items()}


def _empty_target(folder: Path, what: str) -> Path:
    folder = Path(folder).resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BerthError(Problem(f"folder exists and is not empty: {what} needs a new one",
                                 Location(folder)))
    return folder


def _write(files: dict[Path, str], dry_run: bool) -> list[Path]:
    if not dry_run:
        atomic_write_all(files)
    return sorted(files)


# --- services repositories and their IOC instances ------------------------------------------

def schema_text() -> str:
    """The JSON schema of instances of berth's soft IOC (its built-in support definitions)."""
    from berth import paths
    from berth.ioc.schema import ioc_schema

    return json.dumps(ioc_schema(paths.support_files()), indent=2) + "\n"


def _check_instance_name(name: str) -> None:
    if not INSTANCE_NAME.match(name):
        raise BerthError(Problem(f"invalid instance name '{name}': use lower-case letters, "
                                 "digits and '-' (at most 63)", field="NAME"))


def _ioc_files(root: Path, name: str, layout: str) -> dict[Path, str]:
    """The files of a new soft IOC instance `name` in the repository at `root`."""
    target = root / "services" / name
    config = target / "config"
    schema = Path("../../..") / SCHEMA_FILE  # relative to services/<name>/config/ioc.yaml
    files = _under(target, render("ioc", {"name": name, "prefix": name.upper(),
                                          "schema": schema.as_posix()}))
    files.update(_under(target, render(f"ioc-{layout}", {"name": name,
                                                         "prefix": name.upper()})))
    assert (config / "ioc.yaml") in files
    return files


def new_services(folder: Path, layout: str = "helm", dry_run: bool = False) -> list[Path]:
    """A services repository with one soft IOC instance, its schema and a CI workflow running
    `berth check`, as a git repository with a first commit. Returns the files it writes."""
    from berth import __version__

    if layout not in LAYOUTS:
        raise BerthError(Problem(f"unknown layout '{layout}': expected helm or compose",
                                 field="--layout"))
    folder = _empty_target(folder, "a services repository")
    beamline = re.sub(r"[^a-z0-9-]", "-", folder.name.lower()).removesuffix("-services")
    beamline = beamline.strip("-") or "bl00x"
    context = {"beamline": beamline, "berth_version": __version__}
    files = _under(folder, render("services", context))
    files.update(_under(folder, render(f"services-{layout}", context)))
    name = f"{beamline}-ea-test-01"
    files.update(_ioc_files(folder, name, layout))
    if layout == "compose":
        top = folder / "compose.yaml"
        files[top] = add_include(files[top], f"services/{name}/compose.yml", top)
    files[folder / SCHEMA_FILE] = schema_text()
    if dry_run:
        return sorted(files)
    from berth.tools import run

    try:  # the first commit needs an author: find out before writing anything
        run(["git", "var", "GIT_COMMITTER_IDENT"])
    except BerthError:
        raise BerthError(Problem("git does not know who you are, so it cannot make the first "
                                 "commit: set `git config --global user.name` and "
                                 "`user.email` (nothing was written)", Location(folder))
                         ) from None
    written = _write(files, dry_run)
    run(["git", "init", "-q", "-b", "main", str(folder)])
    run(["git", "-C", str(folder), "add", "-A"])
    run(["git", "-C", str(folder), "commit", "-q", "-m",
         f"New {layout} services repository for {beamline} (berth new services)"])
    return written


def new_ioc(root: Path, name: str, dry_run: bool = False) -> list[Path]:
    """Add a soft IOC instance to a services repository, refreshing its schema file."""
    from berth.deploy.services import ServicesRepo

    _check_instance_name(name)
    repo = ServicesRepo.load(root)
    target = repo.root / "services" / name
    if target.exists() or name in repo.services:
        raise BerthError(Problem(f"instance '{name}' already exists", Location(target)))
    files = _ioc_files(repo.root, name, repo.layout)
    if repo.layout == "compose":
        top = repo.root / "compose.yaml"
        if not top.exists():
            top = repo.root / "compose.yml"
        files[top] = add_include(top.read_text(), f"services/{name}/compose.yml", top)
    files[repo.root / SCHEMA_FILE] = schema_text()
    return _write(files, dry_run)


SERVICE_KINDS = ("dashboard",)


def new_service(root: Path, kind: str, name: str | None = None, dry_run: bool = False
                ) -> list[Path]:
    """Add a service that is not an IOC to a services repository: `dashboard`, berth serve
    beside the IOCs (a chart of its own in a Helm-layout repository, a compose service in a
    compose one)."""
    from berth import __version__
    from berth.deploy.services import ServicesRepo

    if kind not in SERVICE_KINDS:
        raise BerthError(Problem(f"unknown service kind '{kind}': expected "
                                 f"{', '.join(SERVICE_KINDS)}", field="KIND"))
    name = name or f"berth-{kind}"
    _check_instance_name(name)
    repo = ServicesRepo.load(root)
    target = repo.root / "services" / name
    if target.exists() or name in repo.services:
        raise BerthError(Problem(f"service '{name}' already exists", Location(target)))
    context = {"name": name, "berth_version": __version__}
    files = _under(target, render(f"{kind}-{repo.layout}", context))
    if repo.layout == "compose":
        top = repo.root / "compose.yaml"
        if not top.exists():
            top = repo.root / "compose.yml"
        files[top] = add_include(top.read_text(), f"services/{name}/compose.yml", top)
    return _write(files, dry_run)


def add_include(text: str, entry: str, file: Path) -> str:
    """Append `entry` to the top-level `include:` list of a compose file, keeping comments."""
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


# --- ArgoCD deployment repositories -------------------------------------------------------

def new_deployment(folder: Path, dry_run: bool = False) -> list[Path]:
    """An ArgoCD deployment repository (the epics-containers shape): `apps.yaml`, the root
    Application, points at `apps/`, a chart making one Application per entry of
    `apps/values.yaml` `services:`."""
    folder = _empty_target(folder, "a deployment repository")
    return _write(_under(folder, render("deployment", {"name": folder.name})), dry_run)


# --- Generic IOC projects -----------------------------------------------------------------

def new_generic_ioc(name: str, target: Path, modules: list[str], description: str = "",
                    bases: dict[str, str] | None = None, dry_run: bool = False) -> list[Path]:
    """A C++ Generic IOC project: Dockerfile, support modules, CI, devcontainer."""
    if not PROJECT_NAME.match(name):
        raise BerthError(Problem("a Generic IOC name is lower case letters, digits and dashes, "
                                 "starting with a letter (e.g. ioc-adaravis)", field="NAME"))
    parsed = []
    for item in modules:
        module, _, version = item.partition("@")
        if not MODULE_NAME.match(module):
            raise BerthError(Problem(f"'{module}' is not a support module name",
                                     field="--modules"))
        parsed.append({"name": module, "version": version or MODULE_VERSIONS.get(module, "main")})
    target = _empty_target(target, "a Generic IOC project")
    context = {"name": name, "modules": parsed,
               "description": description or f"{name}: a Generic IOC.",
               **DEFAULT_BASES, **(bases or {})}
    files = _under(target, render("generic-ioc", context))
    written = _write(files, dry_run)
    if not dry_run:
        for path in written:
            if path.suffix == ".sh":
                path.chmod(0o777 & ~umask())
        for sub in ("ibek-support", "ioc"):
            (target / sub).mkdir(exist_ok=True)
    return written
