"""Operator screens and the PVI PV from PVI device files (`*.pvi.device.yaml`).

Public API:
    load_device(path, search) -> Device
    device_screens(device, fmt="bob", file=None) -> {file name: content}
    render_pvi_template(device, pv_prefix, layout="ntpvi"|"pvi") -> str
    ioc_screens(ioc_name, entries, search, formats=("bob",)) -> {file name: content}
    ScreenEntry: one entity's `pvi:` block (berth.ioc.render builds them for generate)
"""

from __future__ import annotations

from berth.screens.index import ScreenEntry, ioc_screens
from berth.screens.pvi_model import Device, DeviceLoader, load_device
from berth.screens.pvi_template import pvi_entries, render_pvi_template
from berth.screens.render import FORMATS, device_screens

__all__ = [
    "FORMATS",
    "Device",
    "DeviceLoader",
    "ScreenEntry",
    "device_screens",
    "ioc_screens",
    "load_device",
    "pvi_entries",
    "render_pvi_template",
]
