"""Place a device's components on screens: a format-neutral list of boxes with coordinates.

The writers (`bob`, `adl`, `edl`) only translate these boxes, so every format shows the same
widgets at the same places. Rules: a signal is one row (label, then its widgets); a group is a
box of rows; top-level items fill columns of at most MAX_HEIGHT (a taller group starts the next
column). A group whose layout is `SubScreen`, and a plot (image or trace) that is not alone on
its screen or in a top-level group, become a button opening their own screen, named as pvi
names it (so the set of files equals ibek's): `<screen base>_<name><screen suffixes>`, e.g.
`NDStats_Plots.pvi` on `NDStats.pvi`, `NDStats_Plots_ProfileAverageX.pvi` on that one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.screens.pvi_model import (
    Component,
    Device,
    DeviceRef,
    Group,
    Ignored,
    Layout,
    Signal,
    Widget,
)

MARGIN = 5
GAP = 5
TITLE_HEIGHT = 25
ROW_HEIGHT = 20
LABEL_WIDTH = 200
WIDGET_WIDTH = 205
ROW_WIDTH = LABEL_WIDTH + GAP + WIDGET_WIDTH
GROUP_INSET = 18  # a group box's frame and title take this much on each side
MAX_HEIGHT = 900  # a taller screen would not fit a typical monitor
PLOT_HEIGHT = 200
TABLE_HEIGHT = 120
SMALL = 20  # LEDs, toggles and check boxes are squares


@dataclass
class Box:
    """One widget on a screen. Coordinates are relative to the enclosing group's content area
    (or to the screen for top-level boxes)."""

    kind: str  # a Phoebus widget type: label, textupdate, group, action_button, ...
    x: int
    y: int
    width: int
    height: int
    name: str = ""
    text: str = ""
    pv: str = ""
    tooltip: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    children: list[Box] = field(default_factory=list)

    def moved(self, dx: int, dy: int) -> Box:
        return Box(self.kind, self.x + dx, self.y + dy, self.width, self.height, self.name,
                   self.text, self.pv, self.tooltip, self.options, self.children)


@dataclass
class Screen:
    """One display file: `file` is its name without extension."""

    file: str
    title: str
    width: int
    height: int
    boxes: list[Box]


def open_button(text: str, file: str, macros: dict[str, str], x: int, y: int, width: int,
                description: str = "Open Display") -> Box:
    """A button opening another screen (`file` without extension) with macros."""
    return Box("action_button", x, y, width, ROW_HEIGHT, name="OpenDisplay", text=text,
               tooltip="$(actions)",
               options={"action": "open_display", "file": file, "macros": dict(macros),
                        "description": description})


def label_box(text: str, description: str, x: int, y: int, width: int = LABEL_WIDTH) -> Box:
    tip = f"{text} - {description or 'No description provided'}"
    return Box("label", x, y, width, ROW_HEIGHT, name="Label", text=text, tooltip=tip)


# --- widgets of one signal -------------------------------------------------------------------


def widget_boxes(widget: Widget, pv: str, x: int, y: int, width: int, label: str) -> list[Box]:
    """The boxes showing one read or write widget of `pv` in the area starting at x."""
    kind = widget.type
    opts = widget.options
    if kind == "TextRead":
        lines = max(1, int(opts.get("lines", 1)))
        return [Box("textupdate", x, y, width, ROW_HEIGHT * lines, name="TextUpdate", pv=pv,
                    options={"format": opts.get("format"), "lines": lines})]
    if kind == "TextWrite":
        lines = max(1, int(opts.get("lines", 1)))
        return [Box("textentry", x, y, width, ROW_HEIGHT * lines, name="TextEntry", pv=pv,
                    options={"format": opts.get("format"), "lines": lines})]
    if kind == "LED":
        return [Box("led", x, y, SMALL, SMALL, name="LED", pv=pv)]
    if kind == "ToggleButton":
        return [Box("slide_button", x, y, SMALL, SMALL, name="ToggleButton", pv=pv)]
    if kind == "CheckBox":
        return [Box("checkbox", x, y, SMALL, SMALL, name="CheckBox", pv=pv)]
    if kind == "ComboBox":
        return [Box("combo", x, y, width, ROW_HEIGHT, name="ComboBox", pv=pv,
                    options={"items": list(opts.get("choices", []))})]
    if kind == "ProgressBar":
        return [Box("progressbar", x, y, width, ROW_HEIGHT, name="ProgressBar", pv=pv)]
    if kind == "BitField":
        bits = int(opts.get("number_of_bits", 8))
        return [Box("byte_monitor", x, y, width, ROW_HEIGHT, name="BitField", pv=pv,
                    tooltip=", ".join(opts.get("labels", [])), options={"bits": bits})]
    if kind == "ArrayTrace":
        axis = str(opts.get("axis", label))
        return [Box("xyplot", x, y, width, PLOT_HEIGHT, name="ArrayTrace",
                    options={"traces": [(axis, pv)]})]
    if kind == "ImageRead":
        return [Box("image", x, y, width, PLOT_HEIGHT, name="ImageRead", pv=pv)]
    if kind in ("TableRead", "TableWrite"):
        return [Box("table", x, y, width, TABLE_HEIGHT, name=kind, pv=pv,
                    options={"editable": kind == "TableWrite"})]
    if kind == "ArrayWrite":
        return [Box("textentry", x, y, width, ROW_HEIGHT, name="ArrayWrite", pv=pv)]
    if kind == "ButtonPanel":
        actions = opts.get("actions") or {label: "1"}
        count = len(actions)
        each = max(SMALL, (width - GAP * (count - 1)) // count)
        return [Box("action_button", x + i * (each + GAP), y, each, ROW_HEIGHT,
                    name="ButtonPanel", text=text, pv=pv,
                    options={"action": "write_pv", "value": value, "description": text})
                for i, (text, value) in enumerate(actions.items())]
    raise ValueError(f"no layout for widget {kind}")  # pvi_model rejects unknown widgets


def signal_cells(signal: Signal, x: int, y: int, width: int) -> list[Box]:
    """The widgets of one signal (no label) in an area `width` wide."""
    if signal.kind == "SignalRW" and signal.read_widget is not None and signal.write_widget:
        half = (width - GAP) // 2
        return [*widget_boxes(signal.write_widget, signal.write_pv or "", x, y, half,
                              signal.label),
                *widget_boxes(signal.read_widget, signal.read_pv or "", x + half + GAP, y, half,
                              signal.label)]
    if signal.write_widget is not None and signal.kind != "SignalR":
        return widget_boxes(signal.write_widget, signal.write_pv or "", x, y, width,
                            signal.label)
    if signal.read_widget is not None:
        return widget_boxes(signal.read_widget, signal.read_pv or "", x, y, width, signal.label)
    return []


def _bottom(boxes: list[Box], y: int) -> int:
    return max([y + ROW_HEIGHT, *(b.y + b.height for b in boxes)])


def _right(boxes: list[Box]) -> int:
    return max([0, *(b.x + b.width for b in boxes)])


# --- screens ---------------------------------------------------------------------------------


PLOT_WIDGETS = ("ImageRead", "ArrayTrace")


def is_plot(component: Component) -> bool:
    return (isinstance(component, Signal) and component.kind == "SignalR"
            and component.read_widget is not None and component.read_widget.type in PLOT_WIDGETS)


def plot_sub_screen(signal: Component) -> Group:
    """A plot moved to a screen of its own (its button unlabelled, as pvi does)."""
    return Group(signal.name, signal.label, signal.description, signal.line,
                 Layout("SubScreen", labelled=False), [signal])


def split_out_plots(components: list[Component]) -> list[Component]:
    """The components of a screen with plots put on sub-screens, also the plots inside
    top-level groups, unless a plot is alone on the screen."""
    if len(components) == 1 and is_plot(components[0]):
        return components
    out: list[Component] = []
    for c in components:
        if is_plot(c):
            c = plot_sub_screen(c)
        elif isinstance(c, Group) and c.layout.type not in ("SubScreen", "Row") and \
                any(is_plot(child) for child in c.children):
            c = Group(c.name, c.label, c.description, c.line, c.layout,
                      [plot_sub_screen(child) if is_plot(child) else child
                       for child in c.children])
        out.append(c)
    return out


class _Planner:
    def __init__(self, file: str):
        self.file = file  # the screen being planned: sub-screens are named after it
        self.screens: list[Screen] = []

    def sub_screen_file(self, group: Group) -> str:
        base, dot, suffixes = self.file.partition(".")
        return f"{base}_{group.name.replace(' ', '_')}{dot}{suffixes}"

    def rows(self, components: list[Component], labelled: bool) -> list[Box]:
        """Lay components out as rows from y=0; returns boxes relative to (0, 0)."""
        boxes: list[Box] = []
        y = 0
        for component in components:
            placed = self.row(component, y, labelled)
            if placed:
                boxes.extend(placed)
                y = _bottom(placed, y) + GAP
        return boxes

    def row(self, component: Component, y: int, labelled: bool) -> list[Box]:
        if isinstance(component, Ignored):
            return []
        start = LABEL_WIDTH + GAP if labelled else 0
        width = WIDGET_WIDTH if labelled else ROW_WIDTH
        head = [label_box(component.label, component.description, 0, y)] if labelled else []
        if isinstance(component, Signal):
            return [*head, *signal_cells(component, start, y, width)]
        if isinstance(component, DeviceRef):
            head = head or [label_box(component.label, component.description, 0, y)]
            return [*head, open_button(component.pv or "Open", component.ui or component.name,
                                       component.macros, LABEL_WIDTH + GAP, y, WIDGET_WIDTH)]
        if isinstance(component, Group):
            return self.group_row(component, y)
        return []

    def group_row(self, group: Group, y: int) -> list[Box]:
        layout = group.layout
        if layout.type == "Row":
            return self.row_layout(group, y)
        if layout.type == "Plot":
            traces = [(s.label, s.read_pv) for s in group.children
                      if isinstance(s, Signal) and s.read_pv]
            return [label_box(group.label, group.description, 0, y),
                    Box("xyplot", LABEL_WIDTH + GAP, y, WIDGET_WIDTH, PLOT_HEIGHT, name="Plot",
                        options={"traces": traces})]
        if layout.type == "SubScreen":
            return self.sub_screen_button(group, 0, y)
        return [self.group_box(group, 0, y)]

    def row_layout(self, group: Group, y: int) -> list[Box]:
        """A `Row` group: its label, then each child's widgets side by side (headed above)."""
        cells = [c for c in group.children if isinstance(c, Signal | DeviceRef)
                 or isinstance(c, Group) and c.layout.type == "SubScreen"]
        count = max(1, len(cells))
        each = max(SMALL * 2, (WIDGET_WIDTH - GAP * (count - 1)) // count)
        boxes: list[Box] = []
        if group.layout.header:
            for i, text in enumerate(group.layout.header[:count]):
                boxes.append(Box("label", LABEL_WIDTH + GAP + i * (each + GAP), y, each,
                                 ROW_HEIGHT, name="Header", text=text,
                                 options={"align": "center"}))
            y += ROW_HEIGHT + GAP
        boxes.append(label_box(group.label, group.description, 0, y))
        for i, cell in enumerate(cells):
            x = LABEL_WIDTH + GAP + i * (each + GAP)
            if isinstance(cell, Signal):
                boxes.extend(signal_cells(cell, x, y, each))
            elif isinstance(cell, DeviceRef):
                boxes.append(open_button(cell.pv or "Open", cell.ui or cell.name, cell.macros,
                                         x, y, each))
            elif isinstance(cell, Group):
                boxes.append(open_button(cell.label, self.sub_screen(cell), {}, x, y, each))
        return boxes

    def group_box(self, group: Group, x: int, y: int) -> Box:
        inner = self.rows(group.children, group.layout.labelled)
        width = max(ROW_WIDTH, _right(inner)) + 2 * GROUP_INSET
        height = (_bottom(inner, 0) if inner else ROW_HEIGHT) + 2 * GROUP_INSET
        return Box("group", x, y, width, height, name=group.label, text=group.label,
                   children=inner)

    def sub_screen(self, group: Group) -> str:
        """Plan the screen a `SubScreen` group opens (with its own sub-screens); its file."""
        file, outer = self.sub_screen_file(group), self.file
        self.file = file
        try:
            self.screens.append(self.screen(file, group.label, group.children,
                                            group.layout.labelled))
        finally:
            self.file = outer
        return file

    def sub_screen_button(self, group: Group, x: int, y: int) -> list[Box]:
        file = self.sub_screen(group)
        if not group.layout.labelled:
            return [open_button(group.label, file, {}, x, y, ROW_WIDTH)]
        return [label_box(group.label, group.description, x, y),
                open_button(group.label, file, {}, x + LABEL_WIDTH + GAP, y, WIDGET_WIDTH)]

    def screen(self, file: str, title: str, components: list[Component],
               labelled: bool = True) -> Screen:
        """Top-level items fill columns; a column ends before it would pass MAX_HEIGHT."""
        top = TITLE_HEIGHT + MARGIN
        x, y = MARGIN, top
        column_right = x
        boxes: list[Box] = []
        for component in split_out_plots(components):
            placed = self.row(component, 0, labelled)
            if not placed:
                continue
            height = _bottom(placed, 0)
            if y > top and y + height > MAX_HEIGHT - MARGIN:
                x, y = column_right + GAP, top
            boxes.extend(b.moved(x, y) for b in placed)
            column_right = max(column_right, x + _right(placed))
            y += height + GAP
        width = max(ROW_WIDTH, _right(boxes)) + MARGIN
        height = max(top, _bottom(boxes, 0) if boxes else top) + MARGIN
        return Screen(file, title, width, height, boxes)


def layout_device(device: Device, file: str | None = None) -> list[Screen]:
    """The main screen of a device (named `file`, default the device name) first, then its
    sub-screens, each named `<Device>_<Group>` (+ the suffixes of `file`, e.g. `.pvi`)."""
    planner = _Planner(file or device.name)
    main = planner.screen(planner.file, device.label, device.children)
    return [main, *planner.screens]


def flatten(boxes: list[Box], dx: int = 0, dy: int = 0) -> list[Box]:
    """Every box with absolute coordinates; a group's children sit inside its frame."""
    out: list[Box] = []
    for box in boxes:
        moved = box.moved(dx, dy)
        out.append(moved)
        if box.children:
            out.extend(flatten(box.children, moved.x + GROUP_INSET, moved.y + GROUP_INSET))
    return out
