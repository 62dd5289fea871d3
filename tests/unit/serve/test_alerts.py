"""Alert rules played second by second (the real crash-loop over real IOCs is in
test_serve.py): one POST per incident and one on recovery, Slack and Teams payload shapes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from serve_helpers import Receiver

from berth.errors import BerthError
from berth.serve.alerts import AlertRules, Alerts, Webhook


def row(state: str = "running", restarts: int = 0, ready: bool = True,
        health: str = "ready", desired: str = "started") -> dict[str, Any]:
    return {"name": "ioc-1", "state": state, "restarts": restarts, "ready": ready,
            "health": health if state == "running" else "", "reason": "",
            "extra": {"desired": desired}}


def play(alerts: Alerts, rows: list[dict[str, Any]], start: float = 1000.0) -> list[str]:
    seen = []
    for second, each in enumerate(rows):
        seen += [f"{e['kind']} {e['status']}" for e in alerts.observe([each], start + second)]
    return seen


def test_crash_loop_fires_once_and_recovers_once() -> None:
    alerts = Alerts([], AlertRules(restarts=3, window=60, settle=5))
    rows = [row(restarts=n, ready=False, health="starting") for n in (0, 1, 1, 2, 3, 4, 5)]
    rows += [row(restarts=5)] * 8
    assert play(alerts, rows) == ["crash-loop firing", "crash-loop resolved"]
    assert not alerts.active


def test_not_answering_and_stopped_wait_for_their_grace() -> None:
    alerts = Alerts([], AlertRules(grace=3, settle=2))
    quiet = [row(ready=False, health="not answering")] * 2 + [row()] * 3
    assert play(alerts, quiet) == []  # shorter than the grace: nothing
    long = [row(ready=False, health="not answering")] * 5 + [row()] * 4
    assert play(alerts, long) == ["not-answering firing", "not-answering resolved"]
    stopped = [row("stopped")] * 5 + [row("stopped", desired="stopped")] * 4
    assert play(alerts, stopped) == ["stopped firing", "stopped resolved"]


def test_webhook_payloads() -> None:
    receiver = Receiver()
    server = receiver.start()
    try:
        hooks = [Webhook.parse(receiver.url), Webhook.parse("slack:" + receiver.url),
                 Webhook.parse("teams:" + receiver.url)]
        alerts = Alerts(hooks, AlertRules(grace=0, settle=0), source="bl01b")
        alerts.observe([row("stopped")], 1.0)
        deadline = time.monotonic() + 10
        while len(receiver.posts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    generic = next(p for p in receiver.posts if "instance" in p)
    assert generic["status"] == "firing" and generic["kind"] == "stopped"
    slack = next(p for p in receiver.posts if set(p) == {"text"})
    assert "ioc-1" in slack["text"]
    teams = next(p for p in receiver.posts if p.get("@type") == "MessageCard")
    assert teams["text"] == slack["text"]
    with pytest.raises(BerthError, match="http"):
        Webhook.parse("ftp://nowhere")
