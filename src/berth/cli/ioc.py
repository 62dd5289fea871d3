"""`berth generate` and `berth schema`: ibek-compatible IOC start-up files and JSON schemas.

`generate` runs at every IOC start, so its ordinary invocations skip typer entirely: `fast`
reads the arguments with `berth.run.argv` (see `berth.cli.main.FAST_COMMANDS`) and hands
anything unusual (--help, a mistake) back to typer, which reports it. Both paths call the same
functions.
"""

# (no `from __future__ import annotations`: typer must see the option annotations evaluated,
# and typer is imported only inside `register`, off the fast path)
import os
import sys
from pathlib import Path

from berth import paths

TYPE_CHECKING = False  # (typing is not imported on the generate path)
if TYPE_CHECKING:
    import typer

DEFAULT_IOC_DIR = paths.IOC_DIR
DEFAULT_RUNTIME_DIR = paths.RUNTIME_DIR


def image_defs(image: str) -> tuple[list[Path], list[Path]]:
    """(support YAMLs, PVI folders) of a Generic IOC image: berth's cache, else the local
    engine's image; an error saying which image to pull when neither has them."""
    from berth.errors import BerthError
    from berth.ioc.image_defs import Finder

    found, why = Finder().find(image)
    if found is None:
        raise BerthError(f"support definitions of image {image} are not on this host: {why}")
    pvi = found.root / "pvi-defs"
    return found.defs, [pvi] if pvi.is_dir() else []


def run_generate(config: Path, defs: list[Path], out_dir: Path | None, pvi_defs: list[Path],
                 ioc_dir: str, runtime_dir: str, ioc_name: str | None,
                 opi_dir: Path | None = None, image: str | None = None) -> None:
    from berth.ioc import generate as gen

    if image and not defs:
        defs, image_pvi = image_defs(image)
        pvi_defs = [*pvi_defs, *image_pvi]

    files = paths.find_instance_files(config)
    options = gen.GenerateOptions.from_env(ioc_dir=ioc_dir, runtime_dir=runtime_dir,
                                           ioc_name=ioc_name, pvi_defs=pvi_defs)
    generated = gen.generate(files, defs or paths.standard_defs(), options,
                             beside=config.is_dir())
    for warning in generated.warnings:
        print(f"berth: {warning}", file=sys.stderr)
    for path in gen.write_outputs(generated, out_dir or Path(options.runtime_dir), opi_dir):
        print(path)


def run_schema(defs: list[Path], out: Path | None, support: bool,
               image: str | None = None) -> None:
    import json

    from berth.errors import BerthError, Location, Problem
    from berth.ioc import schema as sch

    if image and not defs and not support:
        defs = image_defs(image)[0]
    data = sch.support_schema() if support else sch.ioc_schema(defs or paths.standard_defs())
    text = json.dumps(data, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    from berth.fsutil import atomic_write

    try:
        atomic_write(out, text)
    except OSError as exc:
        raise BerthError(Problem(f"cannot write the schema: {exc.strerror or exc}",
                                 Location(out))) from None
    print(out)


# The options of both commands, read by the fast path and the Typer commands alike:
# option -> (destination, kind: "one" | "many" | "flag", environment variable giving its default)
GENERATE_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--defs": ("defs", "many", ""), "-o": ("out", "one", ""), "--output": ("out", "one", ""),
    "--pvi-defs": ("pvi_defs", "many", ""), "--ioc-dir": ("ioc_dir", "one", "IOC"),
    "--runtime-dir": ("runtime_dir", "one", "RUNTIME_DIR"),
    "--ioc-name": ("ioc_name", "one", "IOC_NAME"), "--opi-dir": ("opi_dir", "one", ""),
    "--image": ("image", "one", "")}
SCHEMA_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--defs": ("defs", "many", ""), "-o": ("out", "one", ""), "--output": ("out", "one", ""),
    "--support": ("support", "flag", ""), "--image": ("image", "one", "")}


def _envvar(table: dict[str, tuple[str, str, str]], option: str) -> str | None:
    return table[option][2] or None


def _spec(table: dict[str, tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {option: (dest, kind) for option, (dest, kind, _env) in table.items()}


def fast(argv: list[str]) -> int | None:
    """Run `generate` / `schema` without typer; None when typer should handle the arguments."""
    from berth.run.argv import parse

    command, args = argv[0], argv[1:]
    if command == "generate":
        opts = parse(args, _spec(GENERATE_OPTIONS), 1)
        if opts is None:
            return None
        env, one = os.environ, opts.one
        run_generate(
            Path(opts.positional[0]), opts.paths("defs"),
            Path(one["out"]) if "out" in one else None, opts.paths("pvi_defs"),
            one.get("ioc_dir") or env.get(GENERATE_OPTIONS["--ioc-dir"][2]) or DEFAULT_IOC_DIR,
            one.get("runtime_dir") or env.get(GENERATE_OPTIONS["--runtime-dir"][2])
            or DEFAULT_RUNTIME_DIR,
            one.get("ioc_name") or env.get(GENERATE_OPTIONS["--ioc-name"][2]) or None,
            Path(one["opi_dir"]) if "opi_dir" in one else None, one.get("image"),
        )
        return 0
    if command == "schema":
        opts = parse(args, _spec(SCHEMA_OPTIONS), 0)
        if opts is None:
            return None
        run_schema(opts.paths("defs"), Path(opts.one["out"]) if "out" in opts.one else None,
                   "support" in opts.flags, opts.one.get("image"))
        return 0
    return None


def register(app: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    @app.command("generate")
    def generate(
        config: Annotated[Path, typer.Argument(
            help="An instance config folder (ioc.yaml or the one *.yaml with 'entities:', plus "
            "runtime.yaml and the folder's *.ibek.support.yaml) or an instance YAML file.")],
        defs: Annotated[list[Path] | None, typer.Option(
            "--defs", help="Support YAML file or folder of *.ibek.support.yaml (repeatable). "
            "Default: $EPICS_ROOT/ibek-defs/*.ibek.support.yaml, or outside a Generic IOC "
            "berth's soft IOC's.")] = None,
        out_dir: Annotated[Path | None, typer.Option(
            "-o", "--output", help="Folder for st.cmd, ioc.subst, wait_list.yaml "
            "(default: the runtime folder).")] = None,
        pvi_defs: Annotated[list[Path] | None, typer.Option(
            "--pvi-defs", help="Folder of *.pvi.device.yaml, searched before "
            "$EPICS_ROOT/pvi-defs (repeatable).")] = None,
        ioc_dir: Annotated[str, typer.Option(
            "--ioc-dir", envvar=_envvar(GENERATE_OPTIONS, "--ioc-dir"),
            help="The generic IOC folder, for st.cmd's cd.")
        ] = DEFAULT_IOC_DIR,
        runtime_dir: Annotated[str, typer.Option(
            "--runtime-dir", envvar=_envvar(GENERATE_OPTIONS, "--runtime-dir"),
            help="Where the IOC finds ioc.db.")
        ] = DEFAULT_RUNTIME_DIR,
        ioc_name: Annotated[str | None, typer.Option(
            "--ioc-name", envvar=_envvar(GENERATE_OPTIONS, "--ioc-name"),
            help="IOC_NAME for templates.")] = None,
        opi_dir: Annotated[Path | None, typer.Option(
            "--opi-dir", help="Folder for the screens (index.bob and one per PVI device "
            "type); default: <output>/opi.")] = None,
        image: Annotated[str | None, typer.Option(
            "--image", help="A Generic IOC image whose definitions to use (unless --defs): "
            "from berth's cache, else copied out of the local docker/podman's image.")] = None,
    ) -> None:
        """Generate st.cmd and ioc.subst (and wait_list.yaml, the PVI templates and screens)
        from an IOC instance YAML."""
        run_generate(config, list(defs or []), out_dir, list(pvi_defs or []), ioc_dir,
                     runtime_dir, ioc_name or None, opi_dir, image)

    @app.command("schema")
    def schema(
        defs: Annotated[list[Path] | None, typer.Option(
            "--defs", help="Support YAML file or folder (repeatable). Default: "
            "$EPICS_ROOT/ibek-defs/*.ibek.support.yaml, or outside a Generic IOC berth's soft "
            "IOC's.")] = None,
        out: Annotated[Path | None, typer.Option(
            "-o", "--output", help="Write the schema here (default: standard output).")
        ] = None,
        support: Annotated[bool, typer.Option(
            "--support", help="The schema of the support-definition format itself.")] = False,
        image: Annotated[str | None, typer.Option(
            "--image", help="A Generic IOC image whose definitions to use (unless --defs): "
            "from berth's cache, else copied out of the local docker/podman's image.")] = None,
    ) -> None:
        """Write the JSON schema of IOC instance YAML for some support definitions."""
        run_schema(list(defs or []), out, support, image)
