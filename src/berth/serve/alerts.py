"""Incidents an operator must hear of, noticed from the rows of each poll, shown on the page and
POSTed to webhooks: once when an incident opens, once when it is over.

- crash-loop: the instance restarted `restarts` times within `window` seconds, or backs off;
- not answering: it runs but its IOC has not answered for `grace` seconds;
- stopped: it is meant to run (desired started) but is stopped or crashed.

An incident is over once its condition has been false for `settle` seconds (a crash-looping
instance must run, ready and without restarting, that long).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth.errors import BerthError, Problem
from berth.serve.fleet import log

STYLES = ("generic", "slack", "teams")
KINDS = {"crash-loop": "is crash-looping", "not-answering": "does not answer",
         "stopped": "is stopped but should be running"}


@dataclass(frozen=True)
class Webhook:
    url: str
    style: str = "generic"

    @classmethod
    def parse(cls, text: str) -> Webhook:
        """`URL`, or `slack:URL` / `teams:URL` / `generic:URL` for the payload's shape."""
        style, sep, rest = text.partition(":")
        if sep and style in STYLES and rest.startswith(("http://", "https://")):
            return cls(rest, style)
        if not text.startswith(("http://", "https://")):
            raise BerthError(Problem(f"webhook {text!r}: expected an http(s) URL, optionally "
                                     "after slack: teams: or generic:", field="webhook"))
        return cls(text)

    def payload(self, event: dict[str, Any]) -> dict[str, Any]:
        text = event["message"]
        if self.style == "slack":
            return {"text": text}
        if self.style == "teams":
            return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
                    "summary": text, "themeColor": "2EB886" if event["status"] == "resolved"
                    else "D63333", "text": text}
        return event


@dataclass(frozen=True)
class AlertRules:
    restarts: int = 3
    window: float = 300.0
    grace: float = 30.0
    settle: float = 30.0


@dataclass
class _Watch:
    restarts: int | None = None
    restart_times: deque[float] = field(default_factory=deque)
    since: dict[str, float] = field(default_factory=dict)  # condition → true since
    clear_since: dict[str, float] = field(default_factory=dict)  # open incident → false since


class Alerts:
    def __init__(self, webhooks: list[Webhook], rules: AlertRules | None = None,
                 source: str = "berth"):
        self.webhooks = webhooks
        self.rules = rules or AlertRules()
        self.source = source
        self.active: dict[tuple[str, str], dict[str, Any]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self._watch: dict[str, _Watch] = {}

    def observe(self, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """The incidents that opened or ended with these rows (and POST them)."""
        events: list[dict[str, Any]] = []
        seen = set()
        for row in rows:
            name = row["name"]
            seen.add(name)
            watch = self._watch.setdefault(name, _Watch())
            for kind, true in self._conditions(row, watch, now).items():
                events += self._step(name, kind, true, watch, now, row)
        for (name, kind) in list(self.active):
            if name not in seen:  # removed from the backend: that incident is over
                events.append(self._close(name, kind, now, "removed"))
        for event in events:
            self.recent.appendleft(event)
            self._send(event)
        return events

    def _conditions(self, row: dict[str, Any], watch: _Watch, now: float) -> dict[str, bool]:
        rules = self.rules
        restarts = int(row.get("restarts") or 0)
        if watch.restarts is not None and restarts > watch.restarts:
            watch.restart_times.extend([now] * (restarts - watch.restarts))
        watch.restarts = restarts
        while watch.restart_times and now - watch.restart_times[0] > rules.window:
            watch.restart_times.popleft()
        state = row.get("state")
        looping = state == "backoff" or len(watch.restart_times) >= rules.restarts
        open_loop = (row["name"], "crash-loop") in self.active
        if open_loop:  # over only once it runs, ready, without restarting for `settle`
            last = watch.restart_times[-1] if watch.restart_times else 0.0
            looping = not (state == "running" and row.get("ready")) or \
                now - last < rules.settle
        desired = (row.get("extra") or {}).get("desired")
        return {
            "crash-loop": looping,
            "not-answering": state == "running" and row.get("health") == "not answering",
            "stopped": desired == "started" and state in ("stopped", "crashed", "exited"),
        }

    def _step(self, name: str, kind: str, true: bool, watch: _Watch, now: float,
              row: dict[str, Any]) -> list[dict[str, Any]]:
        key = (name, kind)
        if true:
            watch.since.setdefault(kind, now)
            watch.clear_since.pop(kind, None)
            wait = self.rules.grace if kind in ("not-answering", "stopped") else 0.0
            if key not in self.active and now - watch.since[kind] >= wait:
                return [self._open(name, kind, now, row)]
            return []
        watch.since.pop(kind, None)
        if key not in self.active:
            return []
        watch.clear_since.setdefault(kind, now)
        settle = 0.0 if kind == "crash-loop" else self.rules.settle  # (crash-loop: above)
        if now - watch.clear_since[kind] >= settle:
            watch.clear_since.pop(kind, None)
            return [self._close(name, kind, now, "recovered")]
        return []

    def _event(self, name: str, kind: str, status: str, now: float, message: str
               ) -> dict[str, Any]:
        return {"instance": name, "kind": kind, "status": status, "message": message,
                "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": self.source}

    def _open(self, name: str, kind: str, now: float, row: dict[str, Any]) -> dict[str, Any]:
        detail = f" ({row['reason']})" if row.get("reason") else ""
        event = self._event(name, kind, "firing", now,
                            f"[{self.source}] {name} {KINDS[kind]}{detail}")
        self.active[(name, kind)] = event
        return event

    def _close(self, name: str, kind: str, now: float, why: str) -> dict[str, Any]:
        self.active.pop((name, kind), None)
        if kind == "crash-loop" and name in self._watch:
            self._watch[name].restart_times.clear()  # those restarts were this incident's
        return self._event(name, kind, "resolved", now,
                           f"[{self.source}] {name} {why}: it no longer {_no_longer(kind)}")

    def _send(self, event: dict[str, Any]) -> None:
        for hook in self.webhooks:
            threading.Thread(target=_post, args=(hook, hook.payload(event)), daemon=True).start()


def _no_longer(kind: str) -> str:
    return {"crash-loop": "crash-loops", "not-answering": "fails to answer",
            "stopped": "is stopped against its desired state"}[kind]


def _post(hook: Webhook, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(hook.url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "berth-serve"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as exc:
        log(f"webhook {hook.url}: {exc}")
