"""The container engine's own command line (docker or podman), called with argv lists.

berth drives `docker run` / `inspect` / `logs` / `attach` / `exec` itself instead of a compose
tool, so it works whichever compose implementation (or none) is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from berth.errors import BerthError
from berth.tools import call, run_interactive

ENGINES = ("docker", "podman")


@dataclass(frozen=True)
class Engine:
    """One engine binary; `name` is docker or podman (their command lines match for our use)."""

    name: str
    binary: str

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *args]

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run an engine command and capture its output; a failure becomes a BerthError
        (with `check`), worded as every tool's (`berth.tools.call`)."""
        return call(self.argv(*args), input=input, timeout=timeout, check=check)

    def call(self, *args: str) -> int:
        """Run an engine command attached to this terminal (logs -f, attach, exec)."""
        return run_interactive(self.argv(*args))

    def build_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "docker" and not _has_buildx(self.binary):
            env["DOCKER_BUILDKIT"] = "0"  # the classic builder: no buildx plugin needed
        return env

    def reachable(self) -> tuple[bool, str]:
        """Whether the engine answers (`info`), and why not when it does not."""
        try:
            result = call(self.argv("info", "--format", "{{json .}}"), timeout=20)
        except BerthError as exc:
            return False, str(exc)
        if result.returncode != 0:
            return False, (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return True, ""

    def image_exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False).returncode == 0

    def image_id(self, image: str) -> str:
        result = self.run("image", "inspect", "--format", "{{.Id}}", image, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def image_size(self, image: str) -> int:
        result = self.run("image", "inspect", "--format", "{{.Size}}", image, check=False)
        return int(result.stdout.strip() or 0) if result.returncode == 0 else 0

    def image_label(self, image: str, label: str) -> str | None:
        result = self.run("image", "inspect", "--format", "{{json .Config.Labels}}", image,
                          check=False)
        if result.returncode != 0:
            return None
        try:
            labels = json.loads(result.stdout.strip() or "null") or {}
        except json.JSONDecodeError:
            return None
        value = labels.get(label)
        return str(value) if value is not None else None

    def inspect(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """`inspect` of the named containers in one call; missing names are simply absent."""
        if not names:
            return []
        result = self.run("container", "inspect", *names, check=False)
        found = _json_list(result.stdout)
        if result.returncode != 0 and not found and len(names) > 1:
            # podman prints nothing when any name is missing: ask one by one.
            found = []
            for name in names:
                found.extend(_json_list(self.run("container", "inspect", name,
                                                 check=False).stdout))
        return found

    def container_names(self, label: str) -> list[str]:
        """Names of the containers carrying a label (`key=value`), running or not."""
        result = self.run("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _json_list(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


@cache
def _has_buildx(binary: str) -> bool:
    try:
        return call([binary, "buildx", "version"]).returncode == 0
    except BerthError:
        return False


def detect(preferred: str | None = None) -> Engine:
    """The engine to use: BERTH_ENGINE (or `preferred`) when set, else docker, else podman."""
    choice = preferred or os.environ.get("BERTH_ENGINE") or ""
    if choice and choice not in ENGINES:
        raise BerthError(f"BERTH_ENGINE must be one of {', '.join(ENGINES)}, not '{choice}'")
    candidates = [choice] if choice else list(ENGINES)
    installed = [(n, shutil.which(n)) for n in candidates]
    installed_found = [(n, b) for n, b in installed if b]
    if not installed_found:
        raise BerthError(
            f"no container engine found ({' or '.join(candidates)} not on PATH): install one, "
            "e.g. with scripts/install-engine"
        )
    reasons = []
    for name, binary in installed_found:
        assert binary is not None
        engine = Engine(name, binary)
        if len(installed_found) == 1:
            return engine  # errors surface on first use, with the engine's own message
        ok, why = engine.reachable()
        if ok:
            return engine
        reasons.append(f"{name}: {why}")
    raise BerthError(f"no container engine answers ({'; '.join(reasons)})")
