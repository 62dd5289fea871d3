"""`--wait`: return once every named instance answers, or fail with why and its log tail."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from berth.deploy import Backend, InstanceStatus
from berth.deploy.logs import LogQuery
from berth.errors import BerthError
from berth.progress import Progress

DEFAULT_TIMEOUT = 60.0
GIVEN_UP = ("crashed", "fatal", "crash-looping", "not deployed", "not runnable here")
TAIL_LINES = 20


def _poll_interval(backend: Backend) -> float:
    return 0.1 if backend.name == "local" else 1.0  # kubectl/docker calls cost more


def wait_ready(backend: Backend, names: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
               clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Wait until every instance of `names` is ready; returns those that are not (after
    printing, for each, its state and the end of its log). An instance that has crashed or
    gave up is not waited for."""
    pending = list(dict.fromkeys(names))
    deadline = clock() + timeout
    rows: dict[str, InstanceStatus] = {}
    failed: list[str] = []
    progress = Progress("ready", len(pending), clock=clock)
    while pending:
        rows = {r.name: r for r in backend.ps()}
        for name in list(pending):
            row = rows.get(name)
            if row is not None and row.ready:
                pending.remove(name)
            elif row is not None and row.state in GIVEN_UP:
                pending.remove(name)
                failed.append(name)
        progress.update(progress.total - len(pending) - len(failed))
        if not pending or clock() >= deadline:
            break
        time.sleep(_poll_interval(backend))
    failed += pending
    progress.finish(f"{len(failed)} not ready" if failed else "")
    for name in failed:
        row = rows.get(name)
        how = f"{row.state}{f', {row.health}' if row.health else ''}" if row else "not found"
        why = f" ({row.reason})" if row is not None and row.reason else ""
        print(f"berth: {name} is not ready after {timeout:g} s: {how}{why}; the end of its log:",
              file=sys.stderr)
        sys.stdout.flush()
        try:
            backend.logs(name, LogQuery(tail=TAIL_LINES))
        except BerthError as exc:  # the log is extra; the verdict is what counts
            print(f"berth: (its log cannot be read: {exc})", file=sys.stderr)
    return failed
