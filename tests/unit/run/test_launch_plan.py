"""`plan` decides without side effects; `prepare_runtime` does the I/O it decided on."""

from __future__ import annotations

import os
from pathlib import Path

from berth import paths
from berth.run.launch import RunOptions, plan, prepare_runtime
from conftest import run_berth

INSTANCE = "ioc_name: demo\nentities:\n  - type: epics.dbpf\n    pv: X\n    value: '1'\n"


def test_plan_has_no_side_effects_and_prepare_runtime_does_the_io(tmp_path: Path) -> None:
    config = tmp_path / "svc" / "config"
    config.mkdir(parents=True)
    (config / "st.cmd").write_text('cd "/epics/ioc"\ndbLoadRecords /epics/ioc/config/x.db\n')
    runtime = tmp_path / "runtime"
    before = dict(os.environ)
    launch = plan(RunOptions(config, ioc_dir=Path(paths.IOC_DIR), runtime_dir=runtime),
                  {"STREAM_PROTOCOL_PATH": "/protos"})
    assert not runtime.exists() and dict(os.environ) == before
    assert launch.mode == "st.cmd" and launch.env["IOC_NAME"] == "svc"
    assert launch.env["STREAM_PROTOCOL_PATH"].endswith(os.pathsep + "/protos")
    assert launch.st_cmd == runtime.resolve() / "st.cmd"  # rewritten, as paths differ here
    prepare_runtime(launch)
    text = (runtime / "st.cmd").read_text()
    assert f"dbLoadRecords {config.resolve()}/x.db" in text
    assert f'cd "{paths.ioc_dir()}"' in text
    assert dict(os.environ) == before


def test_plan_of_an_instance_yaml_generates_from_it(tmp_path: Path) -> None:
    (tmp_path / "ioc.yaml").write_text(INSTANCE)
    (tmp_path / "runtime.yaml").write_text(INSTANCE)
    launch = plan(RunOptions(tmp_path, runtime_dir=tmp_path / "rt"), {})
    assert launch.mode == "yaml" and launch.embedded
    assert launch.files == [tmp_path.resolve() / "ioc.yaml", tmp_path.resolve() / "runtime.yaml"]
    assert launch.st_cmd == (tmp_path / "rt").resolve() / "st.cmd"
    assert launch.include[:3] == [tmp_path.resolve(), (tmp_path / "rt").resolve(),
                                  paths.db_dir()]


def test_run_of_a_folder_with_two_instance_yamls_is_an_error(tmp_path: Path) -> None:
    """It used to start from the first silently; `berth generate` refused: now both refuse."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "a.yaml").write_text(INSTANCE)
    (config / "b.yaml").write_text(INSTANCE)
    result = run_berth("run", config, "--runtime-dir", tmp_path / "rt")
    assert result.returncode == 2
    assert "more than one IOC instance YAML" in result.stderr and "a.yaml, b.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rt" / "st.cmd").exists()
