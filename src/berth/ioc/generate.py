"""`berth generate`: an IOC instance (+ support definitions) -> st.cmd, ioc.subst, wait_list.yaml.

The steps follow ibek 4.6 so that outputs (and the order in which `_global` counters advance)
are the same:

1. every top-level entity of every instance file is checked (all problems reported together),
2. top-level entities are rendered in file order: pre_defines, parameters, post_defines; ids are
   registered as they appear, so an object parameter can refer only to an entity above it,
3. sub-entities and `ibek.repeat` are expanded, in order, with the parents' fields in context
   (steps 1-3: `berth.ioc.expand`),
4. the outputs are rendered from the resulting entity list (see `berth.ioc.render`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from berth import paths
from berth.errors import BerthError, Location, Problem
from berth.fsutil import leaves
from berth.ioc.entity import Entity, TemplateProblem
from berth.ioc.expand import EntityExpander, TopEntity
from berth.ioc.render import Generated, GenerateOptions, PviEntity, epics_root, outputs
from berth.ioc.support import load_support
from berth.ioc.templates import Renderer
from berth.yamlio import YDict, describe, location_of

__all__ = ["SUPPORT_GLOB", "Generated", "GenerateOptions", "PviEntity", "default_defs",
           "epics_root", "expand_defs", "find_instance_files", "generate", "write_outputs"]

SUPPORT_GLOB = paths.SUPPORT_GLOB
_TOP_KEYS = ("ioc_name", "description", "entities", "shared")

# --------------------------------------------------------------------------------------------
# finding inputs

# (the one instance-file rule and the default support definitions live in berth.paths)
find_instance_files = paths.find_instance_files
default_defs = paths.default_defs


def expand_defs(defs: Iterable[Path]) -> list[Path]:
    """Support files from files and folders (a folder gives its *.ibek.support.yaml)."""
    result: list[Path] = []
    for d in defs:
        d = Path(d)
        if d.is_dir():
            found = sorted(d.glob(SUPPORT_GLOB))
            if not found:
                raise BerthError(Problem(f"no {SUPPORT_GLOB} files in this folder", Location(d)))
            result.extend(found)
        elif d.is_file():
            result.append(d)
        else:
            raise BerthError(Problem("support definitions not found: no such file or folder",
                                     Location(d)))
    return result


def _ioc_name(renderer: Renderer, doc: YDict) -> str:
    """The instance's ioc_name, rendered."""
    raw = doc.get("ioc_name")
    if not isinstance(raw, str):
        raise BerthError(Problem(f"'ioc_name' must be a string, got {describe(raw)}",
                                 location_of(doc, "ioc_name"), field="ioc_name"))
    try:
        return str(renderer.render({}, raw, "str"))
    except TemplateProblem as exc:
        raise BerthError(Problem(exc.describe(),
                                 location_of(doc, "ioc_name"), field="ioc_name")) from None


def _load_instance(path: Path, main: bool, problems: list[Problem]) -> YDict | None:
    from berth.ioc.support_cache import load_yaml_cached

    try:
        doc = load_yaml_cached(path)
    except BerthError as err:
        problems.extend(err.problems)
        return None
    if not isinstance(doc, YDict):
        problems.append(Problem(f"an IOC instance file must be a mapping with 'ioc_name' and "
                                f"'entities', got {describe(doc)}", Location(path, 1, 1)))
        return None
    for key in doc:
        if key not in _TOP_KEYS:
            problems.append(Problem(f"unknown key '{key}' in IOC instance file; expected one "
                                    f"of: {', '.join(_TOP_KEYS)}", doc.key_loc(key),
                                    field=str(key)))
    required = ("ioc_name", "entities") if main else ("entities",)
    for key in required:
        if key not in doc:
            problems.append(Problem(f"IOC instance file is missing required key '{key}'",
                                    doc.loc(), field=key))
    if "description" in doc and not isinstance(doc["description"], str | None):
        problems.append(Problem(f"'description' must be a string, got "
                                f"{describe(doc['description'])}", doc.loc("description"),
                                field="description"))
    entities = doc.get("entities")
    if entities is not None and not isinstance(entities, list):
        problems.append(Problem(f"'entities' must be a list, got {describe(entities)}",
                                doc.loc("entities"), field="entities"))
        return None
    return doc


def _support_files(instance_files: list[Path], defs: Iterable[Path], beside: bool
                   ) -> list[Path]:
    files = expand_defs(defs)
    seen = {p.resolve() for p in files}
    folder = Path(instance_files[0]).parent
    for extra in sorted(folder.glob(SUPPORT_GLOB)) if beside else []:
        target = leaves(extra, folder)
        if target is not None:
            raise BerthError(Problem(f"is a symbolic link to {target}, outside the config "
                                     f"folder {folder}: refused", Location(extra)))
        if extra.resolve() not in seen:
            files.append(extra)
            seen.add(extra.resolve())
    return files

def generate(instance_files: list[Path], defs: list[Path], options: GenerateOptions,
             beside: bool = True) -> Generated:
    """Generate an IOC's start-up files in memory. Raises BerthError listing every problem.

    `defs` are support files or folders. With `beside` (for a config folder), the
    `*.ibek.support.yaml` files in the folder of the first instance file are loaded too."""
    instance_files = [Path(p) for p in instance_files]
    if not instance_files:
        raise BerthError("no IOC instance file given")
    files = _support_files(instance_files, defs, beside)
    if not files:
        raise BerthError(Problem(
            "no support definitions: give --defs FILE_OR_DIR, or put *.ibek.support.yaml "
            f"files in {epics_root() / 'ibek-defs'} or beside the instance file",
            Location(instance_files[0])))
    support = load_support(files)
    renderer = Renderer(options.environment(), instance_files[0].stem)
    build = EntityExpander(support, renderer, instance_files)

    problems: list[Problem] = []
    docs = [(p, _load_instance(p, i == 0, problems)) for i, p in enumerate(instance_files)]
    main_doc = docs[0][1]
    if any(doc is None for _p, doc in docs) or "ioc_name" not in (main_doc or {}):
        raise BerthError(problems)
    assert main_doc is not None
    ioc_name = _ioc_name(renderer, main_doc)
    renderer.ioc_name = ioc_name

    # 1. static checks of every top-level entity
    tops: list[list[TopEntity]] = []
    for _path, doc in docs:
        assert doc is not None
        tops.append(build.check_top(doc))
    if build.unknown:
        build.problems.insert(0, build.unknown_types_problem())
    # the files' own mistakes (an unknown key...) come first, with the entities' (as ibek)
    build.problems[:0] = problems
    if problems:
        raise BerthError(build.problems)

    # 2. render top-level entities in order (ids registered as they come)
    top_entities: list[Entity | tuple[YDict, str, str]] = []
    for items in tops:
        top_entities.extend(build.render_tops(items))

    # 3. sub-entities and repeats
    all_entities = build.expand(top_entities, {}, Location(instance_files[0]), "")
    if build.problems:
        raise BerthError(build.problems)

    # 4. outputs
    return outputs(all_entities, renderer, options, instance_files, ioc_name)

def write_outputs(generated: Generated, out_dir: Path, opi_dir: Path | None = None) -> list[Path]:
    """Write st.cmd, ioc.subst, (when needed) wait_list.yaml and the `<Device>.pvi.template`s
    into `out_dir`, and the screens into `opi_dir` (default `<out_dir>/opi`), all or nothing."""
    out_dir = Path(out_dir)
    opi_dir = Path(opi_dir) if opi_dir is not None else out_dir / "opi"
    files: dict[Path, str] = {
        out_dir / "st.cmd": generated.st_cmd,
        out_dir / "ioc.subst": generated.ioc_subst,
    }
    if generated.wait_list is not None:
        files[out_dir / "wait_list.yaml"] = generated.wait_list
    for name, text in generated.pvi_files().items():
        files[(out_dir if name.endswith(".template") else opi_dir) / name] = text
    # a wait list left from an earlier generation would be wrong now
    stale = [] if generated.wait_list is not None else [out_dir / "wait_list.yaml"]
    if out_dir not in opi_dir.parents and any(p.parent == opi_dir for p in files):
        _write({p: t for p, t in files.items() if p.parent != opi_dir}, out_dir, stale)
        _write({p: t for p, t in files.items() if p.parent == opi_dir}, opi_dir, [])
    else:
        _write(files, out_dir, stale)
    return list(files)


def _write(files: dict[Path, str], folder: Path, stale: list[Path]) -> None:
    from berth.fsutil import write_folder

    try:
        write_folder(folder, files, stale)
    except OSError as exc:
        raise BerthError(Problem(f"cannot write outputs: {exc.strerror or exc}",
                                 Location(exc.filename or folder))) from None
