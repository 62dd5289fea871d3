"""scripts/demo_read.py, the demo's PV reader: robust to p4p's shared NT unwrapper (a QSRV
group read before or after NTScalars, in every order, over fresh contexts) and waiting for
processed values (a record that never processed is reported, not printed)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from test_run import Ioc, iocs, loopback_epics, start, stcmd_folder, unique_prefix  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
POSITION_DB = REPO_ROOT / "examples/bl01b/services/bl01b-ea-pva-01/config/position.db"


def demo_read() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_read", REPO_ROOT / "scripts/demo_read.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def position_ioc(tmp_path: Path, iocs: list[Ioc], loopback_epics: None) -> str:  # noqa: F811
    prefix = unique_prefix()
    config = stcmd_folder(
        tmp_path, prefix,
        extra=f'dbLoadRecords /epics/ioc/config/position.db "P={prefix}"\n'
              f'dbLoadRecords /epics/ioc/config/never.db "P={prefix}"\n',
        post=f"dbpf {prefix}X 3\ndbpf {prefix}Y 4\n")
    (config / "position.db").write_text(POSITION_DB.read_text())
    (config / "never.db").write_text('record(ai, "$(P)NEVER") {\n}\n')
    start(iocs, config, tmp_path / "work").wait_ready()
    return prefix


def test_group_and_scalars_in_every_order_over_fresh_contexts(position_ioc: str) -> None:
    reader = demo_read()
    p = position_ioc
    names = [f"{p}POSITION", f"{p}SETPOINT", f"{p}DOUBLE", f"{p}R"]
    orders = list(itertools.permutations(names))
    for order in orders[:20]:  # 20 consecutive fresh contexts, the group in every position
        values = reader.read(list(order), timeout=20)
        assert values[f"{p}POSITION"] == {"x": 3.0, "y": 4.0, "r": 5.0}
        assert values[f"{p}SETPOINT"] == 1.5
        assert values[f"{p}DOUBLE"] == 3.0
        assert values[f"{p}R"] == 5.0
    assert {order.index(f"{p}POSITION") for order in orders[:20]} == {0, 1, 2, 3}


def test_a_record_that_never_processed_is_reported_not_printed(position_ioc: str,
                                                                capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    reader = demo_read()
    assert reader.main(["--timeout", "2", f"{position_ioc}SETPOINT", f"{position_ioc}NEVER"]) == 1
    err = capsys.readouterr().err
    assert f"{position_ioc}NEVER: not initialised (UDF)" in err
