"""Generated files get the mode the user's umask asks for, like any other program's output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from berth import paths
from conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "bl01b" / "services" / "bl01b-ea-sum-01" / "config"


def generate_under(umask: int, out: Path) -> None:
    """`berth generate` in a child whose umask is `umask` (set just before exec)."""
    defs = paths.support_files()[0].parent
    result = subprocess.run(
        [sys.executable, "-m", "berth", "generate", str(EXAMPLE), "--defs", str(defs),
         "-o", str(out)],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640),
                                                 (0o077, 0o600)])
def test_generated_files_honour_the_umask(tmp_path: Path, umask: int, expected: int) -> None:
    out = tmp_path / "out"
    generate_under(umask, out)
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"st.cmd", "ioc.subst"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {
        p.name: oct(expected) for p in written}
    # still atomic: no temporary file is left beside the outputs
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
