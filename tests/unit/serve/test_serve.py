"""`berth serve` end to end over a real beamline: the overview and its live updates, screens over
HTTP, /metrics against `ps --json`, PV search on the page and the CLI, actions (confirmed by
CSRF and Origin, audit-logged) and alerts to a webhook. Tests run in file order: read-only first,
then the ones that kill and stop."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import (
    GENERATED_IOC,
    MARKUP_COMMENT,
    SCREEN_IOC,
    Dashboard,
    beamline_dashboard,
)
from test_local import CA_PVS, wait_until

from berth.serve.audit import FILE_NAME


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    yield from beamline_dashboard(tmp_path_factory.mktemp("serve"))


class Events:
    """The server-sent events of /events, collected in a thread."""

    def __init__(self, url: str):
        self.items: list[tuple[str, Any]] = []
        self._stop = False
        threading.Thread(target=self._read, args=(url,), daemon=True).start()

    def _read(self, url: str) -> None:
        kind = ""
        with httpx.stream("GET", url, timeout=None) as response:
            for line in response.iter_lines():
                if self._stop:
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.items.append((kind, json.loads(line[6:])))

    def rows_of(self, name: str) -> list[dict[str, Any]]:
        return [r for kind, data in self.items if kind == "rows"
                for r in data["changed"] if r["name"] == name]

    def close(self) -> None:
        self._stop = True


def ps(dash: Dashboard) -> dict[str, dict[str, Any]]:
    return dash.line.ps()


def test_overview_shows_every_instance_ready(dash: Dashboard) -> None:
    page = dash.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for name in CA_PVS:
        assert f'id="row-{name}" data-name="{name}"' in page.text
        row = page.text.split(f'id="row-{name}"', 1)[1].split("</tr>", 1)[0]
        assert 'data-ready="yes"' in row and "● ready" in row, row
    versions = {r["version"] for r in ps(dash).values() if r["version"]}
    assert all(v in page.text for v in versions)


def test_metrics_parse_and_match_ps_json(dash: Dashboard) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(dash.get("/metrics").text)}
    rows = ps(dash)
    for family in ("berth_instance_up", "berth_instance_ready", "berth_instance_restarts",
                   "berth_instance_uptime_seconds"):
        samples = {s.labels["instance"]: s for s in families[family].samples}
        assert set(samples) == set(rows), family
        for name, sample in samples.items():
            row = rows[name]
            assert sample.labels["version"] == (row["version"] or "")
            if family == "berth_instance_up":
                assert sample.value == (1.0 if row["state"] == "running" else 0.0)
            elif family == "berth_instance_ready":
                assert sample.value == (1.0 if row["ready"] else 0.0)
            elif family == "berth_instance_restarts":
                assert sample.value == row["restarts"]
            else:  # polled a second apart at most, and ps ran after
                assert abs(sample.value - (row["uptime"] or 0)) <= 3
    assert dash.get("/healthz").json()["ok"] is True


def test_screens_are_the_same_bytes_and_links_resolve(dash: Dashboard) -> None:
    config = dash.line.repo / "services" / SCREEN_IOC / "config"
    response = dash.get(f"/opi/{SCREEN_IOC}/index.bob")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    assert response.content == (config / "index.bob").read_bytes()
    links = [f.text for f in ET.fromstring(response.content).iter("file")]
    assert links == ["motor.bob"]
    for link in links:
        linked = dash.get(f"/opi/{SCREEN_IOC}/{link}")
        assert linked.status_code == 200 and linked.content == (config / link).read_bytes()
    preview = dash.get(f"/preview/{SCREEN_IOC}/motor.bob")
    assert preview.status_code == 200 and "<svg" in preview.text
    for bad in ("../values.yaml", "ioc.yaml", "nothing.bob"):
        assert dash.get(f"/opi/{SCREEN_IOC}/{bad}").status_code == 404, bad


def test_generated_screens_are_served_as_generated(dash: Dashboard) -> None:
    opi = dash.line.state / "instances" / GENERATED_IOC / "runtime" / "opi"
    assert sorted(p.name for p in opi.iterdir()) == ["demo.pvi.bob", "index.bob"]
    index = dash.get(f"/opi/{GENERATED_IOC}/index.bob")
    assert index.status_code == 200 and index.content == (opi / "index.bob").read_bytes()
    assert index.headers["content-type"] == "application/xml"
    links = {f.text for f in ET.fromstring(index.content).iter("file")}
    assert links == {"demo.pvi.bob"}
    for link in links:
        assert dash.get(f"/opi/{GENERATED_IOC}/{link}").content == (opi / link).read_bytes()
    page = dash.get(f"/i/{GENERATED_IOC}").text
    assert f'href="/opi/{GENERATED_IOC}/index.bob"' in page
    assert f'href="/preview/{GENERATED_IOC}/demo.pvi.bob"' in page


def test_pv_find_on_the_page_and_the_command_line(dash: Dashboard) -> None:
    pattern = dash.line.pv("MO-SIM-01:X*")
    page = dash.get("/pv", params={"q": pattern, "format": "json"}).json()
    found = {e["pv"]: e for e in page["found"]}
    assert dash.line.pv("MO-SIM-01:X") in found and dash.line.pv("MO-SIM-01:X:RBV") in found
    assert all(e["instance"] == "bl01b-mo-sim-01" for e in found.values())
    assert found[dash.line.pv("MO-SIM-01:X")]["record_type"] == "ao"
    assert found[dash.line.pv("MO-SIM-01:X:RBV")]["record_type"] == "calc"
    assert found[dash.line.pv("MO-SIM-01:X")]["screen"] == f"/opi/{SCREEN_IOC}/index.bob"
    cli = json.loads(dash.line.ok("pv", "find", pattern, "--json"))
    assert cli == page["found"]
    regex = json.loads(dash.line.ok("pv", "find", f"/{dash.line.pv('EA-SUM-01')}:(SUM|MEAN)/",
                                    "--json"))
    assert sorted(e["pv"] for e in regex) == sorted(dash.line.pv(p) for p in
                                                    CA_PVS["bl01b-ea-sum-01"])
    html = dash.get("/pv", params={"q": pattern}).text
    assert f'href="/opi/{SCREEN_IOC}/index.bob"' in html


def test_instance_page_shows_history_log_config_and_pvs(dash: Dashboard) -> None:
    page = dash.get("/i/bl01b-ea-sum-01").text
    row = ps(dash)["bl01b-ea-sum-01"]
    assert row["version"] in page
    assert "iocRun: All initialization complete" in page  # the log
    assert "ioc.yaml" in page and "st.cmd" in page and "dbLoadRecords" in page
    assert dash.line.pv("EA-SUM-01:SUM") in page
    # escaped: the config's markup comes out as text, never as markup
    assert MARKUP_COMMENT not in page
    assert "# &lt;script&gt;alert(&#39;not escaped&#39;)&lt;/script&gt;" in page


def test_cross_origin_and_unconfirmed_actions_are_refused(dash: Dashboard) -> None:
    name = "bl01b-ea-cnt-01"
    evil = httpx.post(f"{dash.url}/i/{name}/stop", data={"csrf": "x"},
                      headers={"Origin": "http://evil.example"}, timeout=20)
    assert evil.status_code == 403
    same_site_no_token = httpx.post(f"{dash.url}/i/{name}/stop", data={},
                                    headers={"Origin": dash.url}, timeout=20)
    assert same_site_no_token.status_code == 403
    cross_site = dash.act(name, "stop", **{"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    time.sleep(1.5)
    assert ps(dash)[name]["state"] == "running"


def test_killed_ioc_row_changes_and_recovers_live(dash: Dashboard) -> None:
    name = "bl01b-di-wave-01"
    before = ps(dash)[name]
    events = Events(dash.url + "/events")
    try:
        wait_until(lambda: events.rows_of(name), "the first full table")
        os.kill(before["pid"], signal.SIGKILL)
        changed = wait_until(lambda: [r for r in events.rows_of(name)
                                      if r["pid"] != before["pid"] or not r["ready"]],
                             "the row to change", 10)
        assert changed
        recovered = wait_until(lambda: [r for r in events.rows_of(name)
                                        if r["ready"] and r["pid"] not in (None, before["pid"])],
                               "the row to show it ready again", 60)
        assert recovered[-1]["restarts"] == before["restarts"] + 1
    finally:
        events.close()


def test_stop_from_the_page_is_audited_and_ps_agrees(dash: Dashboard) -> None:
    name = "bl01b-va-alarm-01"
    response = dash.act(name, "stop")
    assert response.status_code == 200  # (the 303 to the instance page, followed)
    assert "stop bl01b-va-alarm-01: done" in response.text
    assert ps(dash)[name]["state"] == "stopped"
    entries = [json.loads(line) for line in
               (dash.line.state / FILE_NAME).read_text().splitlines()]
    assert entries[-1]["action"] == "stop" and entries[-1]["instance"] == name
    assert entries[-1]["ok"] is True and entries[-1]["who"] == "local"
    assert oct((dash.line.state / FILE_NAME).stat().st_mode & 0o777) == "0o600"
    assert dash.act(name, "start").status_code == 200
    wait_until(lambda: ps(dash)[name]["ready"], "restarted instance ready", 60)


def test_crash_loop_gives_one_alert_and_one_recovery(dash: Dashboard) -> None:
    name = "bl01b-ea-pva-01"
    dash.receiver.posts.clear()
    for _ in range(3):
        pid = wait_until(lambda: ps(dash)[name]["pid"], "the IOC running")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda p=pid: ps(dash)[name]["pid"] not in (None, p), "a new process", 30)
    fired = wait_until(lambda: [p for p in dash.receiver.posts if p["status"] == "firing"],
                       "the alert", 15)
    assert fired[0]["instance"] == name and fired[0]["kind"] == "crash-loop"
    wait_until(lambda: [p for p in dash.receiver.posts if p["status"] == "resolved"],
               "the recovery", 60)
    time.sleep(3)
    mine = [(p["instance"], p["kind"], p["status"]) for p in dash.receiver.posts]
    assert mine == [(name, "crash-loop", "firing"), (name, "crash-loop", "resolved")], mine


def test_serve_log_has_no_traceback(dash: Dashboard) -> None:
    assert "Traceback" not in Path(dash.log_file).read_text()
