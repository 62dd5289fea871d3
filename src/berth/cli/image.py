"""`berth image build`: the soft-IOC Generic IOC image (`berth new generic-ioc`: cli/new.py);
`berth images pull-defs`: the definitions of the images a repository names, into the cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def say(text: str) -> None:
    """A progress line of the image build (stderr: stdout is for the report)."""
    print(f"berth: image: {text}", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    image_app = typer.Typer(help="Container images of Generic IOCs.", no_args_is_help=True)
    app.add_typer(image_app, name="image")

    @image_app.command("build")
    def build(
        tag: Annotated[list[str] | None, typer.Option(
            "--tag", "-t", help="Name of the image (repeatable; default "
            "ghcr.io/berth/softioc:<berth version> and :latest).")] = None,
        engine: Annotated[str | None, typer.Option(
            "--engine", help="docker or podman (default: BERTH_ENGINE, else detected).")] = None,
        rebuild_base: Annotated[bool, typer.Option(
            "--rebuild-base", help="Make the Debian base image again even if it exists.")] =
        False,
        dev_packages: Annotated[str, typer.Option(
            "--dev-packages", help="Debian packages for the developer stage only, e.g. "
            "'build-essential'.")] = "",
        force: Annotated[bool, typer.Option(
            "--force", help="Build even if the image is up to date with the sources.")] = False,
        dashboard: Annotated[bool, typer.Option(
            "--dashboard", help="Build the dashboard image (ghcr.io/berth/berth: berth serve "
            "with docker, helm and kubectl) instead of the soft IOC's.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the build log.")] =
        False,
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] =
        False,
    ) -> None:
        """Build the soft-IOC Generic IOC image (berth + EPICS base + pvxs) without a registry;
        with --dashboard, the image `berth new service dashboard` runs."""
        from berth.cli.common import print_json
        from berth.image import build as build_image
        from berth.tools.engine import detect

        report = build_image(detect(engine), tags=tag or None, rebuild_base=rebuild_base,
                             dev_packages=dev_packages, log=not (quiet or json_out),
                             force=force, say=None if quiet else say,
                             kind="dashboard" if dashboard else "softioc")
        if json_out:
            print_json({"tags": report.tags, "base_built": report.base_built,
                        "up_to_date": report.up_to_date,
                        "size_bytes": report.size_bytes, "timings": report.timings})
            return
        if report.up_to_date:
            print(f"{', '.join(report.tags)} is up to date with the sources "
                  f"({report.size_bytes / 1e6:.0f} MB)")
            return
        base = "built" if report.base_built else "cached"
        print(f"built {', '.join(report.tags)}: {report.size_bytes / 1e6:.0f} MB in "
              f"{report.timings['total']:.1f} s (base image {base})")

    images_app = typer.Typer(help="Generic IOC images a services repository names.",
                             no_args_is_help=True)
    app.add_typer(images_app, name="images")

    @images_app.command("pull-defs")
    def pull_defs(
        repo: Annotated[Path | None, typer.Argument(
            envvar="BERTH_REPO", show_default=False,
            help="Services repository (default: the current directory).")] = None,
        engine: Annotated[str | None, typer.Option(
            "--engine", help="docker or podman (default: BERTH_ENGINE, else detected).")] = None,
        no_pull: Annotated[bool, typer.Option(
            "--no-pull", help="Only images the engine already has; pull none.")] = False,
    ) -> None:
        """Copy the support definitions, templates and dbd of every Generic IOC image the
        repository names into berth's cache (pulling images the engine lacks), so `check`,
        `schema` and `generate` find them without the engine."""
        from berth.deploy.services import ServicesRepo
        from berth.errors import BerthError
        from berth.ioc.image_defs import copy_out
        from berth.run.ioc_map import EMBEDDED_IMAGES, image_name
        from berth.tools.engine import detect

        services = ServicesRepo.load(repo or Path.cwd()).services.values()
        images = sorted({s.image for s in services if s.image})
        found = detect(engine)
        failed = 0
        for index, image in enumerate(images, 1):
            head = f"[{index}/{len(images)}] {image}:"
            if image_name(image) in EMBEDDED_IMAGES:
                print(f"{head} berth's soft IOC: its definitions are built in", flush=True)
                continue
            try:
                if not found.image_exists(image):
                    if no_pull:
                        raise BerthError(f"not in the local {found.name} (--no-pull)")
                    print(f"{head} pulling", flush=True)
                    found.run("pull", image, timeout=3600)
                defs = copy_out(found, image)
            except BerthError as err:
                failed += 1
                print(f"{head} {err.problems[0].message}", file=sys.stderr, flush=True)
                continue
            print(f"{head} {len(defs.defs)} support file(s), {len(defs.db_dirs)} template "
                  f"folder(s), dbd {'yes' if defs.dbd else 'no'} ({defs.digest[:19]})",
                  flush=True)
        if failed:
            raise typer.Exit(1)
