"""ibek's runtime steps that ioc-template's start.sh runs after generation, against files ibek
4.6.2 wrote (ibek_4.6.2/README.md): `generate-autosave` on the corpus motorSim ioc.subst
($BERTH_CORPUS, skipped when unset) and `place-files` on a config folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from berth.ioc.autosave_req import generate_autosave, subst_blocks
from berth.ioc.place import place_files

CASE = Path(__file__).parent / "ibek_4.6.2" / "autosave"


def test_generate_autosave_writes_ibeks_files(corpus: Path, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    subst = runtime / "ioc.subst"
    shutil.copy(corpus / "ibek" / "outputs" / "motorSim" / "ioc.subst", subst)
    req_dir = tmp_path / "autosave"
    written = generate_autosave(subst, runtime, req_dir, CASE / "support", CASE / "config")
    expected = sorted(p.name for p in (CASE / "expected").iterdir())
    assert sorted(p.name for p in written) == expected
    for name in expected:
        assert (runtime / name).read_text() == (CASE / "expected" / name).read_text(), name
    # the request-template folder: support templates linked, the config folder's one wins
    links = {p.name: Path(os.readlink(p)) for p in req_dir.iterdir()}
    assert links["basic_asyn_motor_settings.req"] == CASE / "config" / \
        "basic_asyn_motor_settings.req"
    assert links["basic_motor_extra.req"] == CASE / "support/motor/db/basic_motor_extra.req"
    # the settings file keeps autosave's own `file` include for autosave to resolve at run time
    assert "VMAX" in (runtime / "autosave_settings.req").read_text()


def test_generate_autosave_keeps_an_existing_link_and_drops_stale_files(tmp_path: Path
                                                                        ) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "ioc.subst").write_text('file "$(MOTOR)/db/basic_asyn_motor.db" {\npattern\n'
                                       '\t{ "P", "M" }\n\t{ "A:", "M1" }\n}\n')
    req_dir = tmp_path / "autosave"
    req_dir.mkdir()
    own = tmp_path / "own_positions.req"
    own.write_text("$(P)$(M).RBV\n")
    (req_dir / "basic_asyn_motor_positions.req").symlink_to(own)  # an image's override
    (runtime / "autosave_settings.req").write_text("stale\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    written = generate_autosave(runtime / "ioc.subst", runtime, req_dir, CASE / "support",
                                empty)
    assert (runtime / "autosave_positions.req").read_text() == "A:M1.RBV\n"
    assert (runtime / "autosave_settings.req").read_text() != "stale\n"
    assert {p.name for p in written} == {"autosave_positions.subst", "autosave_positions.req",
                                         "autosave_settings.subst", "autosave_settings.req"}
    (runtime / "ioc.subst").write_text('file "other.db" {\npattern\n\t{ "P" }\n\t{ "A:" }\n}\n')
    assert generate_autosave(runtime / "ioc.subst", runtime, req_dir, CASE / "support",
                             empty) == []
    assert not list(runtime.glob("autosave_*"))  # no template has request files: no files


def test_subst_blocks_end_where_ibeks_do() -> None:
    text = ('file "a.db" {\npattern\n\t{ "P" }\n\t{ "x {{y}} " }\n}\n'
            'file "$(M)/db/b.template" { pattern { P } { "Q" } }\n')
    assert subst_blocks(text) == [
        ("a.db", '{\npattern\n\t{ "P" }\n\t{ "x {{y}} " }\n}'),
        ("$(M)/db/b.template", '{ pattern { P } { "Q" } }')]


def test_place_files_copies_what_ibek_places(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "sub").mkdir(parents=True)
    for name, text in {"dev.proto": "Terminator = CR LF;\n", "other.protocol": "get {}\n",
                       "extra.db": 'record(ai, "$(P)X") {}\n',
                       "extra.template": 'record(ao, "$(P)Y") {}\n', "README.txt": "notes\n",
                       "ioc.yaml": "ioc_name: x\nentities: []\n",
                       "sub/nested.proto": "x\n"}.items():
        (config / name).write_text(text)
    os.utime(config / "dev.proto", (1_000_000, 1_000_000))
    runtime = tmp_path / "runtime"
    placed = place_files(config, runtime)
    # what ibek 4.6.2's place-files made of the same folder
    expected = ["db/extra.db", "db/extra.template", "protocol/dev.proto",
                "protocol/other.protocol"]
    assert sorted(str(p.relative_to(runtime)) for p in runtime.rglob("*") if p.is_file()) \
        == expected
    assert sorted(str(p.relative_to(runtime)) for p in placed) == expected
    copy = runtime / "protocol" / "dev.proto"
    assert not copy.is_symlink() and copy.read_text() == "Terminator = CR LF;\n"
    assert copy.stat().st_mtime == 1_000_000  # copied with its times, as ibek's copy2
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x\n")
    assert place_files(tmp_path / "plain", tmp_path / "again") == []
    assert not (tmp_path / "again").exists()  # nothing to place: no folders made
