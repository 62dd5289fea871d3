"""Running external tools (helm, kubectl, argocd, git, ping, …) as argv lists: the one runner.

Every call goes through `run` so that a missing tool or a failing command becomes a BerthError
naming the command and what it said, and JSON answers are parsed here rather than scraped.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berth.errors import BerthError

INSTALL_HINTS = {
    "helm": "install it (scripts/install-helm puts one in .venv/bin) or put it on PATH",
    "kubectl": "install the Kubernetes client and put it on PATH",
    "argocd": "install the ArgoCD CLI and put it on PATH",
    "git": "install git",
}


def find_tool(name: str) -> str:
    """The executable for `name`: PATH first, then next to the running Python (a venv's bin)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    raise BerthError(f"'{name}' was not found: {INSTALL_HINTS.get(name, 'put it on PATH')}")


def _start(argv: Sequence[str], *, cwd: Path | None, input: str | bytes | None,
           timeout: float, env: Mapping[str, str] | None,
           text: bool) -> subprocess.CompletedProcess[Any]:
    tool = find_tool(argv[0])
    try:
        return subprocess.run(
            [tool, *argv[1:]], cwd=cwd, input=input, capture_output=True, timeout=timeout,
            env=None if env is None else dict(env), text=text,
        )
    except subprocess.TimeoutExpired:
        raise BerthError(f"'{' '.join(argv)}' did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise BerthError(f"cannot run '{argv[0]}': {exc.strerror}") from None


def _check(argv: Sequence[str], result: subprocess.CompletedProcess[Any]) -> None:
    if result.returncode == 0:
        return
    out, err = result.stdout, result.stderr
    if isinstance(out, bytes):
        out, err = out.decode(errors="replace"), err.decode(errors="replace")
    said = (err.strip() or out.strip() or "no message").splitlines()
    raise BerthError(
        f"'{' '.join(argv)}' failed (exit {result.returncode}): {' / '.join(said[-5:])}"
    )


def call(argv: Sequence[str], *, cwd: Path | None = None, input: str | None = None,
         timeout: float = 600, env: Mapping[str, str] | None = None,
         check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a tool and capture its output as text. Whatever its exit code (unless `check`):
    only a missing tool, a timeout or an OS error is a BerthError."""
    result = _start(argv, cwd=cwd, input=input, timeout=timeout, env=env, text=True)
    if check:
        _check(argv, result)
    return result


def run(argv: Sequence[str], *, cwd: Path | None = None, input: str | None = None,
        timeout: float = 600, env: Mapping[str, str] | None = None) -> str:
    """Run a tool and return its standard output; any failure is a BerthError."""
    return call(argv, cwd=cwd, input=input, timeout=timeout, env=env, check=True).stdout


def run_bytes(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 600) -> bytes:
    """As `run`, for tools whose output is binary (`git archive`)."""
    result = _start(argv, cwd=cwd, input=None, timeout=timeout, env=None, text=False)
    _check(argv, result)
    out: bytes = result.stdout
    return out


def run_json(argv: Sequence[str], **kwargs: Any) -> Any:
    """Run a tool asked for JSON output and parse its answer."""
    out = run(argv, **kwargs)
    if not out.strip():
        return None
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise BerthError(f"'{' '.join(argv)}' did not answer JSON: {exc}") from None


def run_interactive(argv: Sequence[str]) -> int:
    """Run a tool attached to this terminal (logs -f, attach, exec); return its exit code."""
    tool = find_tool(argv[0])
    try:
        return subprocess.call([tool, *argv[1:]])
    except KeyboardInterrupt:
        return 130


def parse_time(text: str | None) -> datetime | None:
    """Parse the timestamps helm, kubectl and argocd print, as aware UTC datetimes.

    kubectl/argocd: RFC 3339 (`2024-05-01T10:00:00Z`); `helm history -o json`: RFC 3339 with
    nanoseconds and an offset; `helm list -o json`: Go's default `2024-05-01 10:00:00.123456789
    +0100 BST`.
    """
    if not text:
        return None
    text = text.strip()
    parts = text.split(" ")
    if len(parts) >= 3 and parts[2][:1] in "+-":  # Go's time.String()
        text = f"{parts[0]}T{parts[1]}{parts[2][:3]}:{parts[2][3:]}"
    text = text.replace("Z", "+00:00")
    date, sep, rest = text.partition("T")
    if "." in rest:  # Python takes at most 6 fractional digits
        whole, _, tail = rest.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, tail))
        zone = tail[len(digits):]
        rest = f"{whole}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(f"{date}{sep}{rest}")
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""
