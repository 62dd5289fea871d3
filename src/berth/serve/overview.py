"""One poll of the backend a second for everybody: the rows, and what changed, pushed to every
open page (a page gets the whole table once, then only the rows that changed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from berth.errors import BerthError
from berth.serve.fleet import Fleet, log, row_json

POLL_SECONDS = 1.0
QUEUE_LIMIT = 64  # a page that stops reading is dropped rather than holding memory


class Overview:
    """The latest rows of the fleet and the pages listening for changes."""

    def __init__(self, fleet: Fleet, interval: float = POLL_SECONDS,
                 on_rows: Callable[[list[dict[str, Any]], float], list[dict[str, Any]]]
                 | None = None):
        self.fleet = fleet
        self.interval = interval
        self.rows: dict[str, dict[str, Any]] = {}
        self.error = ""  # why the last poll failed, shown on the page
        self.polled_at = 0.0
        self.polls = 0
        self.on_rows = on_rows  # alerts: given the rows, returns events to push
        self._listeners: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    # -- polling ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def ready(self, timeout: float = 10.0) -> None:
        """Wait for the first poll (the first page shows real rows, not an empty table)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), timeout)

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.poll()
            await asyncio.sleep(max(0.05, self.interval - (time.monotonic() - started)))

    async def poll(self) -> None:
        try:
            statuses = await asyncio.to_thread(self.fleet.rows)
            rows = {s.name: row_json(s) for s in statuses}
            error = ""
        except BerthError as err:
            rows, error = self.rows, "; ".join(str(p) for p in err.problems)
        except Exception as exc:  # noqa: BLE001 - a failing backend must not stop the server
            rows, error = self.rows, f"{type(exc).__name__}: {exc}"
        if error and error != self.error:
            log(f"polling the backend failed: {error}")
        self.polled_at = time.time()
        self.polls += 1
        changed = {n: r for n, r in rows.items() if _changed(self.rows.get(n), r)}
        removed = [n for n in self.rows if n not in rows]
        status_changed = error != self.error
        self.rows, self.error = rows, error
        if changed or removed or status_changed:
            self.publish("rows", {"changed": list(changed.values()), "removed": removed,
                                  "error": error})
        if self.on_rows is not None:
            for event in self.on_rows(list(rows.values()), self.polled_at):
                self.publish("alert", event)
        self._first.set()

    # -- pushing ---------------------------------------------------------------------------
    def publish(self, kind: str, data: Any) -> None:
        message = sse(kind, data)
        for queue in list(self._listeners):
            if queue.qsize() >= QUEUE_LIMIT:
                self._listeners.discard(queue)
                continue
            queue.put_nowait(message)

    def snapshot(self) -> dict[str, Any]:
        return {"changed": list(self.rows.values()), "removed": [], "error": self.error,
                "full": True}

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[str]:
        """The events of one page: the whole table, then changes as they come."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            yield "retry: 2000\n\n" + sse("rows", self.snapshot())
            while queue in self._listeners:
                try:
                    yield await asyncio.wait_for(queue.get(), keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        return len(self._listeners)


def _changed(before: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    """Whether a row changed in a way a page must hear of. Uptime only ticking on is no change
    (pages tick uptimes themselves); a restart (uptime going back) is."""
    if before is None:
        return True
    up, was = now.get("uptime"), before.get("uptime")
    if up is not None and was is not None and up >= was:
        return {**before, "uptime": up} != now
    return before != now


def sse(kind: str, data: Any) -> str:
    """One server-sent event."""
    text = json.dumps(data, default=str, separators=(",", ":"))
    return f"event: {kind}\ndata: {text}\n\n"
