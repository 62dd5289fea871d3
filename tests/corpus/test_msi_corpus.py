"""The substitution files ibek generates (from the epics-containers corpus) are read by berth:
every instance row of every file set expands the template once."""

from __future__ import annotations

import re
from pathlib import Path

from berth.epics.substitutions import expand_substitutions


def test_every_ibek_substitution_file_expands_each_row(corpus: Path, tmp_path: Path) -> None:
    files = sorted((corpus / "ibek" / "outputs").glob("*/ioc.subst"))
    assert len(files) == 13
    stub = tmp_path / "stub.template"
    stub.write_text("instance\n")
    rows = 0
    for subst in files:
        text = subst.read_text()
        # Counted from the layout ibek writes: a tab-indented brace line per row, the first
        # row of each pattern block being its macro names.
        expected = len(re.findall(r"^\t\{", text, re.M)) - len(re.findall(r"^pattern", text, re.M))
        out = expand_substitutions(subst, [], template=stub)
        assert out.count("instance\n") == expected, subst
        rows += expected
    assert rows > 100
