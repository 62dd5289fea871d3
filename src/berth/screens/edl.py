"""EDM `.edl` files (format 4 0 1) from laid-out screens.

Each widget is an `object <class>` followed by a `beginObjectProperties` …
`endObjectProperties` block of `key value` lines, with absolute coordinates.
"""

from __future__ import annotations

from berth.screens.layout import GROUP_INSET, Box, Screen, flatten

FONT = '"helvetica-medium-r-12.0"'
BOLD = '"helvetica-bold-r-12.0"'
# EDM's default colour list indices.
WHITE, BLACK, CANVAS, MONITOR, CONTROL, EDGE = 0, 14, 3, 16, 25, 8


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Edl:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def begin(self, cls: str, comment: str, box: Box, minor: int = 0) -> None:
        self.add(f"# ({comment})", f"object {cls}", "beginObjectProperties", "major 4",
                 f"minor {minor}", "release 0", f"x {box.x}", f"y {box.y}", f"w {box.width}",
                 f"h {box.height}")

    def end(self) -> None:
        self.add("endObjectProperties", "")


def _text(edl: _Edl, box: Box, text: str, font: str = FONT, align: str = "left") -> None:
    edl.begin("activeXTextClass", "Static Text", box, minor=1)
    edl.add(f"font {font}", f"fontAlign {_q(align)}", f"fgColor index {BLACK}",
            f"bgColor index {CANVAS}", "useDisplayBg", "value {", f"  {_q(text)}", "}")
    edl.end()


def _box(edl: _Edl, box: Box, extension: str) -> None:
    kind = box.kind
    pv = _q(box.pv)
    if kind == "label":
        align = "center" if box.options.get("align") == "center" else "left"
        _text(edl, box, box.text, align=align)
    elif kind == "group":
        frame = Box("group", box.x, box.y + GROUP_INSET // 2, box.width,
                    box.height - GROUP_INSET // 2)
        edl.begin("activeRectangleClass", "Rectangle", frame)
        edl.add(f"lineColor index {EDGE}", "fillColor index 0", "lineWidth 1")
        edl.end()
        caption = Box("label", box.x + GROUP_INSET // 2, box.y, box.width - GROUP_INSET,
                      GROUP_INSET - 4)
        _text(edl, caption, box.text, font=BOLD)
    elif kind in ("textupdate", "image", "table"):
        edl.begin("activeXTextDspClass:noedit", "Text Monitor", box, minor=7)
        edl.add(f"controlPv {pv}", f"font {FONT}", 'fontAlign "center"',
                f"fgColor index {MONITOR}", f"bgColor index {CANVAS}", "useDisplayBg",
                "limitsFromDb", 'nullColor index 0', "smartRefresh", "fastUpdate")
        if box.options.get("format") == "string":
            edl.add('format "string"')
        edl.end()
    elif kind == "textentry":
        edl.begin("activeXTextDspClass", "Text Control", box, minor=7)
        edl.add(f"controlPv {pv}", f"font {FONT}", 'fontAlign "center"',
                f"fgColor index {BLACK}", f"bgColor index {CONTROL}", "editable",
                "motifWidget", "limitsFromDb", 'nullColor index 0', "smartRefresh",
                "fastUpdate")
        if box.options.get("format") == "string":
            edl.add('format "string"')
        edl.end()
    elif kind == "combo":
        edl.begin("activeMenuButtonClass", "Menu Button", box)
        edl.add(f"fgColor index {BLACK}", f"bgColor index {CONTROL}",
                f"inconsistentColor index {EDGE}", f"topShadowColor index {WHITE}",
                f"botShadowColor index {BLACK}", f"controlPv {pv}", f"font {FONT}")
        edl.end()
    elif kind in ("slide_button", "checkbox"):
        edl.begin("activeButtonClass", "Button", box)
        edl.add(f"fgColor index {BLACK}", f"onColor index {CONTROL}",
                f"offColor index {CONTROL}", f"topShadowColor index {WHITE}",
                f"botShadowColor index {BLACK}", f"controlPv {pv}", 'onLabel "On"',
                'offLabel "Off"', "toggle", f"font {FONT}")
        edl.end()
    elif kind in ("led", "byte_monitor"):
        bits = 1 if kind == "led" else int(box.options.get("bits", 8))
        edl.begin("ByteClass", "Byte", box)
        edl.add(f"controlPv {pv}", "lineColor index 14", "onColor index 15",
                "offColor index 19", f"numBits {bits}")
        edl.end()
    elif kind == "progressbar":
        edl.begin("activeBarClass", "Bar", box, minor=1)
        edl.add(f"indicatorPv {pv}", "indicatorColor index 21", f"fgColor index {BLACK}",
                f"bgColor index {CANVAS}", "limitsFromDb", 'orientation "horizontal"')
        edl.end()
    elif kind == "xyplot":
        traces = box.options.get("traces", [])
        edl.begin("xyGraphClass", "X-Y Graph", box)
        edl.add(f"fgColor index {BLACK}", f"bgColor index {WHITE}", 'plotMode "plotLastNPts"',
                f"numTraces {len(traces)}", "yPv {")
        edl.add(*(f"  {i} {_q(trace_pv)}" for i, (_n, trace_pv) in enumerate(traces)))
        edl.add("}", "plotColor {")
        edl.add(*(f"  {i} index {MONITOR}" for i in range(len(traces))))
        edl.add("}")
        edl.end()
    elif kind == "action_button" and box.options.get("action") == "open_display":
        macros = box.options.get("macros") or {}
        edl.begin("relatedDisplayClass", "Related Display", box)
        edl.add(f"fgColor index {BLACK}", f"bgColor index {CONTROL}",
                f"topShadowColor index {WHITE}", f"botShadowColor index {BLACK}",
                f"font {FONT}", f"buttonLabel {_q(box.text)}", "numPvs 0", "numDsps 1",
                "displayFileName {", f"  0 {_q(box.options['file'] + '.' + extension)}", "}",
                "menuLabel {", f"  0 {_q(box.text)}", "}")
        if macros:
            symbols = ",".join(f"{k}={v}" for k, v in macros.items())
            edl.add("symbols {", f"  0 {_q(symbols)}", "}")
        edl.end()
    elif kind == "action_button":
        edl.begin("activeMessageButtonClass", "Message Button", box)
        edl.add(f"fgColor index {BLACK}", f"onColor index {CONTROL}",
                f"offColor index {CONTROL}", f"topShadowColor index {WHITE}",
                f"botShadowColor index {BLACK}", f"controlPv {pv}",
                f"pressValue {_q(str(box.options.get('value', '')))}",
                f"onLabel {_q(box.text)}", f"offLabel {_q(box.text)}", f"font {FONT}")
        edl.end()
    else:
        raise ValueError(f"no EDM widget for {kind}")


def render_edl(screen: Screen, extension: str = "edl") -> str:
    edl = _Edl()
    edl.add("4 0 1", "beginScreenProperties", "major 4", "minor 0", "release 1", "x 0", "y 0",
            f"w {screen.width}", f"h {screen.height}", f"font {FONT}", f"ctlFont {FONT}",
            f"btnFont {FONT}", f"fgColor index {BLACK}", f"bgColor index {CANVAS}",
            f"textColor index {BLACK}", f"ctlFgColor1 index {BLACK}",
            f"ctlFgColor2 index {WHITE}", f"ctlBgColor1 index {WHITE}",
            f"ctlBgColor2 index {BLACK}", f"topShadowColor index {WHITE}",
            f"botShadowColor index {BLACK}", f"title {_q(screen.title)}", "showGrid",
            "snapToGrid", "gridSize 5", "endScreenProperties", "")
    _text(edl, Box("label", 0, 0, screen.width, 25), screen.title, font=BOLD, align="center")
    for box in flatten(screen.boxes):
        _box(edl, box, extension)
    return "\n".join(edl.lines)
