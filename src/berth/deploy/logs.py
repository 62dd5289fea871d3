"""What `berth logs` shows: the last N lines, the lines since a time, colour codes stripped
when the output is not a terminal — the same on every backend.

Local logs carry the runner's time stamps (`[2026-12-04T21:43:33.749Z] ` at each line start, as
procServ's `--logstamp`); container logs get `--tail`/`--since` passed to the engine or kubectl.
"""

from __future__ import annotations

import calendar
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from berth.errors import BerthError, Problem
from berth.tools import find_tool, run_interactive

ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?Z\] ")
MARKER_STAMP = re.compile(r" started (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z ")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


@dataclass(frozen=True)
class LogQuery:
    """Which part of an instance's output to show."""

    follow: bool = False
    previous: bool = False
    tail: int | None = None  # the last N lines only
    since: float | None = None  # seconds: only lines newer than this

    def engine_flags(self) -> list[str]:
        """The same selection for `docker logs` / `kubectl logs`."""
        flags = [] if self.tail is None else [f"--tail={self.tail}"]
        return flags + ([] if self.since is None else [f"--since={int(self.since)}s"])


def parse_duration(text: str) -> float:
    """`90s`, `10m`, `2h`, `1d`, `1h30m` or plain seconds → seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or DURATION.sub("", text):
        raise BerthError(Problem(f"--since {text!r}: expected a duration such as 90s, 10m, 2h, 1d",
                                 field="since"))
    return sum(float(n) * UNITS[unit] for n, unit in DURATION.findall(text))


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def _stamp_of(line: str) -> float | None:
    match = STAMP.match(line) or MARKER_STAMP.search(line)
    if match is None:
        return None
    return float(calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")))


def select(text: str, query: LogQuery, now: float | None = None) -> str:
    """The lines of `text` that `query` asks for. A line without a stamp (a continuation, or
    output of a process that does not stamp) counts as written when the line before it was."""
    if query.tail is None and query.since is None:
        return text
    lines = text.splitlines(keepends=True)
    if query.since is not None:
        cutoff = (time.time() if now is None else now) - query.since
        kept, when = [], None
        for line in lines:
            when = _stamp_of(line) or when
            # stamps have whole seconds: a line of the cutoff's second is kept
            if when is not None and when >= int(cutoff):
                kept.append(line)
        lines = kept
    if query.tail is not None:
        lines = lines[-query.tail:] if query.tail > 0 else []
    return "".join(lines)


def write(text: str) -> None:
    """Print log text for a person (colours kept on a terminal) or a pipe (colours stripped)."""
    sys.stdout.write(text if sys.stdout.isatty() else strip_ansi(text))
    sys.stdout.flush()


def relay(argv: Sequence[str]) -> int:
    """Run a log command (`docker logs`, `kubectl logs`); on a terminal it writes straight
    through, else its output is relayed line by line with colour codes stripped."""
    sys.stdout.flush()
    if sys.stdout.isatty():
        return run_interactive(argv)
    command = [find_tool(argv[0]), *argv[1:]]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                write(raw.decode(errors="replace"))
        except KeyboardInterrupt:
            proc.terminate()
        return proc.wait()
