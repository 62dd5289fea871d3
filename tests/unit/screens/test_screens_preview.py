"""`berth screens --preview html` rendered by a real browser (headless Chromium): the picture
is a screen, and in the browser's own layout no widget covers another and no text runs over a
neighbouring widget."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "screens"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--hide-scrollbars", "--user-data-dir={profile}"]

# Run in the page: every widget box and text as the browser laid them out.
MEASURE = """
<pre id="measured"></pre>
<script>
const box = e => { const r = e.getBoundingClientRect();
  return {i: e.dataset.i, kind: e.getAttribute('class'), x: r.x, y: r.y, w: r.width,
          h: r.height}; };
document.getElementById('measured').textContent = JSON.stringify({
  widgets: [...document.querySelectorAll('rect[data-i]')].map(box),
  texts: [...document.querySelectorAll('text.t-widget')].map(box)});
</script>
"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [f.format(profile=tmp_path / "profile") for f in FLAGS]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=90, env={**os.environ, "HOME": str(tmp_path)})


def preview(device: Path, out: Path, *search: Path) -> list[Path]:
    extra = [a for p in search for a in ("--search", str(p))]
    result = run_berth("screens", device, "--preview", "html", "-o", out, *extra)
    assert result.returncode == 0, result.stderr
    return sorted(out.glob("*.html"))


def measure(html: Path, tmp_path: Path) -> dict[str, list[dict[str, float]]]:
    page = tmp_path / f"measure-{html.name}"
    page.write_text(html.read_text().replace("</body>", MEASURE + "</body>"))
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr
    start = result.stdout.index('<pre id="measured">') + len('<pre id="measured">')
    text = result.stdout[start:result.stdout.index("</pre>", start)]
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&"))


def hits(a: dict[str, float], b: dict[str, float], slack: float = 0.5) -> bool:
    return (a["x"] < b["x"] + b["w"] - slack and b["x"] < a["x"] + a["w"] - slack
            and a["y"] < b["y"] + b["h"] - slack and b["y"] < a["y"] + a["h"] - slack)


def layout_faults(measured: dict[str, list[dict[str, float]]]) -> list[str]:
    widgets = [w for w in measured["widgets"] if w["w"] > 0 and w["h"] > 0]
    faults = []
    for n, a in enumerate(widgets):
        faults += [f"{a['kind']} {a['i']} overlaps {b['kind']} {b['i']}"
                   for b in widgets[n + 1:] if hits(a, b)]
    by_index = {w["i"]: w for w in widgets}
    for text in measured["texts"]:
        own = by_index[text["i"]]
        if text["x"] + text["w"] > own["x"] + own["w"] + 1:
            faults.append(f"text of {own['kind']} {text['i']} runs past its widget")
        faults += [f"text of {own['kind']} {text['i']} runs over {w['kind']} {w['i']}"
                   for w in widgets if w["i"] != text["i"] and hits(text, w)]
    return faults


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """(width, height, number of distinct byte values in the pixel data) of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@needs_chromium
def test_preview_in_a_browser_has_no_overlap(tmp_path: Path) -> None:
    pages = preview(DATA / "testdev.pvi.device.yaml", tmp_path / "out")
    assert [p.name for p in pages] == ["testdev.html", "testdev_Expert.html"]
    measured = measure(pages[0], tmp_path)
    assert len(measured["widgets"]) >= 20  # every widget of the device was drawn
    assert layout_faults(measured) == []


@needs_chromium
def test_preview_of_a_corpus_device_has_no_overlap(tmp_path: Path, corpus: Path) -> None:
    device = corpus / "ibek-support/ADCore/NDROI.pvi.device.yaml"
    for page in preview(device, tmp_path / "out"):
        assert layout_faults(measure(page, tmp_path)) == [], page.name


@needs_chromium
def test_overlap_in_the_browser_is_detected(tmp_path: Path) -> None:
    """The in-browser check fails on a screen whose widgets do overlap."""
    bob = tmp_path / "bad.bob"
    bob.write_text('<display version="2.0.0"><width>300</width><height>60</height>'
                   '<widget type="textupdate"><pv_name>A</pv_name><x>0</x><y>0</y>'
                   '<width>100</width><height>20</height></widget>'
                   '<widget type="textupdate"><pv_name>B</pv_name><x>50</x><y>10</y>'
                   '<width>100</width><height>20</height></widget></display>')
    result = run_berth("screens", bob, "--preview", "html", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert layout_faults(measure(tmp_path / "out" / "bad.html", tmp_path))


@needs_chromium
def test_preview_screenshot_is_a_picture_of_the_screen(tmp_path: Path) -> None:
    page = preview(DATA / "widgets.pvi.device.yaml", tmp_path / "out")[0]
    picture = tmp_path / "widgets.png"
    result = chromium(tmp_path, f"--screenshot={picture}", "--window-size=1000,900",
                      page.as_uri())
    assert result.returncode == 0, result.stderr
    width, height, colours = png_size_and_colours(picture)
    assert (width, height) == (1000, 900)
    assert colours > 50  # widgets, frames and text, not a blank page
