"""`berth expand` checked against EPICS itself: the records and field values EPICS loads from
berth's expanded database (dbLoadRecords) equal those its own dbLoadTemplate loads from the same
substitution file. Each EPICS load runs in its own process (tests/epics_dump.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_berth

DATA = Path(__file__).parents[2] / "data" / "msi"
DUMP = Path(__file__).parents[2] / "epics_dump.py"


def epics_load(*args: str | Path, cwd: Path = DATA) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(DUMP), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def berth_db(tmp_path: Path, *args: str | Path) -> Path:
    out = tmp_path / "out.db"
    done = run_berth("expand", *args, "-o", out, cwd=DATA)
    assert done.returncode == 0, done.stderr
    return out


def test_substitution_file_loads_the_same_records_as_dbLoadTemplate(tmp_path: Path) -> None:
    db = berth_db(tmp_path, "-S", "compare.substitutions", "-I", ".")
    ours = epics_load("--db", db)
    theirs = epics_load("--subst", "compare.substitutions", "-I", ".")
    assert len(theirs["records"]) == 17  # every instance was created, by both
    assert ours == theirs
    # Spot checks of what the comparison covers: defaults, nesting, globals, quoting.
    a = theirs["records"]["BL01T-EA-TEST-01:A:VALUE"]["fields"]
    assert a["DESC"] == "first, with a comma" and a["HOPR"] == "55" and a["LOPR"] == "-3"
    e = theirs["records"]["BL01T-EA-TEST-01:E:VALUE"]["fields"]
    assert e["PREC"] == "5" and e["LOPR"] == "-1"  # a global given inside the file block
    motor = theirs["records"]["BL01T-EA-TEST-02:MTR1"]["fields"]
    assert motor["OUT"] == "@asyn(BL01T-EA-TEST-02_MOT,1)"
    assert "BL01T-EA-TEST-01:D:ALIAS" in theirs["aliases"]


def test_template_with_macros_loads_the_same_records_as_dbLoadRecords(tmp_path: Path) -> None:
    macros = "P=X:,R=Y:,DESC=a \"quoted\" word,AXIS=Q,LIMIT_Q=7"
    db = berth_db(tmp_path, "device.template", "-I", ".", "-M", macros)
    ours = epics_load("--db", db)
    theirs = epics_load("--db", "device.template", "-I", ".", "-M", macros)
    assert len(theirs["records"]) == 3
    assert ours == theirs
    assert theirs["records"]["X:Y:VALUE"]["fields"]["HOPR"] == "7"


def test_the_comparison_sees_a_difference(tmp_path: Path) -> None:
    """The oracle is sharp: one changed value in berth's output makes the loads differ."""
    db = berth_db(tmp_path, "-S", "compare.substitutions", "-I", ".")
    db.write_text(db.read_text().replace('"A*2.5"', '"A*2.6"', 1))
    assert epics_load("--db", db) != epics_load("--subst", "compare.substitutions", "-I", ".")


@pytest.mark.parametrize(("text", "warned"), [
    ('file device.template { pattern { R } { ":$(UNDEFINED)" } }\n', True),
    ('file device.template { { R=":\'$(P)\'" } }\n', False),  # single quotes: no expansion
])
def test_unexpandable_input_is_refused_by_both(tmp_path: Path, text: str, warned: bool) -> None:
    """EPICS refuses a field holding an unexpanded macro; berth keeps it as msi does (and warns),
    so the database it writes is refused too: no silent difference."""
    subst = tmp_path / "bad.substitutions"
    subst.write_text('global { P=G: }\n' + text)
    db = tmp_path / "bad.db"
    done = run_berth("expand", "-S", subst, "-I", DATA, "-o", db)
    assert done.returncode == 0
    assert ("macro 'UNDEFINED' is undefined" in done.stderr) == warned
    for args in (("--db", db), ("--subst", subst, "-I", DATA)):
        refused = subprocess.run([sys.executable, str(DUMP), *map(str, args)], cwd=DATA,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1


def test_file_names_from_the_environment_and_empty_rows(tmp_path: Path) -> None:
    env = {"BERTH_MSI_TEST_DIR": str(DATA)}
    out = tmp_path / "out.db"
    done = run_berth("expand", "-S", "envname.substitutions", "-I", ".", "-o", out, cwd=DATA,
                     env=env)
    assert done.returncode == 0, done.stderr
    ours = epics_load("--db", out)
    environ = dict(os.environ, **env)
    theirs = subprocess.run([sys.executable, str(DUMP), "--subst", "envname.substitutions",
                             "-I", "."], cwd=DATA, env=environ, capture_output=True, text=True,
                            timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    loaded = json.loads(theirs.stdout)
    assert sorted(loaded["records"]) == ["ENV:E1", "ENV:E2", "ENV:E3"]
    assert loaded["records"]["ENV:E1"]["fields"]["OUT"] == "@asyn(p,2)"  # the last ADDR wins
    assert ours == loaded


RANDOM_TEMPLATE = """\
record(stringout, "$(P)$(N)") {
    field(DESC, "$(D=default desc)")
    field(VAL, "$(V_$(K=a)=none)")
    field(OUT, "$(P)$(N=)$(X=)")
}
"""


def random_value(rng: random.Random) -> str:
    """A value as a user could write it, quoted, that EPICS accepts in a string field."""
    pieces = ["ab", "Z9", " ", ",", ":", "'", "$(P)", "${P}", "$(Q=q)", "$(K=k)", "=", "\\\\t"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5)))


def random_substitutions(rng: random.Random, instances: int) -> str:
    lines = ['global { P="R:" }']
    n = 0
    while n < instances:
        if rng.random() < 0.5:
            lines.append('file "random.template" {\n  pattern { N, D, K, V_a, V_b }')
            for _ in range(rng.randint(1, 5)):
                values = [f'"{n}"', f'"{random_value(rng)}"', rng.choice(['"a"', '"b"']),
                          f'"{random_value(rng)}"', f'"{random_value(rng)}"']
                lines.append("  { " + ", ".join(values) + " }")
                n += 1
        else:
            lines.append('file random.template {')
            for _ in range(rng.randint(1, 5)):
                chosen = [f"N={n}"] + [f'{name}="{random_value(rng)}"'
                                       for name in ("D", "V_a", "V_b", "X") if rng.random() < 0.6]
                lines.append("  { " + ", ".join(chosen) + " }")
                n += 1
        lines.append("}")
        if rng.random() < 0.3:
            lines.append(f'global {{ K={rng.choice("ab")}, X="{random_value(rng)}" }}')
    return "\n".join(lines) + "\n"


def test_random_substitution_files_load_as_with_dbLoadTemplate(tmp_path: Path) -> None:
    (tmp_path / "random.template").write_text(RANDOM_TEMPLATE)
    subst = tmp_path / "random.substitutions"
    subst.write_text(random_substitutions(random.Random(7), 300))
    out = tmp_path / "random.db"
    done = run_berth("expand", "-S", subst, "-I", tmp_path, "-o", out)
    assert done.returncode == 0, done.stderr
    theirs = epics_load("--subst", subst, "-I", tmp_path, cwd=tmp_path)
    assert len(theirs["records"]) >= 300
    assert epics_load("--db", out, cwd=tmp_path) == theirs
