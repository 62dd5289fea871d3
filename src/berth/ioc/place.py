"""`ibek runtime place-files`: runtime inputs of a config folder copied where the IOC looks.

Behaviour read from ibek 4.6.2 (runtime_cmds/commands.py, place_runtime_files), not its code:
StreamDevice protocols (`*.proto`, `*.protocol`) go to `<runtime>/protocol` (where
STREAM_PROTOCOL_PATH points) and extra databases (`*.db`, `*.template`) to `<runtime>/db`,
copied (not linked, keeping times and modes) so the runtime folder stands on its own. Only the
folder's own files, not its sub-folders; a folder is made only when something goes in it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from berth.errors import BerthError, Location, Problem

PLACEMENTS = ((("*.proto", "*.protocol"), "protocol"), (("*.db", "*.template"), "db"))


def place_files(config_dir: Path, runtime_dir: Path) -> list[Path]:
    """Copy the config folder's runtime inputs into `runtime_dir`; returns the copies."""
    placed: list[Path] = []
    for patterns, folder in PLACEMENTS:
        target = runtime_dir / folder
        for pattern in patterns:
            for src in sorted(config_dir.glob(pattern)):
                try:
                    target.mkdir(parents=True, exist_ok=True)
                    placed.append(Path(shutil.copy2(src, target / src.name)))
                except OSError as exc:
                    raise BerthError(Problem(f"cannot place {src.name} in {target}: "
                                             f"{exc.strerror or exc}", Location(src))) from None
    return placed
