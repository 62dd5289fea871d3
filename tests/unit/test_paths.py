"""The one rule finding an instance's start-up files (system.md §1), and the default support
definitions outside a Generic IOC."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth import paths
from berth.errors import BerthError

INSTANCE = "ioc_name: demo\nentities:\n  - type: epics.dbpf\n    pv: X\n    value: '1'\n"


def write(folder: Path, name: str, text: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_start_sh_wins_over_everything(tmp_path: Path) -> None:
    start = write(tmp_path, "start.sh", "#!/bin/sh\n")
    write(tmp_path, "ioc.yaml", INSTANCE)
    write(tmp_path, "st.cmd", "iocInit\n")
    assert paths.find_startup(tmp_path) == paths.Startup("start.sh", [start])


def test_instance_yaml_and_runtime_yaml_win_over_st_cmd(tmp_path: Path) -> None:
    main = write(tmp_path, "bl01t-ea-ioc-01.yaml", INSTANCE)
    runtime = write(tmp_path, "runtime.yaml", INSTANCE)
    write(tmp_path, "st.cmd", "iocInit\n")
    write(tmp_path, "wait_list.yaml", "entities: []\n")  # not an instance, though it has entities
    write(tmp_path, "x.ibek.support.yaml", "module: x\nentity_models: []\nentities: []\n")
    assert paths.find_startup(tmp_path) == paths.Startup("yaml", [main, runtime])
    assert paths.find_instance_files(tmp_path) == [main, runtime]


def test_ioc_yaml_is_the_instance_even_beside_another_with_entities(tmp_path: Path) -> None:
    main = write(tmp_path, "ioc.yaml", "ioc_name: demo\n")
    write(tmp_path, "other.yaml", INSTANCE)
    assert paths.find_startup(tmp_path) == paths.Startup("yaml", [main])


def test_a_yaml_without_top_level_entities_is_not_an_instance(tmp_path: Path) -> None:
    write(tmp_path, "notes.yaml", "text: |\n  entities: inside a block\n")
    st_cmd = write(tmp_path, "st.cmd", "iocInit\n")
    subst = write(tmp_path, "ioc.subst", "")
    assert paths.find_startup(tmp_path) == paths.Startup("st.cmd", [st_cmd, subst])
    with pytest.raises(BerthError, match="no IOC instance YAML here"):
        paths.find_instance_files(tmp_path)


def test_two_instance_yamls_are_an_error_naming_the_folder(tmp_path: Path) -> None:
    """The stricter of the two former finders: `berth run` used to take the first silently."""
    write(tmp_path, "a.yaml", INSTANCE)
    write(tmp_path, "b.yaml", INSTANCE)
    write(tmp_path, "st.cmd", "iocInit\n")
    for find in (paths.find_startup, paths.find_instance_files):
        with pytest.raises(BerthError) as err:
            find(tmp_path)
        problem = err.value.problems[0]
        assert problem.location.file == tmp_path
        assert "more than one IOC instance YAML" in problem.message
        assert "a.yaml, b.yaml" in problem.message


def test_nothing_to_run_and_missing_folder(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "hello\n")
    with pytest.raises(BerthError, match="nothing to run"):
        paths.find_startup(tmp_path)
    with pytest.raises(BerthError, match="config folder not found"):
        paths.find_startup(tmp_path / "missing")
    with pytest.raises(BerthError, match="no such file or folder"):
        paths.find_instance_files(tmp_path / "missing")


def test_an_instance_file_is_its_own_instance(tmp_path: Path) -> None:
    file = write(tmp_path, "anything.yml", INSTANCE)
    assert paths.find_instance_files(file) == [file]


def test_standard_defs_are_the_generic_iocs_else_the_soft_iocs(tmp_path: Path) -> None:
    env = {"EPICS_ROOT": str(tmp_path)}
    assert paths.default_defs(env) == []
    assert paths.standard_defs(env) == paths.support_files() != []
    mine = write(tmp_path / "ibek-defs", "mine.ibek.support.yaml", "module: mine\n")
    assert paths.standard_defs(env) == [mine]
    assert paths.pvi_defs_dir(env) == tmp_path / "pvi-defs"
