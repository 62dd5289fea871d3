"""`berth run` of instance-YAML folders on the soft IOC (generation by berth.ioc.generate,
ioc.db by berth.epics.substitutions),
and st.cmd + ioc.subst folders; plus the errors of those steps."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from test_run import (
    Ioc,
    ca_read,
    ca_write,
    iocs,
    loopback_epics,
    pva_context,
    pva_read,
    start,
    unique_prefix,
    wait_until,
)

from conftest import run_berth

__all__ = ["iocs", "loopback_epics"]  # fixtures: IOCs, and loopback-only EPICS


RECORDS_DB = (
    'record(ao, "$(P)SETPOINT") {\n  field(VAL, "$(START)")\n}\n'
    'record(calc, "$(P)DOUBLE") {\n  field(INPA, "$(P)SETPOINT CP")\n  field(CALC, "A*2")\n}\n'
    'record(stringout, "$(P)NAME") {\n  field(VAL, "unset")\n}\n'
)


def yaml_folder(folder: Path, prefix: str, extra_entities: str = "") -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text(RECORDS_DB)
    (config / "ioc.yaml").write_text(
        "# yaml-language-server: $schema=ioc.schema.json\n"
        "ioc_name: '{{ _global.get_env(\"IOC_NAME\") }}'\n"
        "description: a soft IOC described as entities\n"
        "entities:\n"
        "  - type: berth.Template\n"
        "    file: records.db\n"
        f"    macros: {{P: '{prefix}', START: '2.5'}}\n"
        "  - type: epics.DbText\n"
        "    text: |\n"
        # Bare words: the generator writes values into ioc.subst without escaping quotes.
        f"      record(longout, {prefix}COUNT) {{\n"
        "        field(VAL, 7)\n"
        "      }\n"
        "  - type: epics.DbAlias\n"
        f"    name: {prefix}COUNT\n"
        f"    alias: {prefix}COUNT_ALIAS\n"
        "  - type: epics.dbpf\n"
        f"    pv: {prefix}NAME\n"
        "    value: from-yaml\n"
        + extra_entities
    )
    return config


def test_instance_yaml_serves_ca_and_pva(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    config = yaml_folder(tmp_path / "svc", prefix)
    (config / "runtime.yaml").write_text(
        f"entities:\n  - type: epics.dbpf\n    pv: {prefix}COUNT\n    value: '11'\n")
    ioc = start(iocs, config, tmp_path / "work")
    ioc.wait_ready()
    assert ca_read(f"{prefix}SETPOINT") == pytest.approx(2.5)
    assert ca_read(f"{prefix}COUNT_ALIAS") == 11, "DbText record, alias, runtime.yaml dbpf"
    ctx = pva_context()
    try:
        assert pva_read(ctx, f"{prefix}NAME") == "from-yaml"
        ctx.put(f"{prefix}SETPOINT", 5.0)
        wait_until(lambda: ca_read(f"{prefix}DOUBLE") == pytest.approx(10.0), what="PVA write")
        ca_write(f"{prefix}SETPOINT", 1.25)
        wait_until(lambda: pva_read(ctx, f"{prefix}DOUBLE") == pytest.approx(2.5),
                   what="CA write")
    finally:
        ctx.close()
    st_cmd = (ioc.runtime / "st.cmd").read_text()
    assert "ioc_registerRecordDeviceDriver pdbbase" in st_cmd
    assert f"dbLoadRecords {ioc.runtime.resolve()}/ioc.db" in st_cmd
    assert f'"{prefix}COUNT_ALIAS"' in (ioc.runtime / "ioc.db").read_text()
    assert ioc.stop() == 0


def test_a_missing_template_stops_the_ioc(tmp_path: Path, iocs: list[Ioc]):
    config = yaml_folder(tmp_path / "svc", unique_prefix(),
                         "  - type: berth.Template\n    file: no_such.db\n")
    ioc = start(iocs, config, tmp_path / "work")
    assert ioc.proc.wait(60) == 2
    assert "start-up stopped at a failing line: dbLoadRecords(\"no_such.db\"" in ioc.stderr
    assert "Traceback" not in ioc.stderr


def test_an_unreachable_device_is_a_clear_error(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = yaml_folder(tmp_path / "svc", unique_prefix(),
                         "  - type: ibek.wait_ip\n    device: motorCtrl\n"
                         f"    address: 127.0.0.1:{port}\n    timeout: 1\n")
    result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", timeout=60)
    assert result.returncode == 2
    assert f"device motorCtrl at 127.0.0.1:{port} did not answer within 1 s" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_wait_skips_the_wait_list(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    config = yaml_folder(tmp_path / "svc", prefix,
                         "  - type: ibek.wait_ip\n    device: motorCtrl\n"
                         "    address: 127.0.0.1:1\n    timeout: 30\n")
    ioc = start(iocs, config, tmp_path / "work", "--no-wait")
    ioc.wait_ready()
    assert ca_read(f"{prefix}NAME") == b"from-yaml"
    assert ioc.stop() == 0


def subst_folder(folder: Path, prefix: str, subst: str, db: str = RECORDS_DB) -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text(db)
    (config / "ioc.subst").write_text(subst)
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        "dbLoadRecords /epics/runtime/ioc.db\niocInit\n")
    return config


def test_stcmd_with_ioc_subst_is_expanded_into_ioc_db(tmp_path: Path, iocs: list[Ioc]):
    prefix = unique_prefix()
    config = subst_folder(tmp_path / "svc", prefix,
                          f'file "records.db" {{\n  pattern {{ P, START }}\n'
                          f'  {{ "{prefix}A:", "3" }}\n  {{ "{prefix}B:", "4" }}\n}}\n')
    ioc = start(iocs, config, tmp_path / "work")
    ioc.wait_ready()
    assert ca_read(f"{prefix}A:SETPOINT") == pytest.approx(3.0)
    assert ca_read(f"{prefix}B:DOUBLE") == pytest.approx(8.0)
    assert ioc.stop() == 0


def test_a_malformed_substitution_file_is_a_clear_error(tmp_path: Path):
    config = subst_folder(tmp_path / "svc", unique_prefix(),
                          'file "records.db" {\n  pattern { P, START }\n  { "X:", "3" \n')
    result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", timeout=60)
    assert result.returncode == 2
    assert f"{config / 'ioc.subst'}:3:" in result.stderr, "names the unclosed row"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rt" / "ioc.db").exists(), "nothing half-written"


def test_an_undefined_macro_in_strict_mode_is_a_clear_error(tmp_path: Path):
    config = subst_folder(tmp_path / "svc", unique_prefix(),
                          'file "records.db" {\n  pattern { P }\n  { "X:" }\n}\n')
    result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", "--strict", timeout=60)
    assert result.returncode == 2
    assert f"{config / 'records.db'}:2" in result.stderr
    assert "'START'" in result.stderr and "undefined" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rt" / "ioc.db").exists(), "nothing half-written"


def test_a_missing_template_in_the_substitutions_is_a_clear_error(tmp_path: Path):
    config = subst_folder(tmp_path / "svc", unique_prefix(),
                          'file "no_such.template" {\n  pattern { P }\n  { "X:" }\n}\n')
    result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", timeout=60)
    assert result.returncode == 2
    assert f"{config / 'ioc.subst'}:1" in result.stderr
    assert "no_such.template" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_while_waiting_for_a_device_stops_at_once(tmp_path: Path, iocs: list[Ioc]):
    import signal
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = yaml_folder(tmp_path / "svc", unique_prefix(),
                         "  - type: ibek.wait_ip\n    device: slowCtrl\n"
                         f"    address: 127.0.0.1:{port}\n    timeout: 60\n")
    ioc = start(iocs, config, tmp_path / "work")
    wait_until(lambda: "waiting for slowCtrl" in ioc.stderr, timeout=30, what="the device wait")
    began = time.monotonic()
    ioc.proc.send_signal(signal.SIGTERM)
    assert ioc.proc.wait(10) == 0
    assert time.monotonic() - began < 5.0
    assert "iocInit" not in ioc.stdout, "the IOC never started"
