"""`berth image build`: the soft-IOC Generic IOC image (`berth new generic-ioc`: cli/new.py)."""

from __future__ import annotations

from typing import Annotated

import typer


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
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the build log.")] =
        False,
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] =
        False,
    ) -> None:
        """Build the soft-IOC Generic IOC image (berth + EPICS base + pvxs) without a registry."""
        from berth.cli.common import print_json
        from berth.image import build as build_image
        from berth.tools.engine import detect

        report = build_image(detect(engine), tags=tag or None, rebuild_base=rebuild_base,
                             dev_packages=dev_packages, log=not (quiet or json_out),
                             force=force)
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
