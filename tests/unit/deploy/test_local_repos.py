"""Two services repositories in one state folder, end to end (real supervisord, real IOCs, real
CA clients): each verb applies to the repository it is given, `--all` to every one; instance
names are unique per state folder; the IOCs' network settings come from their repository, never
from the shell that started the supervisor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_local import (
    LOOPBACK,
    SERVER_LOOPBACK,
    ca_get,
    ca_value,
    copy_example,
    supervisors,
    wait_until,
)

from conftest import run_berth

A_IOCS = ["bl01b-di-wave-01", "bl01b-ea-cnt-01", "bl01b-ea-pva-01", "bl01b-ea-py-01",
          "bl01b-ea-sum-01", "bl01b-mo-sim-01", "bl01b-va-alarm-01"]
B_IOCS = ["bl01c-ea-cnt-01", "bl01c-ea-sum-01"]
B_SUM_PORT = 5071  # bl01c-ea-sum-01 serves CA on its own port (set in its values)
# What the caller's shell holds when it first starts the supervisor: none of it may reach an IOC.
CALLER_EPICS = {"EPICS_CAS_SERVER_PORT": "5099", "EPICS_CAS_BEACON_ADDR_LIST": "10.9.9.255",
                "EPICS_CA_MAX_ARRAY_BYTES": "12345"}


@dataclass
class Site:
    a: Path
    b: Path
    state: Path
    tag_a: str
    tag_b: str

    def berth(self, *args: str, repo: Path | None = None,
              extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**LOOPBACK, "BERTH_STATE_DIR": str(self.state), **(extra or {})}
        if repo is not None:
            env["BERTH_REPO"] = str(repo)
        return run_berth(*args, env=env)

    def ok(self, *args: str, repo: Path | None = None, extra: dict[str, str] | None = None
           ) -> str:
        result = self.berth(*args, repo=repo, extra=extra)
        assert result.returncode == 0, f"berth {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def ps(self, *args: str, repo: Path | None = None) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in json.loads(self.ok("ps", "--json", *args, repo=repo))}


def _second_repo(dest: Path, tag: str) -> Path:
    """Two instances of the example under other names (bl01c-…), one on its own CA port."""
    copy_example(dest, tag)
    for folder in (dest / "services").iterdir():
        if folder.is_dir() and folder.name not in ("bl01b-ea-sum-01", "bl01b-ea-cnt-01"):
            shutil.rmtree(folder)
    for name in B_IOCS:
        (dest / "services" / name.replace("bl01c", "bl01b")).rename(dest / "services" / name)
    values = dest / "services" / "bl01c-ea-sum-01" / "values.yaml"
    values.write_text(values.read_text().rstrip("\n") + f"""
    - name: EPICS_CAS_SERVER_PORT
      value: "{B_SUM_PORT}"
""")
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from berth.deploy.local import backend as local

    for key, value in LOOPBACK.items():
        os.environ[key] = value
    root = tmp_path_factory.mktemp("repos")
    tag_a, tag_b = uuid.uuid4().hex[:5].upper(), uuid.uuid4().hex[:5].upper()
    site = Site(copy_example(root / "a", tag_a), _second_repo(root / "b", tag_b),
                root / "state", tag_a, tag_b)
    try:
        site.ok("up", repo=site.a, extra=CALLER_EPICS)  # this one starts the supervisor
        site.ok("up", repo=site.b)
        yield site
    finally:
        local.shutdown(site.state)


def _all_running(site: Site, names: list[str], repo: Path) -> dict[str, dict[str, Any]]:
    return wait_until(lambda: (r := site.ps(repo=repo)) and all(
        r[n]["state"] == "running" for n in names) and r, f"{names} running")


def test_ps_lists_the_repository_given_and_all_with_all(site: Site) -> None:
    rows_a = _all_running(site, A_IOCS, site.a)
    rows_b = _all_running(site, B_IOCS, site.b)
    assert sorted(rows_a) == A_IOCS
    assert sorted(rows_b) == B_IOCS
    assert {r["extra"]["repo"] for r in rows_b.values()} == {str(site.b)}
    everything = site.ps("--all", repo=site.a)
    assert sorted(everything) == sorted(A_IOCS + B_IOCS)
    nowhere = site.berth("ps", repo=site.state)  # not a services repository
    assert nowhere.returncode == 2 and "--all" in nowhere.stderr


def test_ioc_environment_comes_from_the_repository_not_the_shell(site: Site) -> None:
    rows = _all_running(site, A_IOCS, site.a)
    ca_value(f"BL01B{site.tag_a}-EA-SUM-01:SUM")  # on the default port, not the shell's 5099
    environ = dict(item.split("=", 1) for item in Path(
        f"/proc/{rows['bl01b-ea-sum-01']['pid']}/environ").read_text().split("\0") if "=" in item)
    for key, value in SERVER_LOOPBACK.items():
        assert environ[key] == value  # from the repository's global.env
    assert "EPICS_CAS_SERVER_PORT" not in environ and "EPICS_CA_MAX_ARRAY_BYTES" not in environ
    assert environ["IOC_NAME"] == "bl01b-ea-sum-01"


def test_an_instance_serves_on_the_port_its_values_give(site: Site) -> None:
    _all_running(site, B_IOCS, site.b)
    pv = f"BL01B{site.tag_b}-EA-SUM-01:SUM"
    script = ("import sys; from caproto.sync.client import read; "
              "print(read(sys.argv[1], timeout=2, repeater=False).data[0])")

    def read(port: int) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **LOOPBACK, "EPICS_CA_ADDR_LIST": f"127.255.255.255:{port}"}
        return subprocess.run([sys.executable, "-c", script, pv], env=env, capture_output=True,
                              text=True, timeout=30)

    wait_until(lambda: read(B_SUM_PORT).returncode == 0, "the PV on its own port")
    assert float(read(B_SUM_PORT).stdout) == pytest.approx(2.54 + 2.61)
    assert read(5064).returncode != 0  # not on the shared port
    ca_value(f"BL01B{site.tag_b}-EA-CNT-01:COUNT1")  # its neighbour is on 5064


def test_a_same_named_instance_of_another_repository_is_refused(site: Site,
                                                                tmp_path: Path) -> None:
    other = copy_example(tmp_path / "c", site.tag_a)
    for folder in (other / "services").iterdir():
        if folder.is_dir() and folder.name != "bl01b-ea-sum-01":
            shutil.rmtree(folder)
    before = (site.state / "state.json").read_bytes()
    pid = site.ps(repo=site.a)["bl01b-ea-sum-01"]["pid"]
    for args in (("deploy", "bl01b-ea-sum-01"), ("deploy-local",
                                                 str(other / "services" / "bl01b-ea-sum-01")),
                 ("up",)):
        result = site.berth(*args, repo=other)
        assert result.returncode == 2, result.stderr
        assert f"already deployed from repository {site.a}" in result.stderr
        assert "unique per state folder" in result.stderr and "Traceback" not in result.stderr
    assert (site.state / "state.json").read_bytes() == before
    assert site.ps(repo=site.a)["bl01b-ea-sum-01"]["pid"] == pid


def test_up_keeps_deployed_versions_and_up_latest_moves_them_saying_so(site: Site) -> None:
    name = "bl01b-ea-sum-01"
    a_pv = f"BL01B{site.tag_a}-EA-SUM-01:A"
    before = _all_running(site, A_IOCS, site.a)[name]
    ioc_yaml = site.a / "services" / name / "config" / "ioc.yaml"
    ioc_yaml.write_text(ioc_yaml.read_text().replace('"2.54"', '"4.5"'))  # an edited copy

    up = site.berth("up", repo=site.a)
    assert up.returncode == 0, up.stderr
    assert "→" not in up.stderr
    row = site.ps(repo=site.a)[name]
    assert (row["version"], row["pid"]) == (before["version"], before["pid"])
    assert ca_get(a_pv)[0] == pytest.approx(2.54)

    latest = site.berth("up", "--latest", "-y", repo=site.a)
    assert latest.returncode == 0, latest.stderr
    moved = site.ps(repo=site.a)[name]["version"]
    assert moved != before["version"]
    assert f"{name}: {before['version']} → {moved}" in latest.stderr
    assert latest.stderr.count("→") == 1  # the others did not change
    wait_until(lambda: ca_get(a_pv)[0] == pytest.approx(4.5), "the new version running")


def test_down_of_one_repository_leaves_the_other_running(site: Site) -> None:
    _all_running(site, A_IOCS, site.a)
    b_before = _all_running(site, B_IOCS, site.b)
    deployed = json.loads(site.ok("history", "bl01b-ea-sum-01", "--json"))
    start = time.monotonic()
    out = site.ok("down", "-y", repo=site.a)
    took = time.monotonic() - start
    print(f"\ndown of {len(A_IOCS)} IOCs: {took:.2f} s (the whole command)")
    assert took < 3.0  # target 1 s; generous for a loaded machine
    assert out.split("\n")[:len(A_IOCS)] == [f"stopped {n}" for n in A_IOCS]
    with pytest.raises(TimeoutError):
        ca_get(f"BL01B{site.tag_a}-EA-SUM-01:SUM", timeout=1.5)
    rows_a = site.ps(repo=site.a)
    assert all(rows_a[n]["state"] == "stopped" for n in A_IOCS)
    rows_b = site.ps(repo=site.b)
    assert [rows_b[n]["pid"] for n in B_IOCS] == [b_before[n]["pid"] for n in B_IOCS]
    ca_value(f"BL01B{site.tag_b}-EA-CNT-01:COUNT1")
    assert site.ok("down", "-y", repo=site.a).strip() == "nothing was running"

    versions = {n: r["version"] for n, r in rows_a.items()}
    site.ok("up", repo=site.a)  # as deployed: same versions, nothing redeployed
    rows = _all_running(site, A_IOCS, site.a)
    assert {n: r["version"] for n, r in rows.items()} == versions
    assert json.loads(site.ok("history", "bl01b-ea-sum-01", "--json")) == deployed


def test_down_all_stops_the_supervisor_and_ps_starts_nothing(site: Site) -> None:
    _all_running(site, B_IOCS, site.b)
    out = site.ok("down", "--all", "-y", repo=site.a)
    assert set(out.split()) >= {*A_IOCS, *B_IOCS}
    assert supervisors(site.state) == []
    rows = site.ps("--all", repo=site.b)
    assert all(r["state"] == "stopped" and r["pid"] is None for r in rows.values())
    assert supervisors(site.state) == []

    site.ok("up", "--all", repo=site.b)  # both repositories again, as deployed
    _all_running(site, A_IOCS, site.a)
    _all_running(site, B_IOCS, site.b)
    ca_value(f"BL01B{site.tag_a}-EA-CNT-01:COUNT1")
