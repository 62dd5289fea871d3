"""Unit tests of berth's msi: every syntax feature and every error, through the API and the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.epics.substitutions import expand_substitutions, expand_template, expand_to_file
from berth.errors import BerthError, Problem
from conftest import run_berth


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def subst(tmp_path: Path, text: str, templates: dict[str, str], **kwargs: object) -> str:
    write(tmp_path, {"x.substitutions": text, **templates})
    return expand_substitutions(tmp_path / "x.substitutions", [tmp_path], **kwargs)  # type: ignore[arg-type]


# ---- substitution file syntax -------------------------------------------------------------

def test_pattern_rows_each_expand_the_template(tmp_path: Path) -> None:
    out = subst(tmp_path, 'file t.db {\n pattern { A, "B" }\n { 1, "two words" }\n { 3 4 }\n}\n',
                {"t.db": "a=$(A) b=$(B)\n"})
    assert out == "a=1 b=two words\na=3 b=4\n"


def test_definition_rows_globals_anywhere_and_comments(tmp_path: Path) -> None:
    text = ("# heading\nglobal { G=g1, H=h }\n"
            "file t.db {\n  {A=1}  # a row\n  global { G=g2 }\n  { A = 2, H=\"h,2\" }\n}\n"
            "global { G=g3 }\nfile 't.db' { { A=3 } }\n")
    out = subst(tmp_path, text, {"t.db": "$(A) $(G) $(H)\n"})
    assert out.splitlines() == ["1 g1 h", "2 g2 h,2", "3 g3 h"]


def test_each_row_is_a_fresh_scope_over_the_globals(tmp_path: Path) -> None:
    text = 'global { A=glob }\nfile t.db { { A=row1, B=only1 } { C=3 } }\n'
    out = subst(tmp_path, text, {"t.db": "$(A) $(B=none) $(C=none)\n"})
    assert out.splitlines() == ["row1 only1 none", "glob none 3"]


def test_values_refer_to_other_macros_lazily(tmp_path: Path) -> None:
    text = 'file t.db { pattern { PORT, TS } { "P1", "$(PORT)_TS" } { "P2", "$(PORT)_TS" } }\n'
    out = subst(tmp_path, text, {"t.db": "$(TS)\n"})
    assert out.splitlines() == ["P1_TS", "P2_TS"]


def test_quoting_and_escapes_in_values(tmp_path: Path) -> None:
    text = 'file t.db { pattern { A, B, C } { "x\\"y", \'s q\', "a,b" } }\n'
    out = subst(tmp_path, text, {"t.db": "[$(A)] [$(B)] [$(C)]\n"})
    assert out == '[x"y] [s q] [a,b]\n'


def test_file_names_use_macros_then_the_environment(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"mod/db/t.template": "from mod $(A)\n"})
    monkeypatch.setenv("MOD_FROM_ENV", str(tmp_path / "mod"))
    write(tmp_path, {"x.substitutions":
                     'file "$(MOD_FROM_ENV)/db/t.template" { {A=1} }\n'
                     'file "$(MOD)/db/t.template" { {A=2} }\n'})
    out = expand_substitutions(tmp_path / "x.substitutions", [],
                               {"MOD": str(tmp_path / "mod")})
    assert out == "from mod 1\nfrom mod 2\n"


def test_template_search_follows_include_paths_in_order(tmp_path: Path) -> None:
    write(tmp_path, {"first/t.db": "first\n", "second/t.db": "second\n", "second/u.db": "u\n",
                     "x.substitutions": "file t.db { {} }\nfile u.db { {} }\n"})
    out = expand_substitutions(tmp_path / "x.substitutions",
                               [tmp_path / "first", tmp_path / "second"])
    assert out == "first\nu\n"


# ---- template syntax ----------------------------------------------------------------------

def test_macro_syntax_in_templates(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": (
        "$(A) ${A} $(U=dflt) $(U=$(A)x) $(N_$(A)) ${N_${A}=no}\n"
        "\\$(A) '$(A)' \"$(A)\" $(U,U=scoped) $(U=)|\n")})
    out = expand_template(tmp_path / "t.db", [], {"A": "1", "N_1": "nested"})
    assert out == "1 1 dflt 1x nested nested\n\\$(A) '$(A)' \"1\" scoped |\n"


def test_include_and_substitute(tmp_path: Path) -> None:
    write(tmp_path, {
        "t.db": 'top $(A)\n  include "inc.db"\nsubstitute "A=changed,B=$(A)-b"\nafter $(A) $(B)\n',
        "inc.db": "included $(A)\n",
        "x.substitutions": "file t.db { {A=1} {C=2} }\n",
    })
    out = expand_substitutions(tmp_path / "x.substitutions", [tmp_path])
    # `substitute` lasts for the rest of its instance only: the second row starts afresh.
    assert out.splitlines() == ["top 1", "included 1", "after changed changed-b",
                                "top $(A,undefined)", "included $(A,undefined)",
                                "after changed changed-b"]


def test_substitute_persists_in_a_single_template(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": 'substitute "A=1"\n$(A)\nsubstitute "A=2"\n$(A)\n'})
    assert expand_template(tmp_path / "t.db") == "1\n2\n"


def test_undefined_macros_are_kept_and_reported_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "ok\nvalue $(MISSING) $(A)\n", "x.substitutions":
                     "file t.db {\n {A=1}\n}\n"})
    warnings: list[Problem] = []
    out = expand_substitutions(tmp_path / "x.substitutions", [tmp_path], warnings=warnings)
    assert out == "ok\nvalue $(MISSING,undefined) 1\n"
    assert len(warnings) == 1
    text = str(warnings[0])
    assert f"{tmp_path / 't.db'}:2" in text and "MISSING" in text and "warning" in text
    assert "x.substitutions:2" in text  # the instance that used it


def test_strict_makes_undefined_macros_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "value $(MISSING)\n"})
    with pytest.raises(BerthError) as caught:
        expand_template(tmp_path / "t.db", strict=True)
    assert "t.db:1" in str(caught.value) and "MISSING" in str(caught.value)


def test_recursive_definitions_are_detected(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "$(A)\n"})
    warnings: list[Problem] = []
    out = expand_template(tmp_path / "t.db", [], {"A": "$(B)", "B": "x$(A)"},
                          warnings=warnings)
    assert out == "x$(B,recursive)\n"  # as macLib words it
    assert "itself" in str(warnings[0])


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "where", "words"), [
    ("file t.db {\n  { A=1 }\n", ":1:", "unterminated"),
    ("file t.db { pattern { A }\n { 1 \n}\n", ":1:11", "unterminated file block"),
    ("file t.db {\n { A=1 } }\nnonsense\n", ":3:1", "expected 'file' or 'global'"),
    ("global { A 1 }\n", ":1:12", "expected '='"),
    ('file t.db {\n { A="1 }\n}\n', ":2:6", "unterminated string"),
    ("file t.db { pattern { A, B }\n { 1 } }\n", ":2:2", "1 value(s)"),
    ("file missing.db { {A=1} }\n", ":1:6", "searched"),
    ("file { {A=1} }\n", ":1:6", "template file name"),
])
def test_mistakes_name_file_line_and_are_exit_2(tmp_path: Path, text: str, where: str,
                                                words: str) -> None:
    write(tmp_path, {"x.substitutions": text, "t.db": "$(A=)\n"})
    out = tmp_path / "out.db"
    out.write_text("previous\n")
    done = run_berth("expand", "-S", tmp_path / "x.substitutions", "-I", tmp_path, "-o", out)
    assert done.returncode == 2
    assert f"x.substitutions{where}" in done.stderr and words in done.stderr
    assert "Traceback" not in done.stderr
    assert out.read_text() == "previous\n"  # nothing written


def test_missing_template_lists_the_search_path(tmp_path: Path) -> None:
    write(tmp_path, {"x.substitutions": "\nfile nowhere.template { {} }\n"})
    with pytest.raises(BerthError) as caught:
        expand_substitutions(tmp_path / "x.substitutions", [tmp_path / "a", tmp_path / "b"])
    message = str(caught.value)
    assert "x.substitutions:2" in message and "nowhere.template" in message
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message


def test_missing_include_and_include_loop(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": 'one\ninclude "gone.db"\n', "u.db": 'include "v.db"\n',
                     "v.db": 'include "u.db"\n'})
    with pytest.raises(BerthError, match=r"t\.db:2.*gone\.db"):
        expand_template(tmp_path / "t.db", [tmp_path])
    with pytest.raises(BerthError, match="include loop"):
        expand_template(tmp_path / "u.db", [tmp_path])


def test_missing_input_files_are_errors(tmp_path: Path) -> None:
    done = run_berth("expand", "-S", tmp_path / "nothing.substitutions")
    assert done.returncode == 2 and "nothing.substitutions" in done.stderr
    done = run_berth("expand", tmp_path / "nothing.template")
    assert done.returncode == 2 and "nothing.template: template not found" in done.stderr
    done = run_berth("expand")
    assert done.returncode == 2 and "-S" in done.stderr


# ---- the command line ---------------------------------------------------------------------

def test_cli_template_with_macros_to_stdout(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "$(A) $(B)\n"})
    done = run_berth("expand", tmp_path / "t.db", "-M", 'A="x,y"', "-M", "B=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "x,y 2\n"


def test_cli_writes_output_and_warns(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "$(A) $(Z)\n", "x.substitutions": "file t.db { {A=1} }\n"})
    out = tmp_path / "sub" / "out.db"
    done = run_berth("expand", "-S", tmp_path / "x.substitutions", "-I", tmp_path, "-o", out)
    assert done.returncode == 0
    assert out.read_text() == "1 $(Z,undefined)\n"
    assert "t.db:1" in done.stderr and "warning" in done.stderr and "'Z'" in done.stderr


def test_cli_strict_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "line one\n$(Z)\n"})
    out = tmp_path / "out.db"
    done = run_berth("expand", tmp_path / "t.db", "-V", "-o", out)
    assert done.returncode == 2
    assert f"{tmp_path / 't.db'}:2" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_cli_template_overrides_every_file_set(tmp_path: Path) -> None:
    write(tmp_path, {"other.db": "other $(A)\n",
                     "x.substitutions": "file never.db { {A=1} {A=2} }\n"})
    done = run_berth("expand", "-S", tmp_path / "x.substitutions", tmp_path / "other.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "other 1\nother 2\n"


def test_expand_to_file_chooses_by_suffix(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "$(A)\n", "x.subst": "file t.db { {A=s} }\n"})
    assert expand_to_file(tmp_path / "x.subst", tmp_path / "a.db", [tmp_path]) == []
    assert (tmp_path / "a.db").read_text() == "s\n"
    warnings = expand_to_file(tmp_path / "t.db", tmp_path / "b.db", [], {})
    assert (tmp_path / "b.db").read_text() == "$(A,undefined)\n" and len(warnings) == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_very_deep_macro_chains_are_an_error_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, {"t.db": "$(M0)\n"})
    chain = {f"M{i}": f"$(M{i + 1})" for i in range(5000)}
    with pytest.raises(BerthError, match="too deeply"):
        expand_template(tmp_path / "t.db", [], chain)
