"""`python -m berth.deploy.local.guard LOCK_FILE COMMAND...`: run COMMAND (supervisord) holding
an exclusive lock on LOCK_FILE for the command's whole life.

The lock is taken here, without waiting, and the locked file stays open across `exec` and
supervisord's fork into the background, so the kernel releases it exactly when the last
supervisord process is gone (supervisord closes every other descriptor in the programs it
starts, so IOCs never hold it). A held lock therefore means a supervisor is alive, however slow
it is to answer; berth never starts a second one. Exit code 3: the lock is held.
"""

from __future__ import annotations

import fcntl
import os
import sys

HELD = 3


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m berth.deploy.local.guard LOCK_FILE COMMAND...", file=sys.stderr)
        return 2
    fd = os.open(argv[0], os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"a supervisor already holds {argv[0]}", file=sys.stderr)
        return HELD
    os.set_inheritable(fd, True)
    os.execvp(argv[1], argv[1:])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
