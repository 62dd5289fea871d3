"""Autosave on the embedded soft IOC, end to end: `berth run` twice with real EPICS, values
written over CA and PVA, read back by the first client after the restart."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
import yaml
from test_autosave_file import strict_parse
from test_run import (
    Ioc,
    ca_read,
    ca_write,
    iocs,
    loopback_epics,
    pva_context,
    start,
    unique_prefix,
    wait_until,
)

from berth import paths
from berth.epics import autosave_file as sav

__all__ = ["iocs", "loopback_epics"]  # fixtures

RECORDS = (
    'record(ao, "$(P)SP") {\n  field(PREC, "4")\n  info(autosaveFields, "VAL DESC")\n}\n'
    'record(stringout, "$(P)NAME") {\n  field(VAL, "unset")\n  info(autosaveFields, "VAL")\n}\n'
    'alias("$(P)NAME", "$(P)NAME_ALIAS")\n'  # an alias is no second record to save
    'record(waveform, "$(P)WAVE") {\n  field(FTVL, "DOUBLE")\n  field(NELM, "8")\n'
    '  info(autosaveFields, "VAL")\n}\n'
    'record(ao, "$(P)GAIN") {\n  info(autosaveFields_pass0, "VAL")\n}\n'
    # initialised from GAIN at PINI: sees GAIN only if it was restored before record init
    'record(calc, "$(P)TWICE") {\n  field(INPA, "$(P)GAIN")\n  field(CALC, "A*2")\n'
    '  field(PINI, "YES")\n}\n'
)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The instance's data folder, given as the local backend gives it."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("AUTOSAVE_DIR", str(folder))
    return folder


def yaml_config(folder: Path, prefix: str) -> Path:
    """An instance using the corpus-compatible `autosave.Autosave` entity."""
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text(RECORDS)
    (config / "ioc.yaml").write_text(yaml.safe_dump({
        "ioc_name": "autosave-test", "description": "autosave on the soft IOC",
        "entities": [
            {"type": "autosave.Autosave", "P": f"{prefix}AS:", "positions_req_period": 1,
             "settings_req_period": 1},
            {"type": "berth.Template", "file": "records.db", "macros": {"P": prefix}},
        ]}))
    return config


def stcmd_config(folder: Path, prefix: str, pre: str, post: str = "") -> Path:
    config = folder / "config"
    config.mkdir(parents=True)
    (config / "records.db").write_text(RECORDS)
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        f'dbLoadRecords /epics/ioc/config/records.db "P={prefix}"\n{pre}iocInit\n{post}')
    return config


def saved(path: Path) -> dict[str, str | list[str]]:
    try:
        return strict_parse(path.read_text())
    except (OSError, AssertionError):
        return {}


def test_the_autosave_entities_are_the_corpus_ones_and_in_the_soft_ioc_set(corpus: Path):
    ours = yaml.safe_load((paths.ASSETS / "support" / "autosave.ibek.support.yaml").read_text())
    theirs = yaml.safe_load(
        (corpus / "ibek-support" / "autosave" / "autosave.ibek.support.yaml").read_text())

    def models(data: dict) -> dict:  # type: ignore[type-arg]
        return {m["name"]: {k: (p["type"], p.get("default")) for k, p in m["parameters"].items()}
                for m in data["entity_models"]}

    assert models(ours) == models(theirs)
    assert "autosave.ibek.support.yaml" in {p.name for p in paths.support_files()}


def test_setpoints_written_over_ca_and_pva_are_back_after_a_restart(
        tmp_path: Path, iocs: list[Ioc], data: Path):
    prefix = unique_prefix()
    config = yaml_config(tmp_path / "svc", prefix)
    first = start(iocs, config, tmp_path / "run1")
    first.wait_ready()
    ca_write(f"{prefix}SP", 3.1416)
    ca_write(f"{prefix}NAME", "restored text")
    ca_write(f"{prefix}GAIN", 21)
    ctx = pva_context()
    try:
        ctx.put(f"{prefix}WAVE", [1.5, -2.0, 1e-7], timeout=5.0)
        ctx.put(f"{prefix}SP.DESC", "set over pva", timeout=5.0)
        ctx.put(f"{prefix}SP.PREC", 2, timeout=5.0)  # not saved: must come back as loaded
    finally:
        ctx.close()
    settings, positions = data / "autosave_settings.sav", data / "autosave_positions.sav"
    wait_until(lambda: saved(settings).get(f"{prefix}WAVE.VAL") == ["1.5", "-2", "1e-07"]
               and saved(settings).get(f"{prefix}NAME.VAL") == "restored text"
               and saved(positions).get(f"{prefix}GAIN.VAL") == "21",
               what="the monitor sets to save the new values")
    assert saved(settings)[f"{prefix}SP.VAL"] == "3.1416"
    wait_until(lambda: saved(settings).get(f"{prefix}SP.DESC") == "set over pva",
               what="the string written over PVA to be saved")
    assert first.stop() == 0
    assert saved(settings) == strict_parse(sav.backup_path(settings).read_text())

    second = start(iocs, config, tmp_path / "run2")
    # the very first client read after the restart: no waiting for a restore to happen
    assert ca_read(f"{prefix}SP") == pytest.approx(3.1416)
    assert ca_read(f"{prefix}NAME") == b"restored text"
    assert ca_read(f"{prefix}SP.DESC") == b"set over pva"
    assert ca_read(f"{prefix}SP.PREC") == 4
    assert ca_read(f"{prefix}TWICE") == 42.0, "pass 0 restored GAIN before record init"
    from caproto.sync.client import read

    wave = read(f"{prefix}WAVE", timeout=5.0, repeater=False).data
    assert list(wave) == [1.5, -2.0, 1e-7]
    second.wait_ready()
    assert "pass 0: restored" in second.stdout and "pass 1: restored" in second.stdout
    assert any(p.name.startswith("autosave_settings.sav_") for p in data.iterdir()), \
        "a dated boot backup of the restored file"
    status = read(f"{prefix}AS:SR_rebootStatus", timeout=5.0, repeater=False).data[0]
    assert status == b"Ok", "the reboot status PV says so"


def handwritten(prefix: str) -> str:
    return ("# save/restore V5.11\tAutomatically generated - DO NOT MODIFY - 240101-120000\n"
            "! 1 channel(s) not connected - or not all gets were successful\n"
            f"{prefix}SP.VAL 7.25\n{prefix}SP.DESC by hand\n{prefix}NAME.VAL two words\n"
            f"#{prefix}NOPE.VAL Search Issued\n{prefix}GAIN 5\n"
            f'{prefix}WAVE @array@ {{ "4" "5" "6" }}\n<END>\n')


def test_a_hand_written_sav_restores_and_request_files_drive_the_save(
        tmp_path: Path, iocs: list[Ioc], data: Path):
    prefix = unique_prefix()
    (data / "mine.sav").write_text(handwritten(prefix))
    reqs = tmp_path / "reqs"
    reqs.mkdir()
    (reqs / "mine.req").write_text("$(P)SP.VAL\nfile part.req D=DESC\n")
    (reqs / "part.req").write_text("$(P)SP.$(D)\n$(P)WAVE\n")
    config = stcmd_config(
        tmp_path / "svc", prefix,
        f'set_requestfile_path("{reqs}", "")\nset_savefile_path("{data}")\n'
        "set_pass0_restoreFile mine.sav\nset_pass1_restoreFile mine.sav\n",
        f'create_monitor_set("mine.req", 1, "P={prefix}")\n')
    stale = data / ".mine.sav.0123456789ab.tmp"  # what a save killed mid-write leaves
    stale.write_text("half")
    ioc = start(iocs, config, tmp_path / "run")
    assert ca_read(f"{prefix}SP") == 7.25
    assert ca_read(f"{prefix}SP.DESC") == b"by hand"
    assert ca_read(f"{prefix}NAME") == b"two words"
    assert ca_read(f"{prefix}TWICE") == 10.0
    ioc.wait_ready()
    ca_write(f"{prefix}SP.DESC", "changed")
    wait_until(lambda: saved(data / "mine.sav").get(f"{prefix}SP.DESC") == "changed",
               what="the request file's set to be saved")
    assert set(saved(data / "mine.sav")) == {f"{prefix}SP.VAL", f"{prefix}SP.DESC",
                                             f"{prefix}WAVE"}
    assert saved(data / "mine.sav")[f"{prefix}WAVE"] == ["4", "5", "6"]
    assert not stale.exists()


def test_a_truncated_sav_restores_from_the_backup_with_a_log_line(
        tmp_path: Path, iocs: list[Ioc], data: Path):
    prefix = unique_prefix()
    text = handwritten(prefix)
    (data / "mine.sav").write_text(text[:len(text) // 2])
    (data / "mine.savB").write_text(text)
    config = stcmd_config(tmp_path / "svc", prefix,
                          "set_pass0_restoreFile mine.sav\nset_pass1_restoreFile mine.sav\n")
    ioc = start(iocs, config, tmp_path / "run")
    assert ca_read(f"{prefix}SP") == 7.25
    ioc.wait_ready()
    assert f"autosave: {data / 'mine.sav'} is incomplete" in ioc.stdout
    assert f"restoring from the backup {data / 'mine.savB'}" in ioc.stdout


def test_a_corrupt_save_file_and_a_missing_request_file_never_stop_the_ioc(
        tmp_path: Path, iocs: list[Ioc], data: Path):
    prefix = unique_prefix()
    (data / "bad.sav").write_bytes(b"\x00\xff garbage\n" * 3)
    config = stcmd_config(tmp_path / "svc", prefix, "set_pass0_restoreFile bad.sav\n",
                          "create_monitor_set nowhere.req, 1\n")
    ioc = start(iocs, config, tmp_path / "run")
    ioc.wait_ready()
    assert ca_read(f"{prefix}NAME") == b"unset"
    wait_until(lambda: "request file nowhere.req not found" in ioc.stdout, what="the log line")
    assert "no whole save file" in ioc.stdout
    assert ioc.proc.poll() is None


def test_kill_9_during_saves_never_leaves_a_file_that_restores_wrong_values(
        tmp_path: Path, iocs: list[Ioc], data: Path):
    prefix = unique_prefix()
    size = 20000
    db = (f'record(calc, "$(P)COUNT") {{\n  field(SCAN, ".1 second")\n  field(INPA, "$(P)COUNT")\n'
          f'  field(CALC, "A+1")\n}}\n'
          f'record(waveform, "$(P)BIG") {{\n  field(FTVL, "DOUBLE")\n  field(NELM, "{size}")\n}}\n')
    config = stcmd_config(tmp_path / "svc", prefix,
                          "set_pass1_restoreFile big.sav\nsave_restoreSet_NumSeqFiles 0\n",
                          f'create_periodic_set("big.req", 1, "P={prefix}")\n')
    (config / "extra.db").write_text(db)
    st = (config / "st.cmd").read_text().replace(
        "iocInit", f'dbLoadRecords /epics/ioc/config/extra.db "P={prefix}"\n'
                   f'set_requestfile_path("{config}", "")\niocInit')
    (config / "st.cmd").write_text(st)
    (config / "big.req").write_text("$(P)COUNT\n$(P)BIG\n")
    rng = random.Random(15)
    last: float | None = None
    from caproto.sync.client import read, write

    for round_ in range(5):
        ioc = start(iocs, config, tmp_path / f"run{round_}")
        ioc.wait_ready()
        if last is not None:
            restored = read(f"{prefix}BIG", timeout=5.0, repeater=False).data
            assert len(restored) == size and set(restored) == {last}, \
                "the restored array is the last one saved whole"
        value = float(round_ + 1)
        write(f"{prefix}BIG", [value] * size, notify=True, timeout=5.0, repeater=False)
        wait_until(lambda v=value: saved(data / "big.sav").get(f"{prefix}BIG", [""])[0] == f"{v:g}",
                   timeout=15, what="a save of the new array")
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment in the save cycle
        for child in _children_of(ioc.proc.pid):  # the IOC process itself, mid-save or not
            os.kill(child, 9)
        ioc.proc.wait(10)
        chosen, _ = sav.choose(data / "big.sav")
        assert chosen is not None and chosen.complete
        big = chosen.values()[f"{prefix}BIG"]
        assert isinstance(big, list) and len(big) == size and set(big) == {f"{value:g}"}
        last = value


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_the_local_backend_keeps_setpoints_across_berth_restart(tmp_path: Path):
    """`berth up` → write → `berth restart` → the value is back: AUTOSAVE_DIR is the instance's
    data folder under the state folder."""
    from berth.deploy.local import backend as local
    from conftest import REPO_ROOT, run_berth

    prefix = unique_prefix()
    repo = tmp_path / "repo"
    (repo / "services").mkdir(parents=True)
    (repo / "services" / "values.yaml").write_text(
        (REPO_ROOT / "examples" / "bl01b" / "services" / "values.yaml").read_text())
    name = "as-test-01"
    yaml_config(repo / "services" / name, prefix)
    (repo / "services" / name / "values.yaml").write_text(
        "ioc-instance:\n  image: ghcr.io/berth/softioc:0.1.0\n")
    state = tmp_path / "state"
    env = {"BERTH_STATE_DIR": str(state), "BERTH_REPO": str(repo)}

    def ok(*args: str) -> str:
        result = run_berth(*args, env=env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return result.stdout

    try:
        ok("up")
        ca_write(f"{prefix}NAME", "kept by berth")  # ca_write's own timeout bounds the start
        settings = state / "instances" / name / "data" / "autosave_settings.sav"
        wait_until(lambda: saved(settings).get(f"{prefix}NAME.VAL") == "kept by berth",
                   timeout=30, what="the save into the instance's data folder")
        ok("restart", name)
        assert ca_read(f"{prefix}NAME") == b"kept by berth"
    finally:
        local.shutdown(state)


@pytest.mark.parametrize("passes", ["0 and 1", "1 only"])
def test_menus_enums_links_and_scan_restore_as_numbers_or_text(
        tmp_path: Path, iocs: list[Ioc], data: Path, passes: str):
    prefix = unique_prefix()
    config = tmp_path / "svc" / "config"
    config.mkdir(parents=True)
    (config / "kinds.db").write_text(
        'record(ao, "$(P)A") {\n}\n'
        'record(bo, "$(P)B") {\n  field(ZNAM, "off")\n  field(ONAM, "on")\n}\n'
        'record(mbbo, "$(P)C") {\n  field(ZRST, "zero")\n  field(ONST, "one")\n'
        '  field(TWST, "two")\n}\n'
        'record(longout, "$(P)L") {\n}\n')
    (data / "kinds.sav").write_text(
        "# save/restore V5.11\tAutomatically generated - DO NOT MODIFY - 240101-120000\n"
        f"{prefix}A.SCAN 6\n{prefix}A.HHSV 2\n{prefix}A.HIHI 12.5\n"
        f"{prefix}A.OUT {prefix}L.VAL NPP NMS\n{prefix}B.VAL 1\n{prefix}C.VAL 2\n"
        f"{prefix}L.VAL -7\n<END>\n")
    pre = "set_pass1_restoreFile kinds.sav\n"
    if passes == "0 and 1":
        pre = "set_pass0_restoreFile kinds.sav\n" + pre
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        f'dbLoadRecords /epics/ioc/config/kinds.db "P={prefix}"\n{pre}iocInit\n')
    ioc = start(iocs, config, tmp_path / "run")
    assert ca_read(f"{prefix}A.SCAN") == b"1 second"
    assert ca_read(f"{prefix}A.HHSV") == b"MAJOR"
    assert ca_read(f"{prefix}A.HIHI") == 12.5
    assert ca_read(f"{prefix}B") == b"on"
    assert ca_read(f"{prefix}C") == b"two"
    assert ca_read(f"{prefix}L") == -7
    ioc.wait_ready()
    assert "illegal SCAN" not in ioc.stdout
    if passes == "0 and 1":
        assert ca_read(f"{prefix}A.OUT") == f"{prefix}L.VAL NPP NMS".encode()
    else:
        assert f"{prefix}A.OUT (a link: restored in pass 0 only)" in ioc.stdout


def test_long_strings_named_with_a_dollar_are_kept_whole(tmp_path: Path, iocs: list[Ioc],
                                                         data: Path):
    prefix = unique_prefix()
    expression = "+".join(["1"] * 50)  # 99 characters: more than a DBR_STRING holds
    config = tmp_path / "svc" / "config"
    config.mkdir(parents=True)
    (config / "calc.db").write_text(
        'record(calc, "$(P)SUM") {\n  field(CALC, "0")\n  field(PINI, "YES")\n}\n')
    (config / "long.req").write_text("$(P)SUM.CALC$\n$(P)SUM.DESC\n")
    (data / "long.sav").write_text(
        "# save/restore V5.11\tAutomatically generated - DO NOT MODIFY - 240101-120000\n"
        f"{prefix}SUM.CALC$ {expression}\n<END>\n")
    (config / "st.cmd").write_text(
        'cd "/epics/ioc"\ndbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n'
        f'dbLoadRecords /epics/ioc/config/calc.db "P={prefix}"\n'
        f'set_requestfile_path("{config}", "")\n'
        "set_pass0_restoreFile long.sav\nset_pass1_restoreFile long.sav\niocInit\n"
        f'create_monitor_set("long.req", 30, "P={prefix}")\n')
    ioc = start(iocs, config, tmp_path / "run")
    assert ca_read(f"{prefix}SUM") == 50.0, "the whole expression was restored before init"
    ioc.wait_ready()
    assert ioc.stop() == 0  # a clean stop saves what the 30 s period has not yet
    assert saved(data / "long.sav")[f"{prefix}SUM.CALC$"] == expression
