"""The `<prefix>PVI` PV served by a real IOC from berth's .pvi.template, read with p4p and with
ophyd-async's own PVI connector (what Bluesky uses)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.screens import load_device, pvi_entries, render_pvi_template
from berth.screens.pvi_model import Device

DATA = Path(__file__).parents[2] / "data" / "screens"
LOOPBACK = {
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_CA_ADDR_LIST": "127.255.255.255",
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
}


def record_names(device: Device, prefix: str) -> list[str]:
    """The records the device's PVs live in (`rec.FIELD` lives in `rec`)."""
    names = {e.pv.split(".")[0].replace("$(P)", prefix) for e in pvi_entries(device)
             if e.access != "d"}
    return sorted(names)


def start_ioc(folder: Path, loads: list[tuple[Path, str]]) -> subprocess.Popen[str]:
    """A real IOC (EPICS base + pvxs through berth.epics.libs) loading `loads` (file,
    macros); returns once iocInit is done."""
    from berth.epics import libs as epics

    st_cmd = folder / "st.cmd"
    lines = ["on error break", "dbLoadDatabase base.dbd", "dbLoadDatabase pvxsIoc.dbd",
             "registerAllRecordDeviceDrivers pdbbase"]
    lines += [f'dbLoadRecords "{path}" "{macros}"' for path, macros in loads]
    lines.append("iocInit")
    st_cmd.write_text("\n".join(lines) + "\n")
    env = {**os.environ, **LOOPBACK, "EPICS_DB_INCLUDE_PATH": epics.dbd_search_path(),
           "PVXS_QSRV_ENABLE": "YES"}
    process = subprocess.Popen([sys.executable, str(DATA / "run_ioc.py"), str(st_cmd)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    output: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.strip() == "IOC READY":
            return process
    process.kill()
    process.wait(10)
    raise AssertionError("IOC did not start:\n" + "".join(output))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Device]]:
    """An IOC serving the test device at a unique prefix, with its child device at
    `<prefix>CHILD:`."""
    folder = tmp_path_factory.mktemp("pvi_ioc")
    prefix = f"BERTHTST{uuid.uuid4().hex[:8].upper()}:"
    device = load_device(DATA / "testdev.pvi.device.yaml")
    child = load_device(DATA / "testchild.pvi.device.yaml")
    db = folder / "records.db"
    records = record_names(device, prefix) + record_names(child, prefix + "CHILD:")
    db.write_text("".join(f'record(ao, "{name}") {{\n    field(PINI, "YES")\n}}\n'
                          for name in records))
    (folder / "testdev.pvi.template").write_text(render_pvi_template(device, "$(P)"))
    (folder / "testchild.pvi.template").write_text(render_pvi_template(child, "$(P)"))
    process = start_ioc(folder, [
        (db, ""),
        (folder / "testdev.pvi.template", f"P={prefix}"),
        (folder / "testchild.pvi.template", f"P={prefix}CHILD:"),
    ])
    saved = {k: os.environ.get(k) for k in LOOPBACK}
    os.environ.update(LOOPBACK)
    try:
        yield prefix, device
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_pvi_pv_has_the_ntpvi_shape(served: tuple[str, Device]) -> None:
    from p4p.client.thread import Context

    prefix, _device = served
    with Context("pva", nt=False) as ctx:
        value = ctx.get(f"{prefix}PVI", timeout=10)
        child = ctx.get(f"{prefix}CHILD:PVI", timeout=10)
    assert value.getID() == "epics:nt/NTPVI:1.0"
    entries = value["value"].todict()
    # One entry per signal, named in snake_case, holding PV names under r/w/rw/x/d.
    assert entries == {
        "temperature": {"r": f"{prefix}Temp_RBV"},
        "demand": {"w": f"{prefix}Demand"},
        "gain": {"r": f"{prefix}Gain_RBV", "w": f"{prefix}Gain"},
        "mode": {"rw": f"{prefix}Mode"},
        "reset": {"x": f"{prefix}Counter.PROC"},
        "child": {"d": f"{prefix}CHILD:PVI"},
        "busy": {"r": f"{prefix}Busy"},
        "enable": {"r": f"{prefix}Enable_RBV", "w": f"{prefix}Enable"},
        "size_x": {"r": f"{prefix}SizeX"},
        "size_y": {"r": f"{prefix}SizeY"},
        "waveform": {"r": f"{prefix}Waveform"},
        "threshold": {"w": f"{prefix}Threshold"},
    }
    assert child["value"].todict() == {"setting": {"rw": f"{prefix}CHILD:Setting"},
                                       "readout": {"r": f"{prefix}CHILD:Readout"}}


def test_ophyd_async_builds_the_device_from_the_pvi_pv(served: tuple[str, Device]) -> None:
    """ophyd-async's PviDeviceConnector connects to the IOC, creates a signal per entry (and
    the sub-device), and the signals read and write the real records."""
    from ophyd_async.core import Device as OphydDevice
    from ophyd_async.core import SignalR, SignalRW, SignalW
    from ophyd_async.epics.core import PviDeviceConnector

    prefix, _device = served

    async def connect_and_use() -> dict[str, object]:
        device = OphydDevice(name="testdev", connector=PviDeviceConnector(prefix))
        await device.connect(timeout=10)
        kinds = {name: type(child).__name__ for name, child in device.children()}
        gain = device.gain  # type: ignore[attr-defined]
        mode = device.mode  # type: ignore[attr-defined]
        child = device.child  # type: ignore[attr-defined]
        assert isinstance(gain, SignalRW) and isinstance(mode, SignalRW)
        assert isinstance(device.temperature, SignalR)  # type: ignore[attr-defined]
        assert isinstance(device.demand, SignalW)  # type: ignore[attr-defined]
        assert isinstance(child.setting, SignalRW)
        await mode.set(3.0)
        mode_back = await mode.get_value()
        await child.setting.set(7.5)
        setting_back = await child.setting.get_value()
        return {"kinds": kinds, "mode": mode_back, "setting": setting_back,
                "gain_source": gain.source}

    result = asyncio.run(asyncio.wait_for(connect_and_use(), 60))
    assert result["mode"] == 3.0
    assert result["setting"] == 7.5
    assert result["gain_source"] == f"pva://{prefix}Gain_RBV"
    kinds = result["kinds"]
    assert isinstance(kinds, dict)
    assert set(kinds) == {"temperature", "demand", "gain", "mode", "reset", "child", "busy",
                          "enable", "size_x", "size_y", "waveform", "threshold"}
