"""Independent readers of the three screen formats, for the screen tests.

They follow each format's grammar (not berth's writer code), so a writer bug that produces an
unreadable file fails here. Each returns the PV names a file shows.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

# Widget types and their properties: those in the corpus's expected .bob files plus Phoebus's
# own widget set (display builder's widget properties for the types berth writes).
_COMMON = {"name", "class", "x", "y", "width", "height", "tooltip", "actions", "rules",
           "scripts", "visible", "border_width", "border_color"}
PHOEBUS_PROPERTIES: dict[str, set[str]] = {
    "display": {"name", "x", "y", "width", "height", "grid_step_x", "grid_step_y", "macros",
                "background_color", "grid_visible", "grid_color", "class"},
    "label": _COMMON | {"text", "font", "foreground_color", "background_color", "transparent",
                        "horizontal_alignment", "vertical_alignment", "wrap_words",
                        "auto_size", "rotation_step"},
    "textupdate": _COMMON | {"pv_name", "font", "foreground_color", "background_color",
                             "transparent", "format", "precision", "show_units",
                             "horizontal_alignment", "vertical_alignment", "wrap_words",
                             "rotation_step", "border_alarm_sensitive"},
    "textentry": _COMMON | {"pv_name", "font", "foreground_color", "background_color",
                            "format", "precision", "show_units", "horizontal_alignment",
                            "vertical_alignment", "wrap_words", "multi_line", "enabled",
                            "border_alarm_sensitive"},
    "combo": _COMMON | {"pv_name", "items", "items_from_pv", "editable", "enabled", "font",
                        "foreground_color", "background_color", "border_alarm_sensitive"},
    "led": _COMMON | {"pv_name", "bit", "off_color", "on_color", "off_label", "on_label",
                      "font", "foreground_color", "square", "labels_from_pv",
                      "border_alarm_sensitive"},
    "slide_button": _COMMON | {"pv_name", "bit", "label", "off_color", "on_color", "font",
                               "foreground_color", "enabled", "auto_size",
                               "border_alarm_sensitive"},
    "checkbox": _COMMON | {"pv_name", "bit", "label", "font", "foreground_color", "auto_size",
                           "enabled", "border_alarm_sensitive"},
    "action_button": _COMMON | {"pv_name", "text", "font", "foreground_color",
                                "background_color", "transparent", "rotation_step", "enabled",
                                "border_alarm_sensitive"},
    "byte_monitor": _COMMON | {"pv_name", "startBit", "numBits", "bitReverse", "horizontal",
                               "square", "off_color", "on_color", "foreground_color", "font",
                               "labels", "border_alarm_sensitive"},
    "progressbar": _COMMON | {"pv_name", "fill_color", "background_color", "limits_from_pv",
                              "minimum", "maximum", "horizontal", "log_scale",
                              "border_alarm_sensitive"},
    "xyplot": _COMMON | {"title", "title_font", "show_toolbar", "show_legend", "show_grid",
                         "background_color", "foreground_color", "x_axis", "y_axes", "traces",
                         "markers", "grid_color"},
    "image": _COMMON | {"pv_name", "data_width", "data_height", "color_map", "color_bar",
                        "x_axis", "y_axis", "autoscale", "minimum", "maximum", "show_toolbar",
                        "border_alarm_sensitive"},
    "table": _COMMON | {"pv_name", "editable", "columns", "show_toolbar", "font",
                        "foreground_color", "background_color", "border_alarm_sensitive"},
    "group": _COMMON | {"style", "font", "foreground_color", "background_color", "line_color",
                        "transparent", "macros"},
}


def bob_pvs(text: str) -> set[str]:
    """PV names in a .bob: widgets' pv_name, write actions' pv_name and plot traces' y_pv."""
    root = ET.fromstring(text)
    names = {e.text or "" for e in root.iter("pv_name")}
    names |= {e.text or "" for e in root.iter("y_pv")}
    return {n for n in names if n}


def bob_widget_types(text: str) -> set[str]:
    return {w.get("type", "") for w in ET.fromstring(text).iter("widget")}


def bob_open_actions(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(file, macros) of every open-display action."""
    out = set()
    for action in ET.fromstring(text).iter("action"):
        if action.get("type") == "open_display":
            macros = action.find("macros")
            pairs = tuple((m.tag, m.text or "") for m in macros) if macros is not None else ()
            out.add((action.findtext("file") or "", pairs))
    return out


def bob_unknown_properties(text: str) -> list[str]:
    """Every `type.property` that is not in Phoebus's widget set (empty when all are)."""
    root = ET.fromstring(text)
    bad = [f"display.{c.tag}" for c in root if c.tag != "widget"
           and c.tag not in PHOEBUS_PROPERTIES["display"]]
    for widget in root.iter("widget"):
        kind = widget.get("type", "")
        allowed = PHOEBUS_PROPERTIES.get(kind)
        if allowed is None:
            bad.append(f"{kind} (unknown widget type)")
            continue
        bad.extend(f"{kind}.{c.tag}" for c in widget if c.tag != "widget" and c.tag not in allowed)
    return bad


@dataclass
class Rect:
    kind: str
    x: int
    y: int
    w: int
    h: int
    children: list[Rect] = field(default_factory=list)


def bob_tree(text: str, inset: int) -> Rect:
    """The display and its widgets as rectangles; a group's children are relative to its
    content area, which starts `inset` pixels inside the group."""
    root = ET.fromstring(text)

    def rect(element: ET.Element, kind: str) -> Rect:
        node = Rect(kind, int(element.findtext("x") or 0), int(element.findtext("y") or 0),
                    int(element.findtext("width") or 0), int(element.findtext("height") or 0))
        node.children = [rect(w, w.get("type", "")) for w in element.findall("widget")]
        return node

    return rect(root, "display")


def overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


# --- MEDM ------------------------------------------------------------------------------------

_ADL_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{}=])|([^\s{}="]+))')
MEDM_BLOCKS = {"file", "display", "color map", "text", "text update", "text entry", "menu",
               "choice button", "message button", "related display", "rectangle", "byte",
               "bar", "cartesian plot", "oval", "polyline", "composite", "meter", "valuator",
               "strip chart", "indicator", "image", "arc", "polygon", "shell command",
               "wheel switch"}


@dataclass
class AdlBlock:
    name: str
    values: dict[str, str] = field(default_factory=dict)
    blocks: list[AdlBlock] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def parse_adl(text: str) -> list[AdlBlock]:
    """ADL: a sequence of `name { key=value | name { … } | word … }` blocks; raises on any
    deviation (unbalanced braces, `=` without key or value, stray tokens at top level)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _ADL_TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"bad ADL text at {pos}: {text[pos:pos + 20]!r}")
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    index = 0

    def unquote(token: str) -> str:
        return token[1:-1].replace('\\"', '"') if token.startswith('"') else token

    def block(name: str) -> AdlBlock:
        nonlocal index
        out = AdlBlock(unquote(name))
        while True:
            if index >= len(tokens):
                raise ValueError(f"block {name} not closed")
            token = tokens[index]
            if token == "}":
                index += 1
                return out
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            if following == "{":
                index += 2
                out.blocks.append(block(token))
            elif following == "=":
                if index + 2 >= len(tokens) or tokens[index + 2] in "{}=":
                    raise ValueError(f"{token}= has no value")
                out.values[token] = unquote(tokens[index + 2])
                index += 3
            elif token in "{=":
                raise ValueError(f"unexpected {token!r}")
            else:
                out.words.append(token)
                index += 1

    top: list[AdlBlock] = []
    while index < len(tokens):
        if index + 1 >= len(tokens) or tokens[index + 1] != "{":
            raise ValueError(f"expected a block at top level, got {tokens[index]!r}")
        index += 2
        top.append(block(tokens[index - 2]))
    return top


def adl_pvs(blocks: list[AdlBlock]) -> set[str]:
    out: set[str] = set()
    for b in blocks:
        for key in ("chan", "ydata"):
            if b.values.get(key):
                out.add(b.values[key])
        out |= adl_pvs(b.blocks)
    return out


# --- EDM -------------------------------------------------------------------------------------


@dataclass
class EdlObject:
    cls: str
    props: dict[str, list[str]]


def parse_edl(text: str) -> tuple[dict[str, list[str]], list[EdlObject]]:
    """EDL 4 0 1: header line, a screen-properties block, then `object CLASS` each followed by
    a `beginObjectProperties` … `endObjectProperties` block of `key [value]` lines, where a
    value of `{` opens a list ended by `}`."""
    lines = [line.rstrip() for line in text.splitlines()]
    if not lines or lines[0] != "4 0 1":
        raise ValueError("EDL header must be '4 0 1'")
    index = 1

    def properties(end: str) -> dict[str, list[str]]:
        nonlocal index
        props: dict[str, list[str]] = {}
        while True:
            if index >= len(lines):
                raise ValueError(f"missing {end}")
            line = lines[index].strip()
            index += 1
            if line == end:
                return props
            if not line:
                continue
            key, _, value = line.partition(" ")
            if value == "{":
                items = []
                while lines[index].strip() != "}":
                    items.append(lines[index].strip())
                    index += 1
                    if index >= len(lines):
                        raise ValueError(f"list {key} not closed")
                index += 1
                props[key] = items
            else:
                props[key] = [value]

    while index < len(lines) and lines[index].strip() != "beginScreenProperties":
        index += 1
    index += 1
    screen = properties("endScreenProperties")
    objects: list[EdlObject] = []
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if not line.startswith("object "):
            raise ValueError(f"expected 'object CLASS', got {line!r}")
        cls = line.split(" ", 1)[1]
        if lines[index].strip() != "beginObjectProperties":
            raise ValueError(f"object {cls} without beginObjectProperties")
        index += 1
        objects.append(EdlObject(cls, properties("endObjectProperties")))
    return screen, objects


def edl_pvs(objects: list[EdlObject]) -> set[str]:
    out: set[str] = set()
    for obj in objects:
        for key in ("controlPv", "indicatorPv"):
            for value in obj.props.get(key, []):
                out.add(value.strip('"'))
        for item in obj.props.get("yPv", []):
            out.add(item.split(" ", 1)[1].strip('"'))
    return {pv for pv in out if pv}
