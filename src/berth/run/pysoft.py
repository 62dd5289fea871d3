"""Python soft IOCs (pythonSoftIOC): a config folder holding `ioc.py`.

The rule: `ioc.py` (unless a start.sh overrides it) is run by the Python of a virtual environment
holding `softioc` and what `requirements.txt` next to it lists. The environment lives in berth's
user cache, one per requirements (a hash of the file, the base requirement and the Python
version names it), so instances with the same requirements share it; it is built with
`python -m venv` + pip into a temporary folder renamed into place once complete (a failed build
leaves nothing in use), and reused, without pip, while the requirements do not change.

In berth's soft-IOC image (`BERTH_NO_PIP` set) softioc is installed beside berth and there is
no pip: the image's own Python runs the script, and requirements.txt is checked against what the
image holds (a requirement it lacks is a located error, not a crash loop of failing pip runs).

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
    from collections.abc import Callable, Mapping

SCRIPT, REQUIREMENTS = "ioc.py", "requirements.txt"
BASE_REQUIREMENT = "softioc"  # pythonSoftIOC; it brings epicscorelibs and pvxslibs
STAMP = "berth-requirements.sha256"  # in a complete environment: what it was built from
BOOT = paths.ASSETS / "python" / "boot.py"  # (ASSETS: assets/softioc)
PIP_TAIL = 15  # lines of pip's output a failure shows
NO_PIP = "BERTH_NO_PIP"  # set in berth's soft-IOC image: softioc is installed, pip is not


def in_image(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(NO_PIP, "") not in ("", "0")


def interpreter(config: Path, env: Mapping[str, str] | None = None) -> Path:
    """The Python that runs `config`'s ioc.py: the image's own, else its environment's."""
    return Path(sys.executable) if in_image(env) else python(venv_dir(config))


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

    if in_image():
        check_installed(config)
        return Path(sys.prefix)
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


def check_installed(config: Path) -> None:
    """In an image without pip: every requirement (softioc and requirements.txt's lines) must
    be installed at a version it accepts; else one located error naming each that is not."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    from berth.errors import BerthError, Location, Problem

    file = config / REQUIREMENTS
    wanted: list[tuple[str, int | None]] = [(BASE_REQUIREMENT, None)]
    if file.is_file():
        from berth.fsutil import read_text

        for line_no, line in enumerate(read_text(file, errors="replace").splitlines(), 1):
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                wanted.append((line, line_no))
    problems = []
    for text, number in wanted:
        where = Location(file, number) if number else Location(config / SCRIPT)
        if text.startswith("-"):
            problems.append(Problem(f"pip option '{text}' cannot apply: this image has no pip",
                                    where))
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            problems.append(Problem(f"not a requirement: {exc}", where))
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            found = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            found = None
        if found is None or not requirement.specifier.contains(found, prereleases=True):
            have = f"it has {requirement.name} {found}" if found else "it does not have it"
            problems.append(Problem(
                f"requirement '{text}' is not installed in this image ({have}), and the image "
                "has no pip: use an image that holds it, or run the instance where berth can "
                "build its Python environment", where))
    if problems:
        raise BerthError(problems)
