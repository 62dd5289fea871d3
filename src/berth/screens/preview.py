"""A cheap look at a `.bob` screen without Phoebus: an HTML page holding an SVG drawing.

Each widget is drawn as a box at its place (groups as framed boxes whose children sit inside
the frame), labelled with its text or PV name, so layout mistakes show at a glance.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from berth.errors import error
from berth.screens.bob import escape, quoteattr
from berth.screens.layout import GROUP_INSET

# Fill colour per widget type; anything else is drawn grey.
FILLS = {
    "label": "none",
    "textupdate": "#d8e4f0",
    "textentry": "#ffffff",
    "combo": "#eef3ff",
    "led": "#3cc43c",
    "slide_button": "#c8d8c8",
    "checkbox": "#ffffff",
    "action_button": "#dcdcdc",
    "byte_monitor": "#3c643c",
    "progressbar": "#d0e8ff",
    "xyplot": "#fafafa",
    "image": "#202020",
    "table": "#ffffff",
    "group": "none",
}


@dataclass(frozen=True)
class Rect:
    """A widget's place on the screen in absolute pixels, with what it shows."""

    kind: str
    x: int
    y: int
    width: int
    height: int
    text: str
    depth: int  # 0 = on the display, 1 = inside a group, ...


def _int(widget: ET.Element, tag: str, default: int = 0) -> int:
    value = widget.findtext(tag)
    try:
        return int(float(value)) if value is not None else default
    except ValueError:
        return default


def widget_rects(bob_text: str, source: str | Path = "<bob>") -> tuple[int, int, list[Rect]]:
    """(display width, display height, every widget's absolute rectangle)."""
    try:
        root = ET.fromstring(bob_text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise error(f"not a well-formed .bob file: {exc}", source, line, column) from None
    if root.tag != "display":
        raise error(f"not a .bob display (top element is <{root.tag}>)", source)
    rects: list[Rect] = []

    def visit(parent: ET.Element, dx: int, dy: int, depth: int) -> None:
        for widget in parent.findall("widget"):
            kind = widget.get("type", "?")
            x = dx + _int(widget, "x")
            y = dy + _int(widget, "y")
            text = (widget.findtext("text") or widget.findtext("pv_name")
                    or widget.findtext("name") or kind)
            rects.append(Rect(kind, x, y, _int(widget, "width", 100),
                              _int(widget, "height", 20), text, depth))
            if kind == "group":
                visit(widget, x + GROUP_INSET, y + GROUP_INSET, depth + 1)

    visit(root, 0, 0, 0)
    return _int(root, "width", 800), _int(root, "height", 600), rects


def render_svg(bob_text: str, source: str | Path = "<bob>") -> str:
    width, height, rects = widget_rects(bob_text, source)
    width = max([width, *(r.x + r.width for r in rects)])
    height = max([height, *(r.y + r.height for r in rects)])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="Liberation Sans, sans-serif" '
             'font-size="12">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f0f0f0"/>']
    for index, r in enumerate(rects):
        fill = FILLS.get(r.kind, "#cccccc")
        stroke = "#8c8c8c" if r.kind != "label" else "none"
        if r.kind == "group":
            parts.append(f'<rect class="w-group" x="{r.x}" y="{r.y + GROUP_INSET // 2}" '
                         f'width="{r.width}" height="{r.height - GROUP_INSET // 2}" '
                         'fill="none" stroke="#8c8c8c" rx="3"/>')
            parts.append(f'<text x="{r.x + 8}" y="{r.y + 12}" font-weight="bold">'
                         f"{escape(r.text)}</text>")
            continue
        parts.append(f'<rect class={quoteattr("w-" + r.kind)} data-i="{index}" x="{r.x}" '
                     f'y="{r.y}" width="{r.width}" height="{r.height}" fill="{fill}" '
                     f'stroke="{stroke}"><title>{escape(r.text)}</title></rect>')
        if r.kind in ("led", "slide_button", "checkbox", "byte_monitor", "image"):
            continue
        bold = ' font-weight="bold"' if r.kind == "label" and r.depth == 0 and r.y == 0 else ""
        clip = max(1, (r.width - 4) // 7)  # about 7 px per character at 12 px
        text = r.text if len(r.text) <= clip else r.text[: max(1, clip - 1)] + "…"
        parts.append(f'<text class="t-widget" data-i="{index}" x="{r.x + 3}" '
                     f'y="{r.y + min(r.height, 20) - 6}"{bold}>'
                     f"{escape(text)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(bob_text: str, source: str | Path = "<bob>", title: str = "") -> str:
    svg = render_svg(bob_text, source)
    heading = escape(title or str(source))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{heading}</title>"
            "<style>body{margin:0;background:#fff}</style></head>\n"
            f"<body>\n{svg}\n</body></html>\n")
