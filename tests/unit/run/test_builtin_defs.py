"""Instances of berth's soft IOC image need no --defs: generate, schema and check find the
soft IOC's support definitions themselves (issue 10, item 10)."""

from __future__ import annotations

import json
from pathlib import Path

from berth import paths
from conftest import REPO_ROOT, run_berth

EXAMPLE = REPO_ROOT / "examples" / "bl01b"
CONFIG = EXAMPLE / "services" / "bl01b-ea-sum-01" / "config"
NO_GENERIC_IOC = {"EPICS_ROOT": "/nonexistent-epics-root"}


def test_generate_without_defs_equals_generate_with_the_soft_iocs(tmp_path: Path) -> None:
    plain = run_berth("generate", CONFIG, "-o", tmp_path / "plain", env=NO_GENERIC_IOC)
    assert plain.returncode == 0, plain.stderr
    explicit = run_berth("generate", CONFIG, "-o", tmp_path / "explicit",
                         *[a for f in paths.support_files() for a in ("--defs", f)],
                         env=NO_GENERIC_IOC)
    assert explicit.returncode == 0, explicit.stderr
    for name in ("st.cmd", "ioc.subst"):
        text = (tmp_path / "plain" / name).read_text()
        assert text == (tmp_path / "explicit" / name).read_text()
    assert "dbLoadRecords" in (tmp_path / "plain" / "st.cmd").read_text()


def test_schema_without_defs_describes_the_soft_iocs_entities() -> None:
    result = run_berth("schema", env=NO_GENERIC_IOC)
    assert result.returncode == 0, result.stderr
    assert "epics.dbpf" in json.dumps(json.loads(result.stdout))


def test_new_services_output_generates_without_defs(tmp_path: Path) -> None:
    folder = tmp_path / "bl09x-services"
    made = run_berth("new", "services", folder, env=NO_GENERIC_IOC)
    assert made.returncode == 0, made.stderr
    config = next(folder.glob("services/*/config"))
    result = run_berth("generate", config, "-o", tmp_path / "out", env=NO_GENERIC_IOC)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "st.cmd").is_file()


def test_check_of_the_example_needs_no_defs() -> None:
    result = run_berth("check", "-r", EXAMPLE, env=NO_GENERIC_IOC, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no support definitions" not in result.stdout + result.stderr
    assert result.stdout.count("schema,generate,epics") == 6, result.stdout
