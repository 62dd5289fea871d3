"""Phoebus Display Builder `.bob` files from laid-out screens.

The XML is written by hand, element by element in a fixed order, so the bytes depend only on
the input (no XML library or formatter version in between).
"""

from __future__ import annotations

from berth.screens.layout import Box, Screen

# xml.sax.saxutils does the same, but importing it pulls in urllib and http (~20 ms on every
# `berth generate` that writes screens)
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": "&#10;", "\r": "&#13;",
                       "\t": "&#9;"})


def escape(text: str) -> str:
    """Text as XML character data."""
    return text.translate(_TEXT)


def quoteattr(text: str) -> str:
    """Text as a quoted XML attribute value (the quote character chosen as saxutils does)."""
    text = text.translate(_ATTR)
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace('"', "&quot;") + '"'


# Phoebus text formats by pvi name (Phoebus stores the enum's index).
FORMATS = {"decimal": 1, "exponential": 2, "engineer": 3, "hexadecimal": 4, "string": 6}
# Widget type -> the version Phoebus writes for it.
VERSIONS = {"textentry": "3.0.0", "action_button": "3.0.0"}


class _Xml:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def open(self, tag: str, **attrs: str) -> None:
        self.lines.append("  " * self.depth + f"<{tag}{_attrs(attrs)}>")
        self.depth += 1

    def close(self, tag: str) -> None:
        self.depth -= 1
        self.lines.append("  " * self.depth + f"</{tag}>")

    def leaf(self, tag: str, value: object, **attrs: str) -> None:
        text = escape(str(value))
        self.lines.append("  " * self.depth + f"<{tag}{_attrs(attrs)}>{text}</{tag}>")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f" {key}={quoteattr(value)}" for key, value in attrs.items())


def _font(xml: _Xml, name: str, size: str, use_class: bool = False) -> None:
    if use_class:
        xml.open("font", use_class="true")
    else:
        xml.open("font")
    xml.open("font", name=name, family="Liberation Sans", style="BOLD", size=size)
    xml.close("font")
    xml.close("font")


def _geometry(xml: _Xml, box: Box) -> None:
    xml.leaf("x", box.x)
    xml.leaf("y", box.y)
    xml.leaf("width", box.width)
    xml.leaf("height", box.height)


def _title(xml: _Xml, screen: Screen) -> None:
    xml.open("widget", type="label", version="2.0.0")
    xml.leaf("name", "Title")
    xml.leaf("class", "TITLE")
    xml.leaf("text", screen.title)
    xml.leaf("x", 0, use_class="true")
    xml.leaf("y", 0, use_class="true")
    xml.leaf("width", screen.width)
    xml.leaf("height", 25)
    _font(xml, "Header 1", "22.0", use_class=True)
    xml.open("foreground_color", use_class="true")
    xml.open("color", name="Text", red="0", green="0", blue="0")
    xml.close("color")
    xml.close("foreground_color")
    xml.leaf("transparent", "true", use_class="true")
    xml.leaf("horizontal_alignment", 1)
    xml.close("widget")


def _actions(xml: _Xml, box: Box) -> None:
    opts = box.options
    xml.open("actions")
    if opts["action"] == "open_display":
        xml.open("action", type="open_display")
        xml.leaf("file", opts["file"])
        xml.leaf("target", "tab")
        xml.leaf("description", opts.get("description", "Open Display"))
        if opts.get("macros"):
            xml.open("macros")
            for key, value in opts["macros"].items():
                xml.leaf(key, value)
            xml.close("macros")
        xml.close("action")
    else:
        xml.open("action", type="write_pv")
        xml.leaf("pv_name", box.pv)
        xml.leaf("value", opts.get("value", ""))
        xml.leaf("description", opts.get("description", box.text))
        xml.close("action")
    xml.close("actions")


def _widget(xml: _Xml, box: Box, extension: str) -> None:
    kind = box.kind
    xml.open("widget", type=kind, version=VERSIONS.get(kind, "2.0.0"))
    xml.leaf("name", box.name or kind)
    if kind == "action_button" and box.options.get("action") == "open_display":
        opts = dict(box.options)
        opts["file"] = f"{opts['file']}.{extension}"
        box = Box(box.kind, box.x, box.y, box.width, box.height, box.name, box.text, box.pv,
                  box.tooltip, opts, box.children)
    if kind in ("action_button",):
        _actions(xml, box)
    elif box.pv and kind != "xyplot":
        xml.leaf("pv_name", box.pv)
    if kind in ("label", "action_button"):
        xml.leaf("text", box.text)
    if kind == "slide_button":
        xml.leaf("label", "")
    if kind == "checkbox":
        xml.leaf("label", "")
    _geometry(xml, box)
    fmt = box.options.get("format")
    if kind in ("textupdate", "textentry") and fmt in FORMATS:
        xml.leaf("format", FORMATS[fmt])
    if kind == "textentry" and box.options.get("lines", 1) > 1:
        xml.leaf("multi_line", "true")
    if kind == "textupdate" and box.options.get("lines", 1) > 1:
        xml.leaf("wrap_words", "true")
    if kind == "textupdate":
        _font(xml, "Default Bold", "14.0")
    if kind in ("textupdate", "textentry"):
        xml.leaf("horizontal_alignment", 1)
    if kind == "label" and box.options.get("align") == "center":
        xml.leaf("horizontal_alignment", 1)
    if kind == "combo":
        items = box.options.get("items") or []
        if items:
            xml.open("items")
            for item in items:
                xml.leaf("item", item)
            xml.close("items")
            xml.leaf("items_from_pv", "false")
    if kind == "byte_monitor":
        xml.leaf("numBits", box.options.get("bits", 8))
        xml.leaf("horizontal", "true")
    if kind == "xyplot":
        xml.open("traces")
        for name, pv in box.options.get("traces", []):
            xml.open("trace")
            xml.leaf("name", name)
            xml.leaf("x_pv", "")
            xml.leaf("y_pv", pv)
            xml.leaf("err_pv", "")
            xml.leaf("axis", 0)
            xml.close("trace")
        xml.close("traces")
    if kind == "table":
        xml.leaf("editable", "true" if box.options.get("editable") else "false")
    if kind == "group":
        xml.leaf("transparent", "true")
        for child in box.children:
            _widget(xml, child, extension)
    if box.tooltip:
        xml.leaf("tooltip", box.tooltip)
    xml.close("widget")


def render_bob(screen: Screen, extension: str = "bob") -> str:
    """One screen as `.bob` text; open-display buttons point at `<file>.<extension>`."""
    xml = _Xml()
    xml.open("display", version="2.0.0")
    xml.leaf("name", screen.title)
    xml.leaf("x", 0)
    xml.leaf("y", 0, use_class="true")
    xml.leaf("width", screen.width)
    xml.leaf("height", screen.height)
    xml.leaf("grid_step_x", 4)
    xml.leaf("grid_step_y", 4)
    _title(xml, screen)
    for box in screen.boxes:
        _widget(xml, box, extension)
    xml.close("display")
    return xml.text()

