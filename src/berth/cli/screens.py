"""`berth screens`: operator screens, the .pvi.template and a preview, from a PVI device file."""

from __future__ import annotations

from pathlib import Path

import typer


def screens(
    source: Path = typer.Argument(
        ..., help="A *.pvi.device.yaml file (or, with --preview, a .bob file)."),
    output: Path = typer.Option(Path("."), "-o", "--output", help="Folder to write into."),
    formats: list[str] = typer.Option(
        ["bob"], "--format", "-f", help="Screen format: bob, adl or edl (repeatable)."),
    search: list[Path] = typer.Option(
        [], "--search", "-s",
        help="Folder where parent and included devices are found (repeatable); the device "
        "file's own folder is always searched first."),
    template: bool = typer.Option(
        False, "--template", "--pvi-template",
        help="Write <Device>.pvi.template (the <prefix>PVI PV) instead of screens."),
    pv_prefix: str = typer.Option(
        "$(P)$(R)", "--pv-prefix", help="Prefix of the PVI PV in the template."),
    layout: str = typer.Option(
        "ntpvi", "--layout",
        help="Template layout: ntpvi (what ophyd-async reads) or pvi (ibek's pvi.* fields)."),
    preview: str | None = typer.Option(
        None, "--preview", help="Write a preview instead: 'html' (an SVG drawing per .bob)."),
) -> None:
    """Generate operator screens (or the PVI template, or a preview) for one device."""
    from berth.errors import error
    from berth.fsutil import atomic_write_all
    from berth.screens import device_screens, load_device, render_pvi_template
    from berth.screens.preview import render_html
    from berth.screens.pvi_model import device_stem

    files: dict[str, str] = {}
    if preview is not None:
        if preview != "html":
            raise error(f"unknown preview kind {preview!r} (expected: html)", field="--preview")
        if source.suffix == ".bob":
            try:
                bob_files = {source.name: source.read_text(encoding="utf-8")}
            except OSError as exc:
                raise error(f"cannot read: {exc.strerror}", source) from None
        else:
            bob_files = device_screens(load_device(source, search), "bob")
        for name, text in bob_files.items():
            files[Path(name).stem + ".html"] = render_html(text, source=name, title=name)
    elif template:
        device = load_device(source, search)
        files[f"{device_stem(source)}.pvi.template"] = render_pvi_template(
            device, pv_prefix, layout)
    else:
        device = load_device(source, search)
        for fmt in dict.fromkeys(formats):
            files.update(device_screens(device, fmt))
    atomic_write_all({output / name: text for name, text in files.items()})
    for name in files:
        print(output / name)


def register(app: typer.Typer) -> None:
    app.command("screens")(screens)
