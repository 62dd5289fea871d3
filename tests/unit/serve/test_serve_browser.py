"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright): every
instance ready; a `kill -9`ed IOC's row changes and recovers without a reload; a stop from the
page (confirm dialog) that `berth ps` agrees with; a PV found by glob whose screen opens.
Screenshots are saved in the test's folder."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import SCREEN_IOC, Dashboard, beamline_dashboard
from test_local import CA_PVS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    yield from beamline_dashboard(tmp_path_factory.mktemp("serve-browser"))


@pytest.fixture
def page(dash: Dashboard) -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        yield tab
        browser.close()


@needs_browser
def test_dashboard_in_a_browser(dash: Dashboard, page: Any, tmp_path: Path) -> None:
    page.goto(dash.url + "/")
    page.wait_for_selector("#live.on", timeout=WAIT_MS)  # the event stream is connected
    names = list(dash.line.ps())
    assert set(CA_PVS) < set(names)
    for name in names:
        page.wait_for_selector(f'tr[data-name="{name}"][data-ready="yes"]', timeout=WAIT_MS)
    assert page.inner_text("#counts").startswith(f"{len(names)} instances · {len(names)} ready")
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    # kill -9 one IOC: its row changes and comes back, with no reload
    name = "bl01b-ea-cnt-01"
    marker = page.evaluate("() => (window.__same = Math.random())")
    before = dash.line.ps()[name]
    os.kill(before["pid"], signal.SIGKILL)
    row = f'tr[data-name="{name}"]'
    page.wait_for_function(
        "([sel, before]) => { const r = document.querySelector(sel);"
        " return r && r.querySelector('td.restarts').textContent !== before; }",
        arg=[row, str(before["restarts"])], timeout=WAIT_MS)
    page.wait_for_selector(f'{row}[data-ready="yes"]', timeout=WAIT_MS)
    assert page.evaluate("() => window.__same") == marker  # the same page all along
    assert page.inner_text(f"{row} td.restarts") == str(before["restarts"] + 1)

    # filter
    page.fill("#filter-q", "wave")
    assert page.locator("#overview tbody tr:visible").count() == 1
    page.fill("#filter-q", "")

    # stop one from its page, confirming the dialog; berth ps agrees
    target = "bl01b-va-alarm-01"
    page.click(f'a[href="/i/{target}"]')
    page.wait_for_selector("#log")
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("#do-stop")
    page.wait_for_selector("#message", timeout=WAIT_MS)
    assert dialogs == [f"Stop {target}?"]
    assert dash.line.ps()[target]["state"] == "stopped"
    assert page.inner_text("#state") == "stopped"
    page.screenshot(path=str(tmp_path / "instance.png"), full_page=True)

    # a dismissed dialog does nothing
    page.once("dialog", lambda d: d.dismiss())
    page.click("#do-start")
    page.wait_for_timeout(1500)
    assert dash.line.ps()[target]["state"] == "stopped"

    # find a PV by glob and open its screen
    page.goto(dash.url + "/pv")
    page.fill("#pv-q", dash.line.pv("MO-SIM-01:X:*"))
    page.click("#pv-go")
    page.wait_for_selector("#pv-results")
    assert dash.line.pv("MO-SIM-01:X:RBV") in page.inner_text("#pv-results")
    page.screenshot(path=str(tmp_path / "pv.png"), full_page=True)
    with page.expect_response(lambda r: f"/opi/{SCREEN_IOC}/index.bob" in r.url) as opened:
        page.click("a.screen >> nth=0")
    assert opened.value.status == 200
    assert opened.value.headers["content-type"] == "application/xml"

    # an action from another origin is refused
    status = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', body: 'csrf=x',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'}})).status",
        f"{dash.url}/i/{target}/start")
    assert status == 403  # (from the .bob page's own origin it would pass the Origin check,
    # but it carries no valid CSRF token)
    print(f"screenshots: {tmp_path}")
