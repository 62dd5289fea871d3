"""Check one IOC instance: its config folder, instance YAML (schema, generation), and the
databases its start-up loads (expanded as `berth run` expands them, loaded into real EPICS).

The choices `berth run` makes are reused, not re-derived: which images run on the embedded soft
IOC (`run.ioc_map.how_to_run`), its support definitions and dbd (`paths`), and the start-up
precedence, instance files, template search path, environment and path map
(`run.launch.plan`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth import paths
from berth.check.schema_check import group_unknown_types, schema_problems
from berth.deploy.services import IOC_CHART, Service
from berth.epics import dbload
from berth.epics.origin import Origins, templates_of_subst
from berth.epics.records import link_problem, read_records
from berth.epics.startup_script import database_loads
from berth.errors import BerthError, Location, Problem
from berth.fsutil import links_out, read_text
from berth.ioc.image_defs import Finder, ImageDefs
from berth.run import launch
from berth.run.ioc_map import how_to_run
from berth.yamlio import YDict, YList, load_yaml

_QUOTED = re.compile(r'"((?:[^"\\]|\\.){2,})"')
DEFAULT_IOC_DIR = paths.IOC_DIR
DEFAULT_RUNTIME_DIR = paths.RUNTIME_DIR


@dataclass
class Plan:
    """What to load into EPICS for one instance."""

    dbd: Path | None  # None: the dbd is not on this host, nothing can be loaded into EPICS
    binary: Path | None  # a Generic IOC binary on this host, or None: berth's embedded EPICS
    include: list[Path]
    loads: list[tuple[Path, str]] = field(default_factory=list)
    origins: dict[Path, Origins] = field(default_factory=dict)  # expanded files → templates
    made_for: dict[Path, Path] = field(default_factory=dict)  # expanded file → its source
    config: Path | None = None


@dataclass
class InstanceCheck:
    name: str
    service: Service
    work: Path
    problems: list[Problem] = field(default_factory=list)
    ioc_name: str = ""
    ioc_name_loc: Location = field(default_factory=Location)
    plan: Plan | None = None
    pvs: list[tuple[str, Location]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # what could be checked

    def note(self, message: str, loc: Location | None = None) -> None:
        self.problems.append(Problem(message, loc or service_location(self.service),
                                     self.name, severity="note"))

    def error(self, message: str, loc: Location | None = None, field_name: str | None = None
              ) -> None:
        self.problems.append(Problem(message, loc or service_location(self.service),
                                     self.name, field_name))


# -- where a service is defined -----------------------------------------------------------------


def service_location(service: Service, key: str | None = "image") -> Location:
    """The place in the values (or compose) file that defines the service."""
    doc, file = service.source, service.values_file
    if file is None or doc is None:
        return Location(file if file is not None and file.is_file() else service.path)
    if service.layout == "helm":
        block = doc.get(IOC_CHART)
        if isinstance(block, YDict):
            return block.loc(key) if key in block else doc.key_loc(IOC_CHART)
        return Location(file, 1)
    services = doc.get("services")
    if isinstance(services, YDict) and service.name in services:
        spec = services[service.name]
        if key and isinstance(spec, YDict) and key in spec:
            return spec.loc(key)
        return services.key_loc(service.name)
    return Location(file, 1)


def _env_location(service: Service, name: str) -> Location | None:
    """Where the values set environment variable `name` (helm `env:` list or compose
    `environment:`), when they do."""
    doc = service.source
    if doc is None:
        return None
    if service.layout == "helm":
        block = doc.get(IOC_CHART)
        env = block.get("env") if isinstance(block, YDict) else None
        if isinstance(env, YList):
            for index, item in enumerate(env):
                if isinstance(item, YDict) and item.get("name") == name:
                    return item.loc("value") if "value" in item else env.loc(index)
        return None
    services = doc.get("services")
    spec = services.get(service.name) if isinstance(services, YDict) else None
    env = spec.get("environment") if isinstance(spec, YDict) else None
    if isinstance(env, YDict) and name in env:
        return env.loc(name)
    if isinstance(env, YList):
        for index, item in enumerate(env):
            if isinstance(item, str) and item.split("=", 1)[0] == name:
                return env.loc(index)
    return None


# -- support definitions ------------------------------------------------------------------------


def _module_of(path: Path) -> str | None:
    try:
        data = load_yaml(path)
    except BerthError:
        return None
    module = data.get("module") if isinstance(data, dict) else None
    return str(module) if module else None


def defs_for_embedded(user_defs: Sequence[Path]) -> list[Path]:
    """The soft IOC's support YAMLs plus the user's, leaving out user files that define a
    module the soft IOC already has (e.g. an `epics` module given for foreign images)."""
    own = paths.support_files()
    modules = {_module_of(p) for p in own}
    return own + [p for p in user_defs if _module_of(p) not in modules]


# -- the steps ----------------------------------------------------------------------------------


class SchemaCache:
    """One JSON schema per set of support files (building it reads every file)."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[Path, ...], dict[str, Any] | list[Problem]] = {}

    def get(self, defs: Sequence[Path]) -> dict[str, Any] | list[Problem]:
        key = tuple(defs)
        if key not in self._schemas:
            from berth.ioc.schema import ioc_schema

            try:
                self._schemas[key] = ioc_schema(list(defs))
            except BerthError as err:
                self._schemas[key] = err.problems
        return self._schemas[key]


def prepare(service: Service, work: Path, user_defs: Sequence[Path], schemas: SchemaCache,
            repo_root: Path | None = None, images: Finder | None = None) -> InstanceCheck:
    """Everything up to the EPICS load: config folder, schema, generation, expansion. Links
    out of `repo_root` (the repository is the boundary) stop the instance's check there.
    Without --defs, a Generic IOC image not on this host is checked with the definitions
    `images` finds for it (cache, else the local engine's copy of the image)."""
    check = InstanceCheck(service.name, service, work)
    if repo_root is not None and service.path.is_dir():
        for link, target in links_out(service.path, repo_root):
            check.error(f"is a symbolic link to {target}, outside the repository {repo_root}: "
                        "refused (berth reads only the repository's own files)",
                        Location(link))
        if check.problems:
            return check
    env = dict(service.environment)
    env.setdefault("IOC_NAME", service.name)
    check.ioc_name = env["IOC_NAME"]
    check.ioc_name_loc = _env_location(service, "IOC_NAME") or service_location(service)
    image = service.image or "(no image)"
    values_start = service.values.get(IOC_CHART, {}) if service.layout == "helm" else {}
    start_override = [k for k in ("command", "args") if isinstance(values_start, dict)
                      and values_start.get(k)]
    if not service.image:
        check.error("no image: the instance does not say which Generic IOC it runs",
                    service_location(service, None), "image")

    config = service.config_dir
    if config is None or not config.is_dir():
        expected = config or service.path / "config"
        if start_override:
            check.note(f"no config folder ({expected}); start-up comes from the values "
                       f"'{start_override[0]}', which berth does not check")
        else:
            check.error(f"config folder not found: expected {expected}",
                        service_location(service, "configs" if service.layout == "compose"
                                         else "image"))
        return check
    how = how_to_run(service.image)
    embedded = how.runnable and how.ioc_dir is None
    from_image: ImageDefs | None = None
    why_not = ""
    if not how.runnable and not user_defs and service.image:
        from_image, why_not = (images or Finder()).find(service.image)
    runtime = work / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    options = launch.RunOptions(config_dir=config, ioc_dir=how.ioc_dir or Path(DEFAULT_IOC_DIR),
                                runtime_dir=runtime, ioc_name=check.ioc_name)
    try:
        planned = launch.plan(options, {**os.environ, **env})
    except BerthError as err:
        if start_override and err.problems[0].message.startswith("nothing to run"):
            check.note(f"the config folder is not an ibek config (no instance YAML, st.cmd or "
                       f"start.sh); start-up comes from the values '{start_override[0]}': not "
                       "checked", Location(config))
        else:
            check.problems += err.problems
        return check
    # (as the values name them, for the problems' locations; plan() resolved them)
    planned.files = [config / f.name for f in planned.files]
    ioc_dir = planned.ioc_dir if how.runnable else None
    env.update({"IOC": str(ioc_dir or DEFAULT_IOC_DIR), "RUNTIME_DIR": str(runtime)})

    if planned.mode == "python":
        check.note("a Python soft IOC (ioc.py): berth cannot see the records it makes; "
                   "config not checked", Location(config / "ioc.py"))
        return check
    if planned.mode == "start.sh":
        check.note("start.sh overrides the start-up: berth cannot see what it loads; "
                   "config not checked", Location(config / "start.sh"))
        return check
    st_cmd_text: str | None = None
    subst: Path | None = None
    if planned.mode == "yaml":
        st_cmd_text, subst = _check_yaml(check, planned, how.runnable, embedded,
                                         from_image.defs if from_image else user_defs,
                                         schemas, image, why_not)
        if st_cmd_text is None:
            return check
    else:
        st_cmd_text = read_text(planned.files[0], errors="replace")
        subst = planned.files[1] if len(planned.files) > 1 else None

    source = planned.files[0]
    if from_image is not None:
        _plan_from_image(check, from_image, st_cmd_text, subst, config, runtime, env, source)
        return check
    if not how.runnable:
        check.note(f"image {image} is not on this host: its templates and dbd are missing, so "
                   "the database was not expanded nor loaded into EPICS; PVs are known only "
                   "from database files in the config folder", service_location(service))
        # Records loaded straight from the config folder still count for duplicate PVs.
        check.plan = Plan(None, None, [config, runtime], config=config)
        mapping = {DEFAULT_RUNTIME_DIR: runtime, f"{DEFAULT_IOC_DIR}/config": config,
                   DEFAULT_IOC_DIR: Path(DEFAULT_IOC_DIR)}
        _plan_loads(check, st_cmd_text, None, config, mapping, runtime, env, source,
                    on_host_only=True)
        return check
    assert ioc_dir is not None
    dbd = ioc_dir / "dbd" / "ioc.dbd"
    if not dbd.is_file():
        check.note(f"the Generic IOC folder {ioc_dir} has no dbd/ioc.dbd: database not loaded")
        return check
    check.plan = Plan(dbd, None if embedded else paths.generic_binary(ioc_dir),
                      planned.include, config=config)
    _plan_loads(check, st_cmd_text, subst, config,
                {k: Path(v) for k, v in planned.path_map.items()}, runtime, env, source)
    return check


def _plan_from_image(check: InstanceCheck, found: ImageDefs, st_cmd: str, subst: Path | None,
                     config: Path, runtime: Path, env: dict[str, str], source: Path) -> None:
    """The database loads of an image whose templates and dbd were copied here: expanded
    with its templates, loaded into berth's EPICS with its dbd."""
    # (a dbd folder for an ioc.dbd that includes others; a Generic IOC's is usually expanded)
    dbd_dirs = [found.dbd.parent] if found.dbd is not None else []
    check.plan = Plan(found.dbd, None, [config, runtime, *found.db_dirs, *dbd_dirs],
                      config=config)
    mapping = {DEFAULT_RUNTIME_DIR: runtime, f"{DEFAULT_IOC_DIR}/config": config,
               DEFAULT_IOC_DIR: found.root / "ioc", **found.path_map()}
    _plan_loads(check, st_cmd, subst, config, mapping, runtime, env, source)
    if found.dbd is None:
        check.note(f"image {found.image} has no {DEFAULT_IOC_DIR}/dbd/ioc.dbd: its databases "
                   "were expanded but not loaded into EPICS", service_location(check.service))


def _check_yaml(check: InstanceCheck, planned: launch.Launch, runnable: bool, embedded: bool,
                user_defs: Sequence[Path], schemas: SchemaCache, image: str, why_not: str = ""
                ) -> tuple[str | None, Path | None]:
    """Schema-check and generate an instance YAML; returns (st.cmd text, ioc.subst path)."""
    from berth.ioc import generate as gen

    assert planned.options is not None
    files = planned.files
    config = files[0].parent
    runtime = planned.options.runtime_dir
    env = planned.generation_env()
    if not runnable:
        env["IOC"] = DEFAULT_IOC_DIR
    if embedded:
        defs = defs_for_embedded(user_defs)
    elif runnable:
        defs = paths.default_defs(env) + list(user_defs)
    else:
        defs = list(user_defs)
    beside = [p for p in sorted(config.glob(paths.SUPPORT_GLOB)) if p not in defs]
    if not defs and not beside:
        why = f" ({why_not})" if why_not else " (give them with --defs)"
        check.note(f"support definitions of image {image} are not on this host: the instance "
                   f"YAML was neither schema-checked nor generated{why}", Location(files[0]))
        return None, None
    documents = []
    for file in files:
        try:
            documents.append(load_yaml(file))
        except BerthError as err:
            check.problems += err.problems
            return None, None
    schema = schemas.get(defs + beside)  # generate() also loads those beside the instance
    if isinstance(schema, list):
        check.problems += schema  # the support definitions themselves are wrong
        return None, None
    found: list[Problem] = []
    for index, document in enumerate(documents):
        found += schema_problems(document, schema, entities_only=index > 0)
    found = group_unknown_types(found)
    check.steps.append("schema")
    head = documents[0]
    if isinstance(head, YDict) and "ioc_name" in head:
        from_values = "get_env" in str(head["ioc_name"]) and _env_location(
            check.service, "IOC_NAME") is not None
        if not from_values:  # else the name is the values' IOC_NAME: point there
            check.ioc_name_loc = head.loc("ioc_name")

    ioc_dir = planned.ioc_dir if runnable else None
    options = gen.GenerateOptions.from_env(env, ioc_dir=str(ioc_dir or DEFAULT_IOC_DIR),
                                           runtime_dir=str(runtime),
                                           ioc_name=planned.options.ioc_name)
    try:
        generated = gen.generate(files, defs, options)
    except BerthError as err:
        check.problems += found
        reported = {(str(p.location.file), p.location.line) for p in found}
        check.problems += [p for p in err.problems
                           if (str(p.location.file), p.location.line) not in reported]
        return None, None
    # The generator (like ibek) converts what it can, e.g. "25" for a float: the instance runs,
    # but editors using the schema flag the value, so it stays visible as a warning.
    check.problems += [Problem(f"{p.message} (the generator accepts it, as ibek does)",
                               p.location, p.entity, p.field, severity="warning")
                       for p in found]
    check.problems += generated.warnings
    check.steps.append("generate")
    if generated.ioc_name:
        check.ioc_name = generated.ioc_name
    gen.write_outputs(generated, runtime)
    return generated.st_cmd, runtime / "ioc.subst"


_YAML_VALUE = re.compile(r":\s*['\"]?([^'\"#\s][^'\"#]*?)['\"]?\s*$")


def _prefix_line(file: Path, names: Sequence[str]) -> Location:
    """The line of `file` whose value is the longest start (3 characters or more) of one of
    `names`: where a prefix macro of an expanded record name was given."""
    best, where = 0, Location(file)
    with contextlib.suppress(OSError):
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
            match = _YAML_VALUE.search(line)
            value = match.group(1) if match else ""
            if len(value) >= 3 and len(value) > best and any(n.startswith(value)
                                                             for n in names):
                best, where = len(value), Location(file, number)
    return where


def _instance_line(file: Path, text: str) -> Location:
    """The first line of `file` mentioning `text` (to place a problem found in generated
    output back in the instance YAML)."""
    with contextlib.suppress(OSError):
        for number, line in enumerate(read_text(file, errors="replace").splitlines(), 1):
            if text and text in line:
                return Location(file, number)
    return Location(file)


def _plan_loads(check: InstanceCheck, st_cmd: str, subst: Path | None, config: Path,
                mapping: dict[str, Path], runtime: Path, env: dict[str, str], source: Path,
                on_host_only: bool = False) -> None:
    """Plan the database loads of an st.cmd (`mapping`: container path → this host's).
    `on_host_only`: the Generic IOC is elsewhere, so only files of the config folder are taken
    (and missing ones are not errors)."""
    plan = check.plan
    assert plan is not None
    from berth.epics import substitutions as msi

    warnings: list[Problem] = []
    ioc_db = runtime / "ioc.db"
    if subst is not None and subst.is_file():
        try:
            # $(IOCSTATS) in file names: the soft IOC's iocStats folder, as `berth run` sets it
            from berth import paths

            names = {} if plan.binary is not None else {
                "IOCSTATS": os.environ.get("IOCSTATS") or str(paths.iocstats_dir())}
            text = msi.expand_substitutions(subst, plan.include, names, strict=False,
                                            warnings=warnings)
        except BerthError as err:
            check.problems += err.problems
            text = None
        if text is not None:
            ioc_db.write_text(text)
            plan.origins[ioc_db] = Origins(text, templates_of_subst(
                read_text(subst, errors="replace"), plan.include))
            plan.made_for[ioc_db] = source
    for number, load in enumerate(database_loads(st_cmd, env, mapping)):
        where = (Location(source, load.line) if source.name == "st.cmd"
                 else _instance_line(source, Path(load.file).name))
        path = _find(load.file, plan.include)
        if on_host_only and (path is None or config not in path.parents):
            continue
        if path is None:
            if Path(load.file) == ioc_db:
                continue  # its substitution file failed to expand: reported above
            check.error(f"{load.command}: database file '{load.file}' not found (searched "
                        f"{', '.join(str(p) for p in plan.include)})", where)
            continue
        if load.command == "dbLoadTemplate":
            try:
                text = msi.expand_substitutions(path, plan.include, _macro_dict(load.macros),
                                                strict=False, warnings=warnings)
            except BerthError as err:
                check.problems += err.problems
                continue
            out = runtime / f"template-{number}.db"
            out.write_text(text)
            plan.origins[out] = Origins(text, templates_of_subst(
                read_text(path, errors="replace"), plan.include))
            plan.made_for[out] = path
            plan.loads.append((out, ""))
        else:
            plan.loads.append((path, load.macros))
    check.problems += [Problem(w.message, w.location, w.entity or check.name, w.field,
                               severity="warning") for w in warnings]


def _find(name: str, include: Sequence[Path]) -> Path | None:
    path = Path(name)
    if path.is_absolute() or name.startswith("."):
        return path if path.is_file() else None
    for folder in include:
        if (folder / path).is_file():
            return folder / path
    return None


def _macro_dict(text: str) -> dict[str, str]:
    from berth.epics.macros import parse_definitions

    result: dict[str, str] = {}
    for name, raw in parse_definitions(text):
        if raw is not None:
            result[name] = raw  # raw, as msi -M takes them
    return result


# -- loading into EPICS, and what was loaded ----------------------------------------------------


def load_into_epics(check: InstanceCheck) -> None:
    plan = check.plan
    if plan is None or plan.dbd is None or not plan.loads:
        return
    env = {"EPICS_DB_INCLUDE_PATH": os.pathsep.join(str(p) for p in plan.include)}
    if plan.binary is not None:
        errors = dbload.load_with_binary(plan.binary, plan.dbd, plan.loads, check.work, env)
    else:
        errors = dbload.load_databases(plan.dbd, plan.loads, env)
    check.steps.append("epics")
    for err in errors:
        loc, suffix = _user_location(plan, Path(err.file), err.line)
        check.problems.append(Problem(f"EPICS: {err.message}{suffix}", loc, check.name))


def _user_location(plan: Plan, file: Path, line: int) -> tuple[Location, str]:
    """A line of a file berth expanded → the template line it came from (or the file it was
    made from, naming the expanded line)."""
    origins = plan.origins.get(file)
    if origins is None:
        return Location(file, line), ""
    source = plan.made_for.get(file, file)
    found = origins.locate(line) if line else None
    if found is None:
        return Location(source), f" (line {line} of the expanded {file.name})"
    template, template_line = found
    if plan.config is not None and plan.config in template.parents:
        return Location(template, template_line), f" (in the expanded {file.name})"
    # A support module's template is not the user's to fix: point at the instance YAML line
    # holding a value of the expanded line, when there is one.
    quoted = _QUOTED.findall(origins.lines[line - 1])
    for value in quoted:
        place = _instance_line(source, value)
        if place.line:
            return place, f" (from {template.name}:{template_line}, in the expanded {file.name})"
    place = _prefix_line(source, quoted)  # e.g. P: 'T1:' made "T1:VALUE" through $(P)VALUE
    if place.line:
        return place, f" (from {template.name}:{template_line}, in the expanded {file.name})"
    return Location(template, template_line), f" (in the expanded {file.name})"


def collect_pvs(check: InstanceCheck) -> None:
    """The PVs (record names and aliases) the instance serves, with where each is defined;
    link fields that look wrong become warnings."""
    plan = check.plan
    if plan is None:
        return
    from berth.epics import substitutions as msi

    for path, macros in plan.loads:
        try:
            if path in plan.origins:
                text = read_text(path, errors="replace")
            else:
                text = msi.expand_template(path, plan.include, _macro_dict(macros),
                                           strict=False, warnings=[])
        except (BerthError, OSError):
            continue  # reported by the load step
        records, aliases = read_records(text)
        for record in records:
            loc, _ = _user_location(plan, path, record.line)
            check.pvs.append((record.name, loc))
            for alias, line in record.aliases:
                check.pvs.append((alias, _user_location(plan, path, line)[0]))
            for field_name, value, line in record.links:
                why = link_problem(value)
                if why:
                    check.problems.append(Problem(
                        f"record '{record.name}' field {field_name}: {why}",
                        _user_location(plan, path, line)[0], check.name, field_name,
                        severity="warning"))
        for _target, alias, line in aliases:
            check.pvs.append((alias, _user_location(plan, path, line)[0]))
