"""The local backend's settings of an instance, from its Helm values (shared
`services/values.yaml` merged with the instance's own), under a top-level `berth:` key that
the charts ignore:

    berth:
      restart_backoff:      # after a failed start (it never reached iocInit), or the second
        initial: 10         #   of several short runs, wait `initial` seconds, doubling after
        max: 300            #   each further failure up to `max` (Kubernetes' CrashLoopBackOff);
        reset_after: 600    #   a run that reached iocInit and lasted this long ends the streak
      log:
        max_bytes: 20MB     # output.log is rotated at this size (bytes, or with KB/MB/GB)
        backups: 1          # rotated files kept

A compose-layout repository sets them per service under `x-berth:` (compose ignores `x-` keys).
They are read when a release is deployed and written to the instance's launch.json.
"""

from __future__ import annotations

import re
from typing import Any

from berth.deploy.services import Service
from berth.errors import BerthError, Location, Problem

DEFAULTS: dict[str, dict[str, Any]] = {
    "restart_backoff": {"initial": 10.0, "max": 300.0, "reset_after": 600.0},
    "log": {"max_bytes": 20 * 1024 * 1024, "backups": 1},
}
_SIZE = re.compile(r"^\s*(\d+)\s*(KB|MB|GB|B)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}


def local_settings(service: Service) -> dict[str, dict[str, Any]]:
    """{"restart_backoff": {"initial", "max", "reset_after"}, "log": {"max_bytes", "backups"}},
    defaults filled in; a located error for a value of the wrong kind. Compose-layout services
    carry them under the service's `x-berth:` key (compose ignores `x-` keys)."""
    key = "berth" if service.layout == "helm" else "x-berth"
    raw = service.values.get(key)
    where = Location(service.values_file)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _wrong(key, "a mapping (restart_backoff, log)", where, service.name)
    result = {section: dict(value) for section, value in DEFAULTS.items()}
    for section, known in DEFAULTS.items():
        given = raw.get(section) or {}
        if not isinstance(given, dict):
            raise _wrong(f"{key}.{section}", f"a mapping ({', '.join(known)})", where,
                         service.name)
        for name, value in given.items():
            if name not in known:
                raise _wrong(f"{key}.{section}.{name}", f"one of {', '.join(known)}", where,
                             service.name)
            result[section][name] = _value(f"{key}.{section}.{name}", section, name, value,
                                           where, service.name)
    backoff = result["restart_backoff"]
    if backoff["max"] < backoff["initial"]:
        raise _wrong(f"{key}.restart_backoff.max", "at least `initial`", where, service.name)
    return result


def _value(name: str, section: str, key: str, value: Any, where: Location, entity: str
           ) -> float | int:
    if section == "restart_backoff":
        if isinstance(value, bool) or not isinstance(value, int | float) or not \
                0 < value <= 86400:
            raise _wrong(name, "a number of seconds above 0 (at most a day)", where, entity)
        return float(value)
    if key == "backups":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise _wrong(name, "a whole number from 0 to 100", where, entity)
        return value
    match = _SIZE.match(str(value)) if not isinstance(value, bool) else None
    size = int(match.group(1)) * _UNITS[(match.group(2) or "").lower() or None] if match else 0
    if size < 1024:
        raise _wrong(name, "a size of at least 1KB (bytes, or e.g. 20MB)", where, entity)
    return size


def _wrong(field: str, expected: str, where: Location, entity: str) -> BerthError:
    return BerthError(Problem(f"expected {expected}", where, entity=entity, field=field))
