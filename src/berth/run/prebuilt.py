"""Outputs built ahead of a start: generate once, at deploy time, and start from the result.

Right after a deployment's checks the local backend builds what `berth run` would write into the
runtime folder (st.cmd, ioc.subst, ioc.db, screens, autosave requests, placed files) into a
folder kept with the deployment (`build`); the IOC then starts by copying it into its runtime
folder (`berth run --prebuilt DIR`, `use`) instead of generating again. A stamp records for
which start the files were made: the config and runtime folders, the IOC's name and folder, its
environment, berth's version and the support definitions read. Any other start generates as
before, saying why on one log line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from berth import __version__
from berth.fsutil import umask
from berth.ioc.autosave_req import KINDS as AUTOSAVE_KINDS
from berth.run.launch import Launch, RunOptions, build_outputs, builds_outputs, plan, support_defs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

STAMP = "prebuilt.json"
# what generation writes only sometimes: a copy must not leave an earlier run's in place
SOMETIMES = ("wait_list.yaml", *(f"autosave_{kind}.{suffix}" for kind in AUTOSAVE_KINDS
                                 for suffix in ("subst", "req")))


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def stamp(launch: Launch, env_keys: Collection[str] = ()) -> dict[str, object]:
    """What the outputs of `launch` depend on, besides the (immutable) config folder."""
    options = launch.options
    assert options is not None
    env = launch.generation_env()
    keys = sorted({*env_keys, *launch.env})
    code = Path(__file__).parent.parent
    return {
        "berth": [__version__, _mtime(code / "__init__.py"), _mtime(code / "ioc/generate.py")],
        "config": str(options.config_dir), "runtime": str(options.runtime_dir),
        "ioc_name": options.ioc_name, "ioc_dir": str(launch.ioc_dir), "mode": launch.mode,
        "env": {k: env.get(k) for k in keys},
        "defs": {str(p): _mtime(p) for p in support_defs(launch, options)},
    }


def build(options: RunOptions, out: Path, env: Mapping[str, str], keys: Collection[str] = ()
          ) -> bool:
    """Build the outputs a start of `options` in environment `env` would generate into `out`
    (replaced whole); False when such a start generates nothing. The stamp records berth's
    own variables and `keys` of `env` (the instance's environment, not its supervisor's).
    Raises BerthError on the mistakes the start would report."""
    launch = plan(options, env)
    if not builds_outputs(launch):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build_outputs(launch, staging)
        made = stamp(launch, keys)
        (staging / STAMP).write_text(json.dumps(made, indent=1) + "\n")
        staging.chmod(0o755 & ~umask())
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def use(launch: Launch, folder: Path) -> bool:
    """Copy the outputs built in `folder` into the runtime folder of `launch` when they were
    made for this very start; otherwise say why on stderr (the log) and return False."""
    options = launch.options
    assert options is not None
    try:
        made = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        _note(f"no outputs built ahead in {folder}")
        return False
    now = stamp(launch, list(made.get("env") or ()))
    differs = [key for key in now if made.get(key) != now[key]]
    if differs:
        _note(f"the outputs built ahead in {folder} were made for another start "
              f"({', '.join(differs)} differ)")
        return False
    runtime = options.runtime_dir
    for name in SOMETIMES:
        if not (folder / name).exists():
            (runtime / name).unlink(missing_ok=True)
    _copy_into(folder, runtime, skip={STAMP})
    return True


def _copy_into(src: Path, dst: Path, skip: Collection[str] = ()) -> None:
    """Copy the tree `src` over `dst`, links as links; nothing is written through a link that
    was in `dst` (it is replaced)."""
    for entry in os.scandir(src):
        if entry.name in skip:
            continue
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(exist_ok=True)
            _copy_into(Path(entry.path), target)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            shutil.copy2(entry.path, target)


def _note(why: str) -> None:
    print(f"berth: {why}: generating", file=sys.stderr, flush=True)
