"""Progress lines: silent for short work, a line every couple of seconds for long work, and a
closing line with the total time."""

from __future__ import annotations

import io

from berth.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_short_work_says_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("checked", 3, out=out, clock=clock)
    for done in (1, 2, 3):
        clock.now += 0.5
        progress.update(done)
    progress.finish()
    assert out.getvalue() == ""


def test_long_work_is_never_silent_for_long() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("ready", 50, out=out, clock=clock)
    for done in range(0, 50, 2):
        clock.now += 0.5
        progress.update(done)
    clock.now += 0.5
    progress.update(50)
    progress.finish("1 not ready")
    lines = out.getvalue().splitlines()
    assert lines[0] == "berth: ready: 6/50 (2 s)"
    assert [line.split("(")[1] for line in lines[:-1]] == [f"{t} s)" for t in range(2, 13, 2)]
    assert lines[-1] == "berth: ready: 50/50 in 13.0 s, 1 not ready"
