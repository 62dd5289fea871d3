"""autosave's .sav format and request files (berth.epics.autosave_file / autosave_request).

`strict_parse` is written from autosave's documentation (docs/autoSaveRestore.md, "About save
files"), not from berth's reader: the header line, `PV value` lines, `#` comments, one `!` line
about unconnected channels, arrays as `PV @array@ { "v" ... }`, and `<END>` plus a line end
(one or two characters) at the very end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from berth.epics import autosave_file as sav
from berth.epics import autosave_request as req

HEADER_RE = re.compile(
    r"^# save/restore V\d+\.\d+\tAutomatically generated - DO NOT MODIFY - \d{6}-\d{6}$")
PV_RE = re.compile(r"^[A-Za-z0-9_:\-\[\]<>;.{}$]+$")


def strict_parse(text: str) -> dict[str, str | list[str]]:
    end = text.rfind("<END>")
    assert end >= 0 and text[end + 5:] in ("\n", "\r\n"), "ends with <END> + one line end"
    lines = text[:end].split("\n")
    assert lines[-1] == "", "<END> starts its own line"
    assert HEADER_RE.match(lines[0]), f"header line: {lines[0]!r}"
    values: dict[str, str | list[str]] = {}
    for number, line in enumerate(lines[1:-1], start=2):
        if line.startswith("#"):
            continue
        if line.startswith("!"):
            assert re.match(r"^! \d+ channel\(s\) not connected", line), line
            continue
        name, sep, value = line.partition(" ")
        assert sep and PV_RE.match(name), f"line {number}: {line!r}"
        assert name not in values, f"line {number}: {name} twice"
        if value.startswith("@array@"):
            m = re.fullmatch(r'@array@ \{ ((?:"(?:[^"\\]|\\.)*" )*)\}', value)
            assert m, f"line {number}: array syntax: {value!r}"
            values[name] = [re.sub(r"\\(.)", r"\1", v)
                            for v in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))]
        else:
            values[name] = value
    return values


def test_a_written_file_parses_with_the_strict_reader_and_reads_back_the_same():
    rows: list[tuple[str, sav.Value | None]] = [
        ("X:ao.VAL", "4.1234567890123"), ("X:ao.DESC", "a description with spaces"),
        ("X:ao.EGU", ""), ("X:wave", ["1", "2.5", "-3"]), ("X:empty", []),
        ("X:names", ['say "hi"', "a b", ""]),
        ("X:gone.VAL", None),
    ]
    text = sav.render(rows)
    strict = strict_parse(text)
    assert strict["X:ao.VAL"] == "4.1234567890123"
    assert strict["X:ao.DESC"] == "a description with spaces"
    assert strict["X:wave"] == ["1", "2.5", "-3"]
    assert strict["X:empty"] == []
    assert strict["X:names"] == ['say "hi"', "a b", ""]
    assert "X:gone.VAL" not in strict and "#X:gone.VAL Search Issued" in text
    assert "! 1 channel(s) not connected" in text
    ours = sav.parse(Path("x.sav"), text)
    assert ours.complete
    assert ours.values() == {pv: v for pv, v in rows if v is not None}


def test_control_characters_survive_a_round_trip():
    text = sav.render([("X:s", "tab\there\\back"), ("X:a", ["new\nline"])])
    assert "\t" not in text.split("\n", 1)[1], "no raw tab in a value line"
    assert sav.parse(Path("x"), text).values() == {"X:s": "tab\there\\back",
                                                    "X:a": ["new\nline"]}


def test_a_hand_written_file_in_autosaves_format_reads(tmp_path: Path):
    # the sample of autosave's documentation, shortened; a DOS line end after <END>
    text = ("# save/restore V4.9\tAutomatically generated - DO NOT MODIFY - 060720-154526\n"
            "! 1 channel(s) not connected - or not all gets were successful\n"
            "xxx:SR_ao.PREC 1\nxxx:SR_ao.SCAN 3\nxxx:SR_ao.DESC description\n"
            "xxx:SR_ao.OUT xxx:SR_bo.VAL NPP NMS\n#i_dont_exist.VAL Search Issued\n"
            'xxx:SR_double_array @array@ { "1" "2" "3" }\n<END>\r\n')
    parsed = sav.parse(tmp_path / "a.sav", text)
    assert parsed.complete
    assert parsed.values() == {
        "xxx:SR_ao.PREC": "1", "xxx:SR_ao.SCAN": "3", "xxx:SR_ao.DESC": "description",
        "xxx:SR_ao.OUT": "xxx:SR_bo.VAL NPP NMS", "xxx:SR_double_array": ["1", "2", "3"]}


@pytest.mark.parametrize("cut", [1, 3, 10, 40])
def test_a_truncated_file_is_incomplete_and_the_backup_is_used(tmp_path: Path, cut: int):
    path = tmp_path / "auto_settings.sav"
    good = sav.render([("X:a", "1"), ("X:b", "two")])
    sav.write(path, good)
    assert sav.backup_path(path).read_text() == good
    path.write_text(good[:-cut])
    chosen, log = sav.choose(path)
    assert chosen is not None and chosen.path == sav.backup_path(path)
    assert chosen.values() == {"X:a": "1", "X:b": "two"}
    assert any("incomplete" in line for line in log) and any("backup" in line for line in log)


def test_sequence_files_are_the_last_resort_and_the_newest_wins(tmp_path: Path):
    path = tmp_path / "s.sav"
    for value in ("old", "new"):
        sav.write_sequence(path, sav.render([("X:a", value)]), 3)
    path.write_text("garbage")
    sav.backup_path(path).write_text("# save/restore V5.11\nX:a half")
    chosen, log = sav.choose(path)
    assert chosen is not None and chosen.values() == {"X:a": "new"}
    assert {p.name for p in tmp_path.iterdir()} >= {"s.sav0", "s.sav1"}


def test_nothing_usable_means_nothing_chosen(tmp_path: Path):
    path = tmp_path / "s.sav"
    assert sav.choose(path) == (None, [])
    path.write_text("# save/restore V5.11\nX:a 1\n")
    chosen, log = sav.choose(path)
    assert chosen is None and "nothing restored" in log[-1]


def test_boot_backups_are_dated_or_dot_bu(tmp_path: Path):
    path = tmp_path / "s.sav"
    sav.write(path, sav.render([("X:a", "1")]))
    dated = sav.boot_backup(path, path, dated=True, when=0)
    assert re.fullmatch(r"s\.sav_\d{6}-\d{6}", dated.name)
    assert sav.boot_backup(path, path, dated=False).name == "s.sav.bu"


def test_request_files_include_others_with_macros_along_the_search_path(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "top.req").write_text(
        "# settings\n$(P)one.VAL\nfile motor.req P=$(P),M=m1\n"
        'file "motor.req" "P=$(P) M=m2"\n\n$(P)str.DESC\n')
    (second / "motor.req").write_text("$(P)$(M).VAL\n$(P)$(M).VELO\n")
    listed = req.read("top.req", [first, second], "P=xx:")
    assert listed.pvs == ["xx:one.VAL", "xx:m1.VAL", "xx:m1.VELO", "xx:m2.VAL", "xx:m2.VELO",
                          "xx:str.DESC"]
    assert listed.problems == []


def test_a_missing_include_is_named_with_its_file_and_line(tmp_path: Path):
    (tmp_path / "top.req").write_text("X:a\nfile nope.req\nX:b\n")
    listed = req.read("top.req", [tmp_path])
    assert listed.pvs == ["X:a", "X:b"]
    assert listed.problems == [f"{tmp_path / 'top.req'}:2: request file nope.req not found "
                               f"(searched {tmp_path})"]


def test_an_include_loop_stops(tmp_path: Path):
    (tmp_path / "loop.req").write_text("X:a\nfile loop.req\n")
    listed = req.read("loop.req", [tmp_path])
    assert len(listed.pvs) == req.MAX_DEPTH + 1
    assert "loop" in listed.problems[0]
