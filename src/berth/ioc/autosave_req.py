"""`ibek runtime generate-autosave`: the instance's autosave request files, from ioc.subst.

Behaviour read from ibek 4.6.2 (runtime_cmds/autosave.py), not its code:

1. the request-template folder (`$EPICS_ROOT/autosave`) gets a link to every `*.req` found under
   the support modules (`$EPICS_ROOT/support/**`), keeping names already there, then to every
   `*.req` of the config folder, replacing names already there (instance overrides);
2. each `file "<template>" {...}` block of ioc.subst whose template stem has a
   `<stem>_settings.req` (or `<stem>_positions.req`) in that folder gives a block loading that
   request template with the same pattern rows, into `autosave_settings.subst`
   (`autosave_positions.subst`) of the runtime folder;
3. each of the two is expanded as msi does into `autosave_settings.req` / `autosave_positions.req`,
   searching the request-template folder. A kind with no block writes no file.

A block runs from its first `{` to the first `}` that is followed, one character later, by
another `}` (ibek's rule: the end of the last row, then the block's own brace).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write

KINDS = ("settings", "positions")  # ibek's order
_FILE = re.compile(r'file *"?([^" ]*)"')
_BLOCK_END = re.compile(r"\}[\s\S]\}")


def subst_blocks(text: str) -> list[tuple[str, str]]:
    """(template file, block text from its `{` to its closing `}`) for each block of `text`."""
    blocks: list[tuple[str, str]] = []
    pos = 0
    while (head := _FILE.search(text, pos)) is not None:
        start = text.find("{", head.end())
        end = _BLOCK_END.search(text, start + 1) if start >= 0 else None
        if end is None:
            break
        blocks.append((head[1], text[start:end.end()]))
        pos = end.end()
    return blocks


def link_request_templates(req_dir: Path, support_dir: Path, config_dir: Path) -> None:
    """Step 1: symbolic links in `req_dir` to the support modules' and the config folder's
    request templates (support ones never replace a name; config ones always do)."""
    req_dir.mkdir(parents=True, exist_ok=True)
    for req in sorted(support_dir.glob("**/*.req")) if support_dir.is_dir() else []:
        link = req_dir / req.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(req)
    for req in sorted(config_dir.glob("*.req")):
        link = req_dir / req.name
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(req)


def request_substitutions(subst_text: str, req_dir: Path) -> dict[str, str]:
    """Step 2: kind -> text of `autosave_<kind>.subst`, for the kinds that have a block."""
    result: dict[str, str] = {}
    blocks = subst_blocks(subst_text)
    for kind in KINDS:
        parts = []
        for template, pattern in blocks:
            req = f"{Path(template).stem}_{kind}.req"
            if (req_dir / req).exists():
                parts.append(f'file "{req}" {pattern}\n\n')
        if parts:
            result[kind] = "".join(parts)
    return result


def generate_autosave(subst: Path, runtime_dir: Path, req_dir: Path, support_dir: Path,
                      config_dir: Path) -> list[Path]:
    """Steps 1-3 for `subst` (normally `<runtime_dir>/ioc.subst`); returns the files written.
    Stale `autosave_<kind>.*` files of an earlier run are removed (ibek regenerates into an
    emptied runtime folder)."""
    try:
        link_request_templates(req_dir, support_dir, config_dir)
    except OSError as exc:
        raise BerthError(Problem(f"cannot link autosave request templates: "
                                 f"{exc.strerror or exc}", Location(req_dir))) from None
    texts = request_substitutions(subst.read_text(errors="replace"), req_dir)
    written: list[Path] = []
    for kind in KINDS:
        subst_out = runtime_dir / f"autosave_{kind}.subst"
        req_out = runtime_dir / f"autosave_{kind}.req"
        if kind not in texts:
            for stale in (subst_out, req_out):
                stale.unlink(missing_ok=True)
            continue
        from berth.epics.substitutions import expand_substitutions

        atomic_write(subst_out, texts[kind])
        atomic_write(req_out, expand_substitutions(subst_out, [req_dir], {}, warnings=[]))
        written += [subst_out, req_out]
    return written


def epics_req_dir(env: dict[str, str] | None = None) -> Path:
    """ibek's request-template folder: `$EPICS_ROOT/autosave`."""
    from berth import paths

    return paths.epics_root(os.environ if env is None else env) / "autosave"
