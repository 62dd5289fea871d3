"""MEDM `.adl` files from laid-out screens.

ADL is nested `name { key=value … }` blocks with absolute coordinates, so group boxes become an
outlined rectangle with a caption and their children are placed at absolute positions.
"""

from __future__ import annotations

from berth.screens.layout import GROUP_INSET, Box, Screen, flatten

# Colour indices into the colour map written below.
WHITE, LIGHT, GREY, BLACK, BLUE, ENTRY, GREEN, RED = 0, 4, 8, 14, 54, 51, 15, 20


def _palette() -> list[str]:
    """65 colours (MEDM's fixed count): a grey ramp with a few named colours at fixed indices."""
    colours = [f"{v:02x}{v:02x}{v:02x}" for v in range(255, 0, -4)][:65]
    while len(colours) < 65:
        colours.append("000000")
    named = {WHITE: "ffffff", LIGHT: "c8c8c8", GREY: "9e9e9e", BLACK: "000000",
             BLUE: "0000c4", ENTRY: "bbd7f0", GREEN: "00d800", RED: "de1309"}
    for index, value in named.items():
        colours[index] = value
    return colours


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Adl:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def open(self, name: str) -> None:
        quoted = _q(name) if " " in name else name
        self.lines.append("\t" * self.depth + quoted + " {")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.lines.append("\t" * self.depth + "}")

    def set(self, key: str, value: str | int) -> None:
        self.lines.append("\t" * self.depth + f"{key}={value}")

    def raw(self, text: str) -> None:
        self.lines.append("\t" * self.depth + text)

    def object(self, x: int, y: int, width: int, height: int) -> None:
        self.open("object")
        self.set("x", x)
        self.set("y", y)
        self.set("width", width)
        self.set("height", height)
        self.close()

    def pv_block(self, block: str, pv: str, clr: int, bclr: int) -> None:
        self.open(block)
        self.set("chan", _q(pv))
        self.set("clr", clr)
        self.set("bclr", bclr)
        self.close()


def _text(adl: _Adl, text: str, x: int, y: int, width: int, height: int,
          align: str = "horiz. left") -> None:
    adl.open("text")
    adl.object(x, y, width, height)
    adl.open("basic attribute")
    adl.set("clr", BLACK)
    adl.close()
    adl.set("textix", _q(text))
    adl.set("align", _q(align))
    adl.close()


def _macro_args(macros: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in macros.items())


def _box(adl: _Adl, box: Box, extension: str) -> None:
    x, y, w, h = box.x, box.y, box.width, box.height
    kind = box.kind
    if kind == "label":
        align = "horiz. centered" if box.options.get("align") == "center" else "horiz. left"
        _text(adl, box.text, x, y, w, h, align)
    elif kind == "group":
        adl.open("rectangle")
        adl.object(x, y + GROUP_INSET // 2, w, h - GROUP_INSET // 2)
        adl.open("basic attribute")
        adl.set("clr", GREY)
        adl.set("fill", _q("outline"))
        adl.close()
        adl.close()
        _text(adl, box.text, x + GROUP_INSET // 2, y, w - GROUP_INSET, GROUP_INSET - 4)
    elif kind in ("textupdate", "image", "table"):
        adl.open("text update")
        adl.object(x, y, w, h)
        adl.pv_block("monitor", box.pv, BLUE, LIGHT)
        adl.set("align", _q("horiz. centered"))
        if box.options.get("format") == "string":
            adl.set("format", _q("string"))
        adl.open("limits")
        adl.close()
        adl.close()
    elif kind == "textentry":
        adl.open("text entry")
        adl.object(x, y, w, h)
        adl.pv_block("control", box.pv, BLACK, ENTRY)
        if box.options.get("format") == "string":
            adl.set("format", _q("string"))
        adl.open("limits")
        adl.close()
        adl.close()
    elif kind == "combo":
        adl.open("menu")
        adl.object(x, y, w, h)
        adl.pv_block("control", box.pv, BLACK, ENTRY)
        adl.close()
    elif kind in ("slide_button", "checkbox"):
        adl.open("choice button")
        adl.object(x, y, w, h)
        adl.pv_block("control", box.pv, BLACK, ENTRY)
        adl.set("stacking", _q("column"))
        adl.close()
    elif kind == "led":
        adl.open("byte")
        adl.object(x, y, w, h)
        adl.pv_block("monitor", box.pv, GREEN, GREY)
        adl.set("sbit", 0)
        adl.set("ebit", 0)
        adl.close()
    elif kind == "byte_monitor":
        adl.open("byte")
        adl.object(x, y, w, h)
        adl.pv_block("monitor", box.pv, GREEN, GREY)
        adl.set("sbit", 0)
        adl.set("ebit", max(0, int(box.options.get("bits", 8)) - 1))
        adl.close()
    elif kind == "progressbar":
        adl.open("bar")
        adl.object(x, y, w, h)
        adl.pv_block("monitor", box.pv, BLUE, LIGHT)
        adl.open("limits")
        adl.close()
        adl.close()
    elif kind == "xyplot":
        adl.open("cartesian plot")
        adl.object(x, y, w, h)
        adl.open("plotcom")
        adl.set("clr", BLACK)
        adl.set("bclr", WHITE)
        adl.close()
        for i, (_name, pv) in enumerate(box.options.get("traces", [])):
            adl.open(f"trace[{i}]")
            adl.set("ydata", _q(pv))
            adl.set("data_clr", BLUE)
            adl.close()
        adl.close()
    elif kind == "action_button" and box.options.get("action") == "open_display":
        adl.open("related display")
        adl.object(x, y, w, h)
        adl.open("display[0]")
        adl.set("label", _q(box.text))
        adl.set("name", _q(f"{box.options['file']}.{extension}"))
        macros = box.options.get("macros") or {}
        if macros:
            adl.set("args", _q(_macro_args(macros)))
        adl.close()
        adl.set("clr", BLACK)
        adl.set("bclr", LIGHT)
        adl.set("label", _q("-" + box.text))
        adl.close()
    elif kind == "action_button":
        adl.open("message button")
        adl.object(x, y, w, h)
        adl.pv_block("control", box.pv, BLACK, LIGHT)
        adl.set("label", _q(box.text))
        adl.set("press_msg", _q(str(box.options.get("value", ""))))
        adl.close()
    else:
        raise ValueError(f"no MEDM widget for {kind}")


def render_adl(screen: Screen, extension: str = "adl") -> str:
    adl = _Adl()
    adl.open("file")
    adl.set("name", _q(f"{screen.file}.{extension}"))
    adl.set("version", "030117")
    adl.close()
    adl.open("display")
    adl.object(0, 0, screen.width, screen.height)
    adl.set("clr", BLACK)
    adl.set("bclr", LIGHT)
    adl.set("cmap", _q(""))
    adl.set("gridSpacing", 5)
    adl.set("gridOn", 0)
    adl.set("snapToGrid", 0)
    adl.close()
    adl.open("color map")
    adl.set("ncolors", 65)
    adl.open("colors")
    for colour in _palette():
        adl.raw(colour + ",")
    adl.close()
    adl.close()
    _text(adl, screen.title, 0, 0, screen.width, 25, "horiz. centered")
    for box in flatten(screen.boxes):
        _box(adl, box, extension)
    return "\n".join(adl.lines) + "\n"
