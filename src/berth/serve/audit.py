"""The audit log of actions: one JSON line per action (who, what, when, result) in the state
folder, `serve-audit.log`, private to the user."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "serve-audit.log"


class AuditLog:
    def __init__(self, folder: Path):
        self.path = folder / FILE_NAME

    def record(self, who: str, action: str, instance: str, result: str, ok: bool,
               client: str = "", version: str | None = None) -> dict[str, Any]:
        entry = {"when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "who": who,
                 "client": client, "action": action, "instance": instance,
                 "version": version, "ok": ok, "result": result}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def entries(self, instance: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        found = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if instance is None or entry.get("instance") == instance:
                found.append(entry)
        return found[-limit:][::-1]
