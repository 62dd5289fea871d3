"""From a device to screen files, in any of the supported formats."""

from __future__ import annotations

from collections.abc import Callable

from berth.errors import error
from berth.screens.adl import render_adl
from berth.screens.bob import render_bob
from berth.screens.edl import render_edl
from berth.screens.layout import Screen, layout_device
from berth.screens.pvi_model import Device

FORMATS: dict[str, Callable[[Screen, str], str]] = {
    "bob": render_bob,
    "adl": render_adl,
    "edl": render_edl,
}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise error(f"unknown screen format {fmt!r} (expected one of: {', '.join(FORMATS)})",
                    field="format")
    return fmt


def render_screens(screens: list[Screen], fmt: str = "bob") -> dict[str, str]:
    """File name -> content for already laid-out screens."""
    writer = FORMATS[check_format(fmt)]
    return {f"{screen.file}.{fmt}": writer(screen, fmt) for screen in screens}


def device_screens(device: Device, fmt: str = "bob", file: str | None = None) -> dict[str, str]:
    """The device's main screen (named `file`, default the device name) and its sub-screens."""
    return render_screens(layout_device(device, file), fmt)
