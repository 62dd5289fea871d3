"""Python soft IOCs (pythonSoftIOC): a config folder holding `ioc.py`.

The rule: `ioc.py` (unless a start.sh overrides it) is run by the Python of a virtual environment
holding `softioc` and what `requirements.txt` next to it lists. The environment lives in berth's
user cache, one per requirements (a hash of the file, the base requirement and the Python
version names it), so instances with the same requirements share it; it is built with
`python -m venv` + pip into a temporary folder renamed into place once complete (a failed build
leaves nothing in use), and reused, without pip, while the requirements do not change.

The script runs through `boot.py` (assets/softioc/python), which copies the databases it loads
into the runtime folder's ioc.db, so the runner probes one of its PVs after iocInit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from berth import paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SCRIPT, REQUIREMENTS = "ioc.py", "requirements.txt"
BASE_REQUIREMENT = "softioc"  # pythonSoftIOC; it brings epicscorelibs and pvxslibs
STAMP = "berth-requirements.sha256"  # in a complete environment: what it was built from
BOOT = paths.ASSETS / "python" / "boot.py"  # (ASSETS: assets/softioc)
PIP_TAIL = 15  # lines of pip's output a failure shows


def _error(message: str, where: Path) -> Exception:
    from berth.errors import BerthError, Location, Problem

    return BerthError(Problem(message, Location(where)))


def requirements_hash(config: Path) -> str:
    """What the environment is built from: the requirements file, softioc, this Python."""
    digest = hashlib.sha256(f"{BASE_REQUIREMENT}\n{sys.version}\n".encode())
    requirements = config / REQUIREMENTS
    if requirements.is_file():
        from berth.fsutil import read_bytes

        digest.update(read_bytes(requirements))
    return digest.hexdigest()


def venv_dir(config: Path) -> Path:
    return paths.user_cache_dir() / "pysoft" / requirements_hash(config)[:16]


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_built(venv: Path, wanted: str) -> bool:
    try:
        return (venv / STAMP).read_text().strip() == wanted and python(venv).exists()
    except OSError:
        return False


def _pip(venv: Path, config: Path, log: Callable[[str], None]) -> tuple[int, list[str]]:
    """pip install into `venv`, its output passed on as progress lines; (code, last lines)."""
    argv = [str(python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
            "--no-input", "--progress-bar", "off", BASE_REQUIREMENT]
    if (config / REQUIREMENTS).is_file():
        argv += ["-r", str((config / REQUIREMENTS).resolve())]
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", cwd=config) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-PIP_TAIL:]
            if line.startswith(("Collecting", "Installing", "Successfully", "ERROR")):
                log(f"berth: pip: {line}")
    return proc.returncode, tail


def ensure_venv(config: Path, log: Callable[[str], None]) -> Path:
    """The environment for `config`'s requirements: reused when built, else built now (one
    builder at a time per environment: a lock file beside it)."""
    import fcntl

    wanted = requirements_hash(config)
    venv = venv_dir(config)
    if is_built(venv, wanted):
        log(f"berth: Python environment {venv} is up to date: reused")
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another instance may be building the same one
        if is_built(venv, wanted):
            log(f"berth: Python environment {venv} was built meanwhile: reused")
            return venv
        _build(venv, config, wanted, log)
    return venv


def _build(venv: Path, config: Path, wanted: str, log: Callable[[str], None]) -> None:
    where = config / REQUIREMENTS if (config / REQUIREMENTS).is_file() else config / SCRIPT
    tmp = venv.with_name(f".{venv.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"berth: building the Python environment for {where} in {venv} (python -m venv, pip)")
    try:
        made = subprocess.run([sys.executable, "-m", "venv", str(tmp)], capture_output=True,
                              text=True, errors="replace")
        if made.returncode != 0:
            raise _error(f"python -m venv failed: {made.stderr.strip()[-500:]}", where)
        code, tail = _pip(tmp, config, log)
        if code != 0:
            shown = "\n  ".join(tail)
            raise _error(f"pip could not install the Python soft IOC's requirements "
                         f"(exit {code}); its last lines:\n  {shown}", where)
        (tmp / STAMP).write_text(wanted + "\n")
        shutil.rmtree(venv, ignore_errors=True)  # an incomplete one (no stamp) from before
        os.rename(tmp, venv)  # (its scripts' #! lines name tmp; berth runs only bin/python)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"berth: Python environment ready: {venv}")
