"""Screens for a whole IOC: one screen per device type used, plus `index.<fmt>` with a button
per entity that opens its device's screen with the entity's macros."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import BerthError, Location, Problem
from berth.screens.layout import (
    GAP,
    LABEL_WIDTH,
    MARGIN,
    ROW_HEIGHT,
    TITLE_HEIGHT,
    WIDGET_WIDTH,
    Box,
    Screen,
    label_box,
    layout_device,
    open_button,
)
from berth.screens.pvi_model import DEVICE_SUFFIX, Device, DeviceLoader, device_stem
from berth.screens.pvi_template import render_pvi_template
from berth.screens.render import check_format, render_screens


@dataclass
class ScreenEntry:
    """One entity's `pvi:` block, with its Jinja already rendered.

    device: the pvi `yaml_path` (`NDPluginStats.pvi.device.yaml`) or its stem (`NDPluginStats`).
    ui_index: whether the entity has a button on the index screen (ibek's bool); a text is
        used as the button's label instead of the device's label.
    ui_macros: macros passed to the device screen, in order (e.g. {"P": "BL03I:", "R": "Cur1"}).
    pv: whether the IOC publishes `<pv_prefix>PVI` (adds `<Device>.pvi.template`).
    pv_prefix: the prefix in the template, with macros (e.g. `$(P)$(R)`).
    source: where the entity is defined, for error messages.
    """

    device: str
    ui_index: bool | str = True
    ui_macros: dict[str, str] = field(default_factory=dict)
    pv: bool = False
    pv_prefix: str = ""
    source: Location = field(default_factory=Location)

    @property
    def stem(self) -> str:
        return device_stem(Path(self.device))


def _index_screen(ioc_name: str, rows: list[tuple[str, str, dict[str, str]]]) -> Screen:
    boxes: list[Box] = []
    y = TITLE_HEIGHT + MARGIN
    x = MARGIN + GAP
    for label, file, macros in rows:
        boxes.append(label_box(label, "", x, y))
        text = " ".join(v for v in macros.values() if v) or label
        boxes.append(open_button(text, file, macros, x + LABEL_WIDTH + GAP, y, WIDGET_WIDTH))
        y += ROW_HEIGHT + GAP
    width = x + LABEL_WIDTH + GAP + WIDGET_WIDTH + MARGIN
    return Screen("index", ioc_name, width, y + MARGIN, boxes)


def ioc_screens(ioc_name: str, entries: list[ScreenEntry], search: list[Path],
                formats: tuple[str, ...] | list[str] = ("bob",),
                pvi_layout: str = "ntpvi",
                on_missing: Callable[[Problem], None] | None = None,
                loader: DeviceLoader | None = None) -> dict[str, str]:
    """Relative file name -> content: `index.<fmt>`, `<Device>.pvi.<fmt>` (+ sub-screens
    `<Device>_<Group>.pvi.<fmt>`, as ibek names them) for each device type used, and
    `<Device>.pvi.template` for devices of entities with `pv: true`. Device files are looked
    up in `search`; a missing one is an error naming the entity, unless `on_missing` is given:
    then it receives the problem (as a warning) and the entity is left out. A `loader` given
    is used (and tells afterwards which files the result depends on)."""
    for fmt in formats:
        check_format(fmt)
    if loader is None:
        loader = DeviceLoader(search)
    devices: dict[str, Device] = {}
    problems: list[Problem] = []
    found: list[ScreenEntry] = []
    for entry in entries:
        if entry.stem not in devices:
            device = loader.load_name(entry.stem + DEVICE_SUFFIX)
            if device is None:
                where = ", ".join(str(p) for p in search) or "no folders"
                problem = Problem(f"PVI device file {entry.stem}{DEVICE_SUFFIX} not found "
                                  f"(searched: {where})", entry.source, field="pvi.yaml_path",
                                  severity="error" if on_missing is None else "warning")
                if on_missing is None:
                    problems.append(problem)
                else:
                    on_missing(problem)
                continue
            devices[entry.stem] = device
        found.append(entry)
    if problems:
        raise BerthError(problems)
    entries = found

    files: dict[str, str] = {}
    rows = [(entry.ui_index if isinstance(entry.ui_index, str) else devices[entry.stem].label,
             f"{entry.stem}.pvi", entry.ui_macros)
            for entry in entries if entry.ui_index is not False and entry.ui_index != ""]
    for fmt in formats:
        screens = [_index_screen(ioc_name, rows)]
        for stem, device in devices.items():
            screens.extend(layout_device(device, f"{stem}.pvi"))
        files.update(render_screens(screens, fmt))
    templates_done: set[str] = set()
    for entry in entries:
        if entry.pv and entry.stem not in templates_done:
            templates_done.add(entry.stem)
            # Macros stay macros: the template is loaded once per entity with its own values.
            files[f"{entry.stem}.pvi.template"] = render_pvi_template(
                devices[entry.stem], entry.pv_prefix, pvi_layout)
    return files
