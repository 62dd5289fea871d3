"""devIocStats' iocAdminSoft PVs on the embedded soft IOC, end to end: `berth run` of an instance
using the corpus-compatible `devIocStats.iocAdminSoft` entity, read over CA and PVA."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from test_run import Ioc, ca_read, iocs, loopback_epics, pva_context, start, unique_prefix

from berth import paths

__all__ = ["iocs", "loopback_epics"]  # fixtures

# The PVs devIocStats (3.2.0, the version epics-containers builds) serves for iocAdminSoft.db,
# after its iocAdminSoft.substitutions: ioc.template, iocQueue.db (4 queues),
# iocGeneralTime.template, iocAdminScanMon.db, epicsEnvVars and siteEnvVars (base's
# CONFIG_SITE_ENV), as listed in its documentation (README_devIocStats) and db names.
IOC_TEMPLATE = [
    "ACCESS", "STARTTOD", "TOD", "HEARTBEAT", "START_CNT", "READACF", "SYSRESET", "CA_CLNT_CNT",
    "CA_CONN_CNT", "RECORD_CNT", "FD_MAX", "FD_CNT", "FD_FREE", "SYS_CPU_LOAD", "IOC_CPU_LOAD",
    "CPU_CNT", "SUSP_TASK_CNT", "MEM_USED", "MEM_FREE", "MEM_MAX", "CA_UPD_TIME", "FD_UPD_TIME",
    "LOAD_UPD_TIME", "MEM_UPD_TIME", "ST_SCRIPT1", "ST_SCRIPT2", "ST_SCRIPT", "KERNEL_VERS",
    "EPICS_VERS", "EPICS_VERSION", "HOSTNAME", "APP_DIR1", "APP_DIR2", "APP_DIR", "UPTIME",
    "ENGINEER", "LOCATION", "PROCESS_ID", "PARENT_ID", "SCANONCE_Q_SIZE", "CB_Q_SIZE"
]
QUEUES = [f"{q}_Q_{s}" for q in ("SCANONCE", "CBLOW", "CBMEDIUM", "CBHIGH")
          for s in ("HIGH", "HIGHPER", "USED", "USEDPER", "OVERRUNS")]
GENERAL_TIME = [f"GTIM_{s}" for s in ("TIME", "RESET", "ERR_CNT", "CUR_SRC", "EVT_SRC", "HI_SRC")]
SCAN_MON = [f"{r}_{s}" for r in ("01HZ", "02HZ", "05HZ", "1HZ", "2HZ", "5HZ", "10HZ")
            for s in ("MODE", "UPD_TIME")] + ["SCANMON_SEVR"]
ENV = [
    "CA_ADDR_LIST", "CA_CONN_TIME", "CA_AUTO_ADDR", "CA_RPTR_PORT", "CA_SRVR_PORT", "CA_MAX_ARRAY",
    "CA_SRCH_TIME", "CA_BEAC_TIME", "CAS_SRVR_PORT", "CAS_AUTO_ADDR", "CAS_ADDR_LIST",
    "CAS_BEACON_PERIOD", "CAS_BEACON_PORT", "CAS_ADDR_INTF_LIST", "CAS_ADDR_IGNORE_LIST", "TZ",
    "TS_NTP_INET", "IOC_LOG_PORT", "IOC_LOG_INET", "IOC_LOG_FILE_LIMIT", "IOC_LOG_FILE_NAME",
    "IOC_LOG_FILE_COMMAND"
]
ALIASES = ["LOAD", "SysReset"]
IOC_ADMIN_SOFT = IOC_TEMPLATE + QUEUES + GENERAL_TIME + SCAN_MON + ENV


def text(pv: str) -> str:
    value = ca_read(pv)
    return value.decode() if isinstance(value, bytes) else str(value)


def config(folder: Path, prefix: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "ioc.yaml").write_text(yaml.safe_dump({
        "ioc_name": "stats-test", "description": "health PVs on the soft IOC",
        "entities": [{"type": "devIocStats.iocAdminSoft", "IOC": f"{prefix}STATS"}]}))
    return folder


def test_the_iocstats_entities_are_the_corpus_ones_and_in_the_soft_ioc_set(corpus: Path):
    ours = yaml.safe_load((paths.ASSETS / "support" / "devIocStats.ibek.support.yaml").read_text())
    theirs = yaml.safe_load(
        (corpus / "ibek-support" / "iocStats" / "iocStats.ibek.support.yaml").read_text())

    def models(data: dict) -> dict:  # type: ignore[type-arg]
        return {m["name"]: ({k: p["type"] for k, p in m["parameters"].items()},
                            [d["file"] for d in m["databases"]])
                for m in data["entity_models"]}

    assert ours["module"] == theirs["module"]
    theirs_models = models(theirs)
    theirs_models.pop("iocAdminVxWorks")  # no vxWorks on the embedded runtime
    assert models(ours) == theirs_models
    assert "devIocStats.ibek.support.yaml" in {p.name for p in paths.support_files()}


@pytest.fixture
def running(tmp_path: Path, iocs: list[Ioc], monkeypatch: pytest.MonkeyPatch) -> tuple[Ioc, str]:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("AUTOSAVE_DIR", str(data))
    monkeypatch.setenv("ENGINEER", "A. Tester")
    prefix = unique_prefix()
    ioc = start(iocs, config(tmp_path / "svc" / "config", prefix), tmp_path / "run1")
    ioc.wait_ready()
    return ioc, f"{prefix}STATS:"


def _ioc_pid(ioc: Ioc) -> int:
    status = ioc.runtime / "status.json"
    import json

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if status.is_file():
            return int(json.loads(status.read_text())["pid"])
        time.sleep(0.1)
    raise AssertionError("no status.json")


def test_health_pvs_count_and_match_proc(running: tuple[Ioc, str]):
    ioc, p = running
    beat = float(ca_read(f"{p}HEARTBEAT"))  # type: ignore[arg-type]
    up = text(f"{p}UPTIME")
    time.sleep(2.5)
    assert float(ca_read(f"{p}HEARTBEAT")) >= beat + 2  # type: ignore[arg-type]
    later = text(f"{p}UPTIME")
    assert later > up and later.startswith("00:00:")
    # the IOC is the runner's child (the runner forks it): PARENT_ID is the runner
    pid = int(ca_read(f"{p}PROCESS_ID"))  # type: ignore[call-overload]
    assert int(ca_read(f"{p}PARENT_ID")) == _ioc_pid(ioc)  # type: ignore[call-overload]
    with open(f"/proc/{pid}/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGESIZE")
    used = float(ca_read(f"{p}MEM_USED"))  # type: ignore[arg-type]
    assert abs(used - resident) < 8e6, (used, resident)  # read at most 10 s apart
    with open("/proc/meminfo") as meminfo:
        total = int(meminfo.readline().split()[1]) * 1024
    assert float(ca_read(f"{p}MEM_MAX")) == total  # type: ignore[arg-type]
    assert 0 < float(ca_read(f"{p}MEM_FREE")) <= total  # type: ignore[arg-type]
    assert float(ca_read(f"{p}CPU_CNT")) == os.cpu_count()  # type: ignore[arg-type]
    load = float(ca_read(f"{p}IOC_CPU_LOAD"))  # type: ignore[arg-type]
    assert 0 <= load <= 100
    assert float(ca_read(f"{p}LOAD")) == load  # type: ignore[arg-type]
    assert float(ca_read(f"{p}RECORD_CNT")) >= len(IOC_ADMIN_SOFT)  # type: ignore[arg-type]
    assert text(f"{p}EPICS_VERS").startswith("EPICS 7.")
    assert text(f"{p}HOSTNAME") == os.uname().nodename
    assert text(f"{p}ENGINEER") == "A. Tester"
    assert float(ca_read(f"{p}START_CNT")) == 1  # type: ignore[arg-type]
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert abs(float(ca_read(f"{p}FD_CNT")) - fds) <= 3  # type: ignore[arg-type]
    assert text(f"{p}CA_ADDR_LIST") == os.environ["EPICS_CA_ADDR_LIST"]


def test_every_iocadminsoft_pv_is_served_over_pva_and_no_other(running: tuple[Ioc, str]):
    ioc, p = running
    ctx = pva_context()
    try:
        values = ctx.get([p + n for n in IOC_ADMIN_SOFT + ALIASES], timeout=10.0,
                         throw=False)
    finally:
        ctx.close()
    missing = [n for n, v in zip(IOC_ADMIN_SOFT + ALIASES, values, strict=True)
               if isinstance(v, Exception)]
    assert missing == []
    from berth.run.ready import RECORD

    loaded = {m.group(1) for m in RECORD.finditer((ioc.runtime / "ioc.db").read_text())}
    assert loaded == {p + n for n in IOC_ADMIN_SOFT}


def test_start_count_survives_a_restart(tmp_path: Path, iocs: list[Ioc],
                                        monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("AUTOSAVE_DIR", str(data))
    prefix = unique_prefix()
    folder = config(tmp_path / "svc" / "config", prefix)
    for run, expected in ((1, 1), (2, 2)):
        ioc = start(iocs, folder, tmp_path / f"run{run}")
        ioc.wait_ready()
        assert float(ca_read(f"{prefix}STATS:START_CNT")) == expected  # type: ignore[arg-type]
        assert ioc.stop() == 0


def test_sysreset_stops_the_ioc_for_its_supervisor_to_restart(running: tuple[Ioc, str]):
    from test_run import ca_write

    ioc, p = running
    ca_write(f"{p}SYSRESET.PROC", [1])
    assert ioc.proc.wait(15) == 0
    assert "IOC reboot started" in ioc.stdout
