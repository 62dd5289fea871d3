"""Screens from PVI device files: every corpus device in every format, compared with the
corpus's expected screens, laid out without overlap, and bad input reported cleanly."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "screens"
sys.path.insert(0, str(DATA))

from screen_formats import (  # noqa: E402
    Rect,
    adl_pvs,
    bob_open_actions,
    bob_pvs,
    bob_tree,
    bob_unknown_properties,
    bob_widget_types,
    edl_pvs,
    overlaps,
    parse_adl,
    parse_edl,
)

from berth.errors import BerthError  # noqa: E402
from berth.screens import (  # noqa: E402
    ScreenEntry,
    device_screens,
    ioc_screens,
    load_device,
    render_pvi_template,
)
from berth.screens.layout import GROUP_INSET  # noqa: E402
from berth.screens.pvi_model import Device  # noqa: E402

CORPUS_DEVICE_FILES = [
    "ibek/epics/pvi-defs/NDPluginDriver.pvi.device.yaml",
    "ibek/epics/pvi-defs/NDPluginStats.pvi.device.yaml",
    "ibek/epics/pvi-defs/asynNDArrayDriver.pvi.device.yaml",
    "ibek/epics/pvi-defs/simple.pvi.device.yaml",
    "ibek/support/simple.pvi.device.yaml",
]


def corpus_device_files(corpus: Path) -> list[Path]:
    return sorted(corpus.rglob("*.pvi.device.yaml"))


def corpus_search(corpus: Path) -> list[Path]:
    """Where corpus devices find their parents and includes: every ibek-support module."""
    return [p for p in sorted((corpus / "ibek-support").iterdir()) if p.is_dir()]


def render_all(path: Path, search: list[Path]) -> dict[str, dict[str, str]]:
    device = load_device(path, search)
    return {fmt: device_screens(device, fmt) for fmt in ("bob", "adl", "edl")}


def _corpus_device_params() -> list[str]:
    """Corpus device files, relative to BERTH_CORPUS, known at collection time; one
    placeholder (skipped by the `corpus` fixture) when the corpus is not available."""
    root = os.environ.get("BERTH_CORPUS")
    if root and Path(root).is_dir():
        return [str(p.relative_to(root)) for p in corpus_device_files(Path(root))]
    return ["corpus-not-available"]


@functools.cache
def _corpus_device(path: Path, corpus: Path) -> Device:
    """Each device is loaded once for the three formats."""
    return load_device(path, corpus_search(corpus))


def test_corpus_holds_the_device_files(corpus: Path) -> None:
    assert len(corpus_device_files(corpus)) >= 45


@pytest.mark.parametrize("fmt", ["bob", "adl", "edl"])
@pytest.mark.parametrize("relative", _corpus_device_params())
def test_every_corpus_device_renders_in_every_format(corpus: Path, relative: str,
                                                     fmt: str) -> None:
    device = _corpus_device(corpus / relative, corpus)
    bobs = device_screens(device, "bob")
    bob_names = set().union(*(bob_pvs(t) for t in bobs.values()))
    if "asynMotorController" not in relative:  # the only device file with no signals
        assert bob_names, "no PVs on the screens"
    if fmt == "bob":
        for file, text in bobs.items():
            assert bob_unknown_properties(text) == [], file  # also: well-formed XML
        return
    names: set[str] = set()
    for file, text in device_screens(device, fmt).items():
        if fmt == "adl":
            blocks = parse_adl(text)
            assert [b.name for b in blocks[:2]] == ["file", "display"], file
            names |= adl_pvs(blocks)
        else:
            screen, objects = parse_edl(text)
            assert screen["w"] and screen["h"], file
            names |= edl_pvs(objects)
    assert names == bob_names


def test_device_with_every_widget_type_renders_in_every_format() -> None:
    rendered = render_all(DATA / "widgets.pvi.device.yaml", [])
    bobs = rendered["bob"]
    # As pvi does, each plot not alone on its screen gets a screen of its own.
    assert set(bobs) == {"widgets.bob", "widgets_Trace.bob", "widgets_Image.bob"}
    assert {file for file, _ in bob_open_actions(bobs["widgets.bob"])} == {
        "widgets_Trace.bob", "widgets_Image.bob"}
    assert bob_widget_types(bobs["widgets_Trace.bob"]) >= {"xyplot"}
    assert bob_widget_types(bobs["widgets_Image.bob"]) >= {"image"}
    assert all(bob_unknown_properties(text) == [] for text in bobs.values())
    assert {"textupdate", "textentry", "led", "progressbar", "xyplot", "image", "table",
            "byte_monitor", "combo", "checkbox", "slide_button", "action_button",
            "group"} <= set().union(*map(bob_widget_types, bobs.values()))
    expected = {f"$(P){n}" for n in (
        "Setting", "Readout", "Text", "Led", "Progress", "Trace", "Image", "TableIn", "Bits",
        "TextOut", "Choice", "Check", "Toggle", "Buttons", "ArrayOut", "TableOut", "Go")}
    assert set().union(*map(bob_pvs, bobs.values())) == expected
    assert set().union(*(adl_pvs(parse_adl(t)) for t in rendered["adl"].values())) == expected
    assert set().union(*(edl_pvs(parse_edl(t)[1]) for t in rendered["edl"].values())) == \
        expected


def _expected_bob(corpus: Path) -> list[Path]:
    return sorted((corpus / "ibek" / "outputs").glob("*/*.pvi.bob"))


def test_device_screens_match_the_corpus_samples(corpus: Path) -> None:
    """Same PV names and widget types as ibek's screens (compared as sets); berth may add
    open-display buttons where a group too tall for one screen became a sub-screen."""
    samples = _expected_bob(corpus)
    assert samples
    for expected_path in samples:
        stem = expected_path.name.removesuffix(".pvi.bob")
        files = ioc_screens("TEST_IOC", [ScreenEntry(stem)], [corpus / "ibek/epics/pvi-defs"])
        ours = {name: text for name, text in files.items() if name != "index.bob"}
        expected = expected_path.read_text()
        assert set().union(*map(bob_pvs, ours.values())) == bob_pvs(expected), expected_path
        our_types = set().union(*map(bob_widget_types, ours.values()))
        extra = our_types - bob_widget_types(expected)
        assert bob_widget_types(expected) <= our_types, expected_path
        assert extra <= ({"action_button"} if len(ours) > 1 else set()), (expected_path, extra)


def _support_pvi(corpus: Path, support: str, model: str) -> dict:
    data = yaml.safe_load((corpus / "ibek/support" / support).read_text())
    return next(m for m in data["entity_models"] if m["name"] == model)["pvi"]


def _entry(pvi: dict, params: dict[str, str]) -> ScreenEntry:
    # An empty ui_macros value means "the entity's parameter of that name" (ibek's rule).
    macros = {k: str(v) if v is not None else str(params[k])
              for k, v in (pvi.get("ui_macros") or {}).items()}
    return ScreenEntry(pvi["yaml_path"], ui_index=pvi.get("ui_index", True), ui_macros=macros,
                       pv=bool(pvi.get("pv")), pv_prefix=pvi.get("pv_prefix", ""))


def test_index_screen_matches_the_corpus_for_motor_sim(corpus: Path) -> None:
    ioc = yaml.safe_load((corpus / "ibek/iocs/motorSim.ibek.ioc.yaml").read_text())
    pvi = _support_pvi(corpus, "motorSim.ibek.support.yaml", "simMotorController")
    entries = [_entry(pvi, e) for e in ioc["entities"]
               if e["type"] == "motorSim.simMotorController"]
    files = ioc_screens("motorSim.ibek.ioc", entries,
                        [corpus / "ibek/epics/pvi-defs", corpus / "ibek/support"])
    expected = (corpus / "ibek/outputs/motorSim/index.bob").read_text()
    assert bob_open_actions(files["index.bob"]) == bob_open_actions(expected)
    assert bob_widget_types(files["index.bob"]) == bob_widget_types(expected)
    assert set(files) == {"index.bob", "simple.pvi.bob", "simple.pvi.template"}


def test_index_screen_matches_the_corpus_for_quadem(corpus: Path) -> None:
    """The quadEM plugins are sub-entities: their P comes from the TetrAMM, R from each."""
    ioc = yaml.safe_load((corpus / "ibek/iocs/quadem.ibek.ioc.yaml").read_text())
    device_p = next(e for e in ioc["entities"] if e["type"] == "quadEM.TetrAMM")["P"]
    plugins = yaml.safe_load((corpus / "ibek/support/quadem.ibek.support.yaml").read_text())
    subs = next(m for m in plugins["entity_models"] if m["name"] == "Plugins")["sub_entities"]
    pvi = _support_pvi(corpus, "ADCore.ibek.support.yaml", "NDStats")
    entries = [_entry(pvi, {**s, "P": device_p}) for s in subs if s["type"] == "ADCore.NDStats"]
    files = ioc_screens("TEST_IOC", entries, [corpus / "ibek/epics/pvi-defs"])
    expected = (corpus / "ibek/outputs/quadem/index.bob").read_text()
    assert bob_open_actions(files["index.bob"]) == bob_open_actions(expected)
    assert bob_widget_types(files["index.bob"]) == bob_widget_types(expected)


def _template_fields(text: str) -> set[tuple[str, str, str]]:
    """(record, group PV, field) for every group field of a .pvi.template."""
    out: set[tuple[str, str, str]] = set()
    record = group = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("record("):
            record = stripped.split('"')[-2]
        elif stripped.endswith('PVI": {'):
            group = stripped.split('"')[1]
        elif stripped.startswith(('"pvi.', '"value.')):
            out.add((record, group, stripped.split('"')[1]))
    return out


def test_pvi_layout_template_matches_the_corpus(corpus: Path) -> None:
    samples = sorted((corpus / "ibek/outputs").glob("*/*.pvi.template"))
    assert samples
    for expected_path in samples:
        stem = expected_path.name.removesuffix(".pvi.template")
        device = load_device(corpus / "ibek/epics/pvi-defs" / f"{stem}.pvi.device.yaml")
        expected = _template_fields(expected_path.read_text())
        prefix = next(iter(expected))[1].removesuffix("PVI")
        ours = _template_fields(render_pvi_template(device, prefix, layout="pvi"))
        assert ours == expected, expected_path


def test_group_too_tall_for_a_column_starts_the_next_one(corpus: Path) -> None:
    """As pvi does: a tall group stays on its screen (only `SubScreen` groups and plots get
    screens of their own), so the set of screen files is ibek's."""
    device = load_device(corpus / "ibek/epics/pvi-defs/NDPluginStats.pvi.device.yaml")
    files = device_screens(device, "bob")
    assert set(files) == {"NDPluginStats.bob"}
    main = files["NDPluginStats.bob"]
    assert "$(P)$(R)HistEntropy_RBV" in bob_pvs(main)
    groups = [g for g in bob_tree(main, GROUP_INSET).children if g.kind == "group"]
    assert len({g.x for g in groups}) > 1  # more than one column


# --- geometry --------------------------------------------------------------------------------


def layout_problems(text: str) -> list[str]:
    """Widgets that overlap a sibling or stick out of their group or display."""
    problems: list[str] = []

    def check(node: Rect, inner_w: int, inner_h: int, where: str) -> None:
        for i, child in enumerate(node.children):
            if child.x < 0 or child.y < 0 or child.x + child.w > inner_w or \
                    child.y + child.h > inner_h:
                problems.append(f"{where}: {child.kind} at {child} outside {inner_w}x{inner_h}")
            for other in node.children[i + 1:]:
                if overlaps(child, other):
                    problems.append(f"{where}: {child.kind} {child.x},{child.y} overlaps "
                                    f"{other.kind} {other.x},{other.y}")
            if child.kind == "group":
                check(child, child.w - 2 * GROUP_INSET, child.h - 2 * GROUP_INSET,
                      f"{where}/group@{child.x},{child.y}")

    root = bob_tree(text, GROUP_INSET)
    check(root, root.w, root.h, "display")
    return problems


def test_widgets_do_not_overlap_on_any_screen(corpus: Path) -> None:
    search = corpus_search(corpus)
    problems: list[str] = []
    for path in corpus_device_files(corpus):
        for file, text in device_screens(load_device(path, search), "bob").items():
            problems += [f"{path.name} {file}: {p}" for p in layout_problems(text)]
    assert not problems, "\n".join(problems[:20])


def test_widgets_do_not_overlap_without_corpus() -> None:
    for name in ("testdev", "widgets"):
        for file, text in device_screens(
                load_device(DATA / f"{name}.pvi.device.yaml"), "bob").items():
            assert layout_problems(text) == [], file


def test_overlap_check_catches_overlap() -> None:
    """The geometric check itself must fail on a screen with two widgets in one place."""
    bad = ('<display version="2.0.0"><width>400</width><height>100</height>'
           '<widget type="label"><x>0</x><y>0</y><width>200</width><height>20</height></widget>'
           '<widget type="textupdate"><x>150</x><y>10</y><width>100</width><height>20</height>'
           '</widget></display>')
    assert layout_problems(bad)


def _screens_made_with_hash_seed(seed: str, out: Path) -> dict[str, bytes]:
    """Every file `berth screens` (all three formats) and `berth screens --template` write
    for the test device, in a fresh process with this PYTHONHASHSEED."""
    device = DATA / "testdev.pvi.device.yaml"
    env = {"PYTHONHASHSEED": seed}
    result = run_berth("screens", device, "-o", out, "--format", "bob", "--format", "adl",
                       "--format", "edl", env=env)
    assert result.returncode == 0, result.stderr
    result = run_berth("screens", "--template", device, "-o", out / "template",
                       "--pv-prefix", "$(P)", env=env)
    assert result.returncode == 0, result.stderr
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_output_is_the_same_bytes_in_separate_processes(tmp_path: Path) -> None:
    # set and dict-of-hash orders differ between processes with different hash seeds
    first = _screens_made_with_hash_seed("1", tmp_path / "one")
    second = _screens_made_with_hash_seed("2", tmp_path / "two")
    assert {"testdev.bob", "testdev.adl", "testdev.edl", "template/testdev.pvi.template"
            } <= set(first)
    assert list(first) == list(second)
    for name, data in first.items():
        assert data == second[name], f"{name} differs between processes"


# --- IOC screens -----------------------------------------------------------------------------


def test_ioc_screens_index_has_one_button_per_entity_with_its_macros() -> None:
    entries = [
        ScreenEntry("testdev.pvi.device.yaml", ui_index="Detector A",
                    ui_macros={"P": "BL01:A:"}, pv=True, pv_prefix="$(P)"),
        ScreenEntry("testdev", ui_macros={"P": "BL01:B:"}),
        ScreenEntry("testchild", ui_macros={"P": "BL01:A:CHILD:"}),
        ScreenEntry("testchild", ui_index=False, ui_macros={"P": "HIDDEN:"}),
    ]
    files = ioc_screens("bl01-ioc", entries, [DATA], formats=("bob", "adl", "edl"))
    assert bob_open_actions(files["index.bob"]) == {
        ("testdev.pvi.bob", (("P", "BL01:A:"),)),
        ("testdev.pvi.bob", (("P", "BL01:B:"),)),
        ("testchild.pvi.bob", (("P", "BL01:A:CHILD:"),)),
    }
    assert "Detector A" in files["index.bob"] and "Test Device" in files["index.bob"]
    assert {"testdev.pvi.bob", "testdev_Expert.pvi.bob", "testchild.pvi.bob", "index.adl",
            "testdev.pvi.adl", "index.edl", "testdev.pvi.template"} <= set(files)
    assert "testchild.pvi.template" not in files  # pv: false
    assert 'args="P=BL01:A:"' in files["index.adl"]
    assert '0 "P=BL01:B:"' in files["index.edl"]


def test_ioc_screens_missing_device_names_the_entity() -> None:
    from berth.errors import Location

    entry = ScreenEntry("nosuch.pvi.device.yaml", source=Location("ioc.yaml", 12))
    with pytest.raises(BerthError) as info:
        ioc_screens("x", [entry], [DATA])
    text = str(info.value)
    assert "ioc.yaml:12" in text and "nosuch.pvi.device.yaml" in text
    # Or, as `berth generate` wants it, a warning and the entity left out.
    warnings: list[str] = []
    found = ScreenEntry("testchild", ui_macros={"P": "X:"})
    files = ioc_screens("x", [entry, found], [DATA], on_missing=lambda p: warnings.append(str(p)))
    assert len(warnings) == 1 and "warning" in warnings[0] and "ioc.yaml:12" in warnings[0]
    assert bob_open_actions(files["index.bob"]) == {("testchild.pvi.bob", (("P", "X:"),))}


# --- bad input -------------------------------------------------------------------------------

BAD_FILES = {
    "unknown key": ("label: X\nchildren:\n  - type: SignalR\n    name: A\n    read_pv: A\n"
                    "    colour: red\n", ":6", "colour"),
    "unknown widget": ("label: X\nchildren:\n  - type: SignalR\n    name: A\n    read_pv: A\n"
                       "    read_widget:\n      type: Dial\n", ":7", "read_widget.type"),
    "missing pv": ("label: X\nchildren:\n  - type: SignalW\n    name: A\n", ":3", "write_pv"),
    "bad layout": ("label: X\nchildren:\n  - type: Group\n    name: G\n    layout:\n"
                   "      type: Spiral\n    children: []\n", ":6", "layout.type"),
    "bad yaml": ("label: X\nchildren:\n  - type: SignalR\n    name: [A\n", ":", None),
    "not a mapping": ("- just\n- a list\n", ":1", None),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_device_file_is_reported_with_file_line_and_field(case: str,
                                                              tmp_path: Path) -> None:
    text, line, field = BAD_FILES[case]
    path = tmp_path / "bad.pvi.device.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    result = run_berth("screens", path, "-o", out)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{path}{line}" in result.stderr
    if field:
        assert f"field '{field}'" in result.stderr
    assert not out.exists()  # nothing half-written


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.pvi.device.yaml").write_text("label: A\nparent: b\n")
    (tmp_path / "b.pvi.device.yaml").write_text(
        "label: B\nchildren:\n  - type: Include\n    file_name: a\n")
    with pytest.raises(BerthError, match="loop"):
        load_device(tmp_path / "a.pvi.device.yaml")


# --- command line ----------------------------------------------------------------------------


def test_cli_writes_screens_in_each_format(tmp_path: Path) -> None:
    device = DATA / "testdev.pvi.device.yaml"
    result = run_berth("screens", device, "-o", tmp_path, "--format", "adl", "--format", "edl")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "testdev.adl", "testdev.edl", "testdev_Expert.adl", "testdev_Expert.edl"]
    parse_adl((tmp_path / "testdev.adl").read_text())
    parse_edl((tmp_path / "testdev.edl").read_text())


def test_cli_search_path_finds_included_devices(tmp_path: Path) -> None:
    elsewhere = tmp_path / "defs"
    elsewhere.mkdir()
    (elsewhere / "base.pvi.device.yaml").write_text(
        "label: Base\nchildren:\n  - type: SignalR\n    name: Inherited\n"
        "    read_pv: $(P)Inherited\n")
    device = tmp_path / "dev" / "top.pvi.device.yaml"
    device.parent.mkdir()
    device.write_text("label: Top\nparent: base\nchildren:\n  - type: SignalR\n    name: Own\n"
                      "    read_pv: $(P)Own\n")
    out = tmp_path / "out"
    assert run_berth("screens", device, "-o", out).returncode == 0
    assert bob_pvs((out / "top.bob").read_text()) == {"$(P)Own"}
    result = run_berth("screens", device, "-o", out, "--search", elsewhere)
    assert result.returncode == 0, result.stderr
    assert bob_pvs((out / "top.bob").read_text()) == {"$(P)Own", "$(P)Inherited"}


def test_cli_template_in_both_layouts(tmp_path: Path) -> None:
    device = DATA / "testdev.pvi.device.yaml"
    result = run_berth("screens", "--template", device, "-o", tmp_path, "--pv-prefix", "$(P)")
    assert result.returncode == 0, result.stderr
    fields = _template_fields((tmp_path / "testdev.pvi.template").read_text())
    assert ("$(P)Gain_RBV", "$(P)PVI", "value.gain.r") in fields
    assert ("$(P)Mode", "$(P)PVI", "value.mode.rw") in fields
    result = run_berth("screens", "--pvi-template", device, "-o", tmp_path, "--layout", "pvi",
                       "--pv-prefix", "$(P)")
    assert result.returncode == 0, result.stderr
    fields = _template_fields((tmp_path / "testdev.pvi.template").read_text())
    assert ("$(P)Gain_RBV", "$(P)PVI", "pvi.Gain.r") in fields
    bad = run_berth("screens", "--template", device, "-o", tmp_path, "--layout", "nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_cli_unknown_format_is_a_clean_error(tmp_path: Path) -> None:
    result = run_berth("screens", DATA / "testdev.pvi.device.yaml", "-o", tmp_path / "o",
                       "--format", "opi")
    assert result.returncode == 2
    assert "unknown screen format 'opi'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_screen_entry_of_a_generated_pvi_entity() -> None:
    from berth.errors import Location
    from berth.ioc.entity import Entity
    from berth.ioc.render import PviEntity
    from berth.ioc.support import Pvi

    pvi = Pvi(yaml_path="testdev.pvi.device.yaml", ui_index=True, pv=True, pv_prefix="$(P)",
              loc=Location("support.yaml", 40))
    entity = Entity("dev.Dev", None, {}, "entity 1", Location())
    pvi_entity = PviEntity(entity, pvi, {"P": "BL02:"}, "testdev.pvi.device.yaml", "testdev",
                           DATA / "testdev.pvi.device.yaml")
    entry = pvi_entity.screen_entry()
    assert (entry.stem, entry.ui_macros, entry.pv, entry.pv_prefix, entry.source) == (
        "testdev", {"P": "BL02:"}, True, "$(P)", Location("support.yaml", 40))
    files = ioc_screens("ioc", [entry], [DATA])
    assert bob_open_actions(files["index.bob"]) == {("testdev.pvi.bob", (("P", "BL02:"),))}


def test_ignored_component_hides_a_signal_of_its_group_as_pvi_does(tmp_path: Path) -> None:
    """pvi 0.14 (ibek 4.6.2) merges groups of one name, a later child replacing an earlier one:
    a base device's IgnoredComponent hides the driver's signal (ADCore's NDArrayBase hides
    ADDriver's Manufacturer...). A top-level one hides nothing; both checked with pvi itself."""
    (tmp_path / "base.pvi.device.yaml").write_text(
        "label: Base\nchildren:\n"
        "  - {type: SignalR, name: Kept, read_pv: $(P)Kept}\n"
        "  - {type: SignalR, name: Shown, read_pv: $(P)Shown}\n"
        "  - type: Group\n    name: Info\n    layout: {type: Grid}\n    children:\n"
        "      - {type: IgnoredComponent, name: Model}\n")
    (tmp_path / "top.pvi.device.yaml").write_text(
        "label: Top\nchildren:\n"
        "  - type: Group\n    name: Info\n    layout: {type: Grid}\n    children:\n"
        "      - {type: SignalR, name: Model, read_pv: $(P)Model_RBV}\n"
        "      - {type: SignalR, name: Serial, read_pv: $(P)Serial_RBV}\n"
        "  - {type: Include, file_name: base}\n"
        "  - {type: IgnoredComponent, name: Shown}\n")
    device = load_device(tmp_path / "top.pvi.device.yaml")
    files = device_screens(device, "bob")
    assert bob_pvs(files["top.bob"]) == {"$(P)Kept", "$(P)Shown", "$(P)Serial_RBV"}
    template = render_pvi_template(device, "$(P)", "pvi")
    assert "Model_RBV" not in template and "$(P)Shown" in template
