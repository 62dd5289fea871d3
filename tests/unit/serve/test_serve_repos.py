"""`berth serve -r A -r B`: one dashboard over two services repositories of one state folder
(real IOCs of both up under the local backend): the overview lists both with their repository,
filters by it, actions reach the right one, and `berth pv find -r A -r B` searches both."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import Dashboard, start_dashboard
from test_local import LOOPBACK, Beamline, copy_example, wait_until

A_IOC, B_IOC = "bl01b-ea-cnt-01", "bl01c-ea-cnt-01"


def small_repo(dest: Path, tag: str, name: str) -> Path:
    """The example's counter IOC alone, as instance `name`."""
    copy_example(dest, tag)
    for folder in (dest / "services").iterdir():
        if folder.is_dir() and folder.name != A_IOC:
            shutil.rmtree(folder)
    if name != A_IOC:
        (dest / "services" / A_IOC).rename(dest / "services" / name)
    return dest


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from berth.deploy.local import backend as local

    root = tmp_path_factory.mktemp("repos")
    tag_a, tag_b = uuid.uuid4().hex[:5].upper(), uuid.uuid4().hex[:5].upper()
    a = small_repo(root / "beamline-a", tag_a, A_IOC)
    b = small_repo(root / "beamline-b", tag_b, B_IOC)
    state = root / "state"
    line = Beamline(a, state, tag_a, {**LOOPBACK, "BERTH_STATE_DIR": str(state),
                                      "BERTH_REPO": str(a)})
    try:
        line.ok("up", "--wait", "--timeout", "60")
        line.ok("up", "-r", str(b), "--wait", "--timeout", "60")
        yield from start_dashboard(line, root, "-r", str(a), "-r", str(b))
    finally:
        local.shutdown(state)


def ps_of(dash: Dashboard, repo: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(dash.line.ok("ps", "--json", "-r", str(repo)))}


def test_overview_lists_both_repositories(dash: Dashboard) -> None:
    def both_ready(page: str) -> bool:
        return all(re.search(rf'instance="{n}".*repo="{r}"\}} 1', page) for n, r in
                   ((A_IOC, "beamline-a"), (B_IOC, "beamline-b")))

    wait_until(lambda: both_ready(dash.get("/metrics").text), "both instances ready", 60)
    page = dash.get("/").text
    assert f'href="/i/{A_IOC}"' in page and f'href="/i/{B_IOC}"' in page
    assert '<option value="beamline-a"' in page and '<option value="beamline-b"' in page
    assert 'data-repo="beamline-a"' in page and 'data-repo="beamline-b"' in page
    only_b = dash.get("/", params={"repo": "beamline-b"}).text
    assert f'href="/i/{B_IOC}"' in only_b and f'href="/i/{A_IOC}"' not in only_b
    assert "repository: beamline-b" in dash.get(f"/i/{B_IOC}").text


def test_an_action_goes_to_the_repository_of_the_instance(dash: Dashboard) -> None:
    b = dash.line.repo.parent / "beamline-b"
    response = dash.act(B_IOC, "stop")
    assert response.status_code == 200 and f"stop {B_IOC}: done" in response.text
    assert ps_of(dash, b)[B_IOC]["state"] == "stopped"
    assert ps_of(dash, dash.line.repo)[A_IOC]["state"] == "running"
    assert dash.act(B_IOC, "start").status_code == 200
    wait_until(lambda: ps_of(dash, b)[B_IOC]["ready"], "restarted instance ready", 60)


def test_pv_find_searches_every_repository(dash: Dashboard) -> None:
    b = dash.line.repo.parent / "beamline-b"
    found = json.loads(dash.line.ok("pv", "find", "*:ENABLE", "--json", "-r",
                                    str(dash.line.repo), "-r", str(b)))
    assert {e["instance"] for e in found} == {A_IOC, B_IOC}
    assert dash.line.pv("EA-CNT-01:ENABLE") in {e["pv"] for e in found}
    page = dash.get("/pv", params={"q": "*:ENABLE", "format": "json"}).json()
    assert {e["instance"] for e in page["found"]} == {A_IOC, B_IOC}
