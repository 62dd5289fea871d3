"""The mark berth's IOC shell writes before each prompt: `\\0berth-idle N\\0`, N = lines read.

It travels in the shell's own output (so it comes after everything a command printed, which a
separate pipe could overtake); the runner takes it out before anyone sees the output.
"""

from __future__ import annotations

import re

IDLE_MARK = b"\0berth-idle %d\0"
_MARK = re.compile(rb"\0berth-idle (\d+)\0")
_LONGEST = len(IDLE_MARK % 10**12)


def take_marks(data: bytes) -> tuple[bytes, list[int], bytes]:
    """(output without marks, the counts of the marks found, a tail to prepend to the next
    chunk because it may be the start of a mark cut in two)."""
    counts = [int(m.group(1)) for m in _MARK.finditer(data)]
    out = _MARK.sub(b"", data)
    start = out.rfind(b"\0", max(0, len(out) - _LONGEST))
    if start >= 0 and (IDLE_MARK[:12].startswith(out[start:start + 12])):
        return out[:start], counts, out[start:]
    return out, counts, b""
