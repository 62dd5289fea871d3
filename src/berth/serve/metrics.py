"""/metrics in Prometheus' text format: per instance up, ready, restarts and uptime, with the
deployed version as a label."""

from __future__ import annotations

from typing import Any

FAMILIES = (
    ("berth_instance_up", "1 when the instance's process runs", "gauge"),
    ("berth_instance_ready", "1 when the instance's IOC answers", "gauge"),
    ("berth_instance_restarts", "restarts counted since berth last started it", "gauge"),
    ("berth_instance_uptime_seconds", "seconds since the current process started", "gauge"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(rows: list[dict[str, Any]], backend: str) -> str:
    values: dict[str, list[tuple[dict[str, Any], float]]] = {f[0]: [] for f in FAMILIES}
    for row in rows:
        up = row["state"] in ("running", "starting") and row.get("pid") is not None or \
            row["state"] == "running"
        values["berth_instance_up"].append((row, 1.0 if up else 0.0))
        values["berth_instance_ready"].append((row, 1.0 if row.get("ready") else 0.0))
        values["berth_instance_restarts"].append((row, float(row.get("restarts") or 0)))
        values["berth_instance_uptime_seconds"].append((row, float(row.get("uptime") or 0.0)))
    lines = []
    for name, help_text, kind in FAMILIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for row, value in values[name]:
            version = _label(row.get("version") or "")
            labels = (f'instance="{_label(row["name"])}",version="{version}"'
                      f',state="{_label(row["state"])}",backend="{_label(backend)}"'
                      f',repo="{_label(row.get("repo_label") or "")}"')
            lines.append(f"{name}{{{labels}}} {value:g}")
    return "\n".join(lines) + "\n"
