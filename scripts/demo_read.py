"""Read the example beamline's PVs over pvAccess, waiting until each holds a processed value.

Every read asks for the raw structure (nt=False): p4p shares one NT unwrapper per Context, so
after a QSRV group has been read, later NTScalars could otherwise come back unwrapped. A value
counts once its record has processed: an alarm other than INVALID/UDF (severity 3, status 17).
Usage: demo_read.py [--timeout S] PV...   (exit 1, naming the PV, when one never gets a value)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

UDF_SEVERITY = 3  # INVALID, what a record that never processed reports


def _initialised(raw: dict[str, Any]) -> bool:
    alarm = raw.get("alarm")
    return not (isinstance(alarm, dict) and alarm.get("severity", 0) >= UDF_SEVERITY)


def shown(raw: dict[str, Any]) -> Any:
    """A scalar's value, or a group's members by name."""
    if "value" in raw:
        return raw["value"]
    return {name: member.get("value") for name, member in raw.items() if isinstance(member, dict)
            and "value" in member}


def ready(raw: dict[str, Any]) -> bool:
    if "value" in raw:
        return _initialised(raw)
    members = [m for m in raw.values() if isinstance(m, dict) and "value" in m]
    return bool(members) and all(_initialised(m) for m in members)


def read(names: list[str], timeout: float) -> dict[str, Any]:
    from p4p.client.thread import Context

    deadline = time.monotonic() + timeout
    values: dict[str, Any] = {}
    with Context("pva", nt=False) as ctx:
        for name in names:
            last: object = "no answer"
            while True:
                try:
                    raw = ctx.get(name, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                    data = raw.todict()
                    if ready(data):
                        values[name] = shown(data)
                        break
                    last = "not initialised (UDF)"
                except TimeoutError:
                    last = "no answer"
                except Exception as exc:  # e.g. p4p's RemoteError
                    last = exc
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: {last}")
                time.sleep(0.2)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("pvs", nargs="+")
    args = parser.parse_args(argv)
    try:
        values = read(args.pvs, args.timeout)
    except TimeoutError as exc:
        print(f"demo_read: no value within {args.timeout:g} s: {exc}", file=sys.stderr)
        return 1
    for name, value in values.items():
        print(f"  {name:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
