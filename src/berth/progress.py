"""Progress lines for long work (stderr, for people; stdout stays for results and --json).

`Progress(what, total)` says nothing for work that ends within `quiet` seconds; after that it
prints `berth: WHAT: DONE/TOTAL (N s)` at most every `every` seconds, and a last line when
the work ends, so nothing runs silent for more than a couple of seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, what: str, total: int, quiet: float = 2.0, every: float = 2.0,
                 out: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.quiet, self.every = what, total, quiet, every
        self.out = out
        self.clock = clock
        self.started = clock()
        self.shown_at: float | None = None
        self.done = 0

    def _print(self, text: str) -> None:
        print(f"berth: {self.what}: {text}", file=self.out or sys.stderr, flush=True)

    def update(self, done: int) -> None:
        """`done` of `total` are finished; prints when it is time to."""
        self.done = done
        now = self.clock()
        due = self.started + self.quiet if self.shown_at is None else self.shown_at + self.every
        if now >= due:
            self.shown_at = now
            self._print(f"{done}/{self.total} ({now - self.started:.0f} s)")

    def finish(self, note: str = "") -> None:
        """The closing line, when any line was shown (short work stays silent)."""
        if self.shown_at is not None:
            self._print(f"{self.done}/{self.total} in {self.clock() - self.started:.1f} s"
                        + (f", {note}" if note else ""))
