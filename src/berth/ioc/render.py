"""The text of the generated files: st.cmd, ioc.subst and wait_list.yaml, laid out as ibek 4.6
lays them out (same header comments, blank lines, column alignment and quoting); and the types
of a generation: its options and its result."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from berth import paths
from berth.errors import BerthError, Location, Problem
from berth.ioc.entity import WAIT_IP_TYPE, Entity, TemplateProblem
from berth.ioc.support import Database, Pvi, ScriptItem
from berth.ioc.templates import Renderer
from berth.values import Value

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

    from berth.screens import ScreenEntry

def epics_root() -> Path:
    return paths.epics_root()


class GenerateOptions(Value):
    """Paths written into the outputs, where PVI device files are looked up, and the
    environment `_global.get_env` sees (`from_env` fixes it when the options are made)."""

    FIELDS = ("ioc_dir", "runtime_dir", "ioc_name", "pvi_defs", "env")
    ioc_dir: str  # as written into st.cmd `cd "<IOC>"`
    runtime_dir: str  # st.cmd `dbLoadRecords <RUNTIME_DIR>/ioc.db`
    ioc_name: str | None  # IOC_NAME for `_global.get_env('IOC_NAME')`
    pvi_defs: list[Path]
    # what `_global.get_env` sees; None (direct construction only): this process's environment
    env: dict[str, str] | None

    def __init__(self, ioc_dir: str = paths.IOC_DIR, runtime_dir: str = paths.RUNTIME_DIR,
                 ioc_name: str | None = None, pvi_defs: list[Path] | None = None,
                 env: dict[str, str] | None = None):
        self.ioc_dir, self.runtime_dir, self.ioc_name = ioc_dir, runtime_dir, ioc_name
        self.pvi_defs = [] if pvi_defs is None else pvi_defs
        self.env = env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any
                 ) -> GenerateOptions:
        """Options from IOC, RUNTIME_DIR, IOC_NAME and EPICS_ROOT of `env` (default: this
        process's), overridden by keyword arguments that are not None. `pvi_defs` given here
        are searched before `$EPICS_ROOT/pvi-defs`."""
        env = dict(os.environ if env is None else env)
        extra_pvi = [Path(p) for p in overrides.pop("pvi_defs", None) or []]
        values: dict[str, Any] = {
            # set but empty is honoured, as ibek's get_env writes it (`cd ""`)
            "ioc_dir": env.get("IOC", paths.IOC_DIR),
            "runtime_dir": env.get("RUNTIME_DIR", paths.RUNTIME_DIR),
            "ioc_name": env.get("IOC_NAME") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["pvi_defs"] = [*extra_pvi, paths.pvi_defs_dir(env)]
        return cls(env=env, **values)

    def environment(self) -> dict[str, str]:
        """What `_global.get_env` sees: `env` with these options on top."""
        env = dict(os.environ if self.env is None else self.env)
        env["IOC"] = self.ioc_dir
        env["RUNTIME_DIR"] = self.runtime_dir
        if self.ioc_name is not None:
            env["IOC_NAME"] = self.ioc_name
        return env


class PviEntity(Value):
    """An entity with a `pvi` block: what screens need (rendered macros, the device file)."""

    FIELDS = ("entity", "pvi", "macros", "yaml_path", "device_name", "device_file")
    entity: Entity
    pvi: Pvi
    macros: dict[str, str]
    yaml_path: str
    device_name: str
    device_file: Path | None  # None when the device file was not found

    def __init__(self, entity: Entity, pvi: Pvi, macros: dict[str, str], yaml_path: str,
                 device_name: str, device_file: Path | None):
        self.entity, self.pvi, self.macros = entity, pvi, macros
        self.yaml_path, self.device_name, self.device_file = yaml_path, device_name, device_file

    def screen_entry(self) -> ScreenEntry:
        """What `berth.screens` needs of this entity to draw its screens."""
        from berth.screens import ScreenEntry

        return ScreenEntry(device=self.yaml_path, ui_index=self.pvi.ui_index,
                           ui_macros=dict(self.macros), pv=self.pvi.pv,
                           pv_prefix=self.pvi.pv_prefix or "", source=self.pvi.loc)


class Generated(Value):
    FIELDS = ("st_cmd", "ioc_subst", "wait_list", "pvi_entities", "warnings", "entities",
              "ioc_name", "pvi_search")
    st_cmd: str
    ioc_subst: str
    wait_list: str | None
    pvi_entities: list[PviEntity]
    warnings: list[Problem]
    entities: list[Entity]
    ioc_name: str
    pvi_search: list[Path]  # where PVI device files were found

    def __init__(self, st_cmd: str, ioc_subst: str, wait_list: str | None,
                 pvi_entities: list[PviEntity] | None = None,
                 warnings: list[Problem] | None = None, entities: list[Entity] | None = None,
                 ioc_name: str = "", pvi_search: list[Path] | None = None):
        self.st_cmd, self.ioc_subst, self.wait_list = st_cmd, ioc_subst, wait_list
        self.pvi_entities = [] if pvi_entities is None else pvi_entities
        self.warnings = [] if warnings is None else warnings
        self.entities = [] if entities is None else entities
        self.ioc_name = ioc_name
        self.pvi_search = [] if pvi_search is None else pvi_search

    def pvi_files(self, screen_formats: tuple[str, ...] = ("bob",)) -> dict[str, str]:
        """The PVI outputs (relative name -> text): each `<Device>.pvi.template` that
        ioc.subst's rows load, the screens of each device type used and `index.<fmt>`.
        Entities whose device file was not found were already warned about and are left out."""
        found = [p for p in self.pvi_entities if p.device_file is not None]
        if not found:
            return {}
        from berth.ioc.screens_cache import screen_files

        return screen_files(self.ioc_name, found, self.pvi_search, tuple(screen_formats))


Table = tuple[str, tuple[str, ...]]  # an ioc.subst block: template file, argument names

ST_CMD_HEADER = "# EPICS IOC Startup Script generated by https://github.com/epics-containers/ibek\n"
SUBST_HEADER = (
    "#############################################################################\n"
    "# DB substitution file generated by http://github.com/epics-containers/ibek #\n"
    "#############################################################################\n"
)
WAIT_HEADER = (
    "#######################################################################################\n"
    "# List of hardware to wait for communication with before proceeding with the IOC start.\n"
    "# This file is generated by DoWaitEntity._process_entity.\n"
    "#######################################################################################\n"
    "\n"
)


class _Outputs:
    def __init__(self, renderer: Renderer):
        self.r = renderer
        self.problems: list[Problem] = []

    def fail(self, exc: TemplateProblem, ent: Entity, what: str, origin: Location) -> None:
        self.problems.append(Problem(exc.describe(f"{ent.type} at {origin}"), ent.loc,
                                     ent.label, what))

    # -- st.cmd ---------------------------------------------------------------------------

    def env_vars(self, entities: list[Entity]) -> str:
        out = []
        for ent in entities:
            model = ent.model
            assert model is not None
            if not model.env_vars:
                continue
            lines = []
            for i, var in enumerate(model.env_vars):
                try:
                    lines.append(self.r.render(ent.fields,
                                               f"epicsEnvSet {var.name} {var.value}"))
                except TemplateProblem as exc:
                    self.fail(exc, ent, f"env_vars[{i + 1}]", var.loc)
            out.append("\n".join(str(line) for line in lines) + "\n")
        return "".join(out)

    def script(self, entities: list[Entity], section: str) -> str:
        out: list[str] = []
        done_first: set[tuple[str, int]] = set()
        last_of: dict[str, Entity] = {}
        for ent in entities:
            assert ent.model is not None
            if any(item.when == "last" for item in getattr(ent.model, section)):
                last_of[ent.type] = ent
        for ent in entities:
            model = ent.model
            assert model is not None
            items: list[ScriptItem] = getattr(model, section)
            last = ent is last_of.get(ent.type)
            deferred: list[str] = []
            for i, item in enumerate(items):
                if item.when == "first":
                    if (ent.type, i) in done_first:
                        continue
                    done_first.add((ent.type, i))
                elif item.when == "last":
                    if last:  # once, after this model's other lines
                        deferred.append(self.script_item(ent, item, section, i))
                    continue
                out.append(self.script_item(ent, item, section, i))
            out.extend(deferred)
        return "".join(out)

    def script_item(self, ent: Entity, item: ScriptItem, section: str, index: int) -> str:
        text = item.value
        if item.kind == "comment":
            text = "\n".join("# " + line for line in text.split("\n"))
        try:
            result = self.r.render(ent.fields, text, "str")
        except TemplateProblem as exc:
            self.fail(exc, ent, f"{section}[{index + 1}]", item.loc)
            return ""
        return "" if result == "" else f"{result}\n"

    def st_cmd(self, entities: list[Entity], options: GenerateOptions) -> str:
        env = self.env_vars(entities)
        pre = self.script(entities, "pre_init")
        post = self.script(entities, "post_init")
        text = ST_CMD_HEADER + "\n" + f'cd "{options.ioc_dir}"\n'
        if env:
            text += "\n" + env + "\n"
        text += "dbLoadDatabase dbd/ioc.dbd\nioc_registerRecordDeviceDriver pdbbase\n\n"
        db = f"{options.runtime_dir}/ioc.db"
        if any(c in db for c in " \t\"\\"):  # quoted only then: ibek's st.cmd, byte for byte
            db = '"' + db.replace("\\", "\\\\").replace('"', '\\"') + '"'
        text += pre + f"\ndbLoadRecords {db}\niocInit\n"
        if post:
            text += "\n" + post
        return text

    # -- ioc.subst ------------------------------------------------------------------------

    def database_rows(self, entities: list[Entity], extra: list[tuple[Database, Entity]]
                      ) -> dict[Table, list[list[str]]]:
        tables: dict[Table, list[list[str]]] = {}
        work = [(db, ent) for ent in entities for db in ent.model.databases]  # type: ignore
        for db, ent in [*work, *extra]:
            self.database(db, ent, tables)
        return tables

    def database(self, db: Database, ent: Entity, tables: dict[Table, list[list[str]]]
                 ) -> None:
        fields = ent.fields
        dbs = ent.model.databases if ent.model else []
        what = f"databases[{dbs.index(db) + 1}]" if db in dbs else "pvi"
        try:
            enabled = self.r.render(fields, db.enabled, "str")
        except TemplateProblem as exc:
            self.fail(exc, ent, f"{what}.enabled", db.loc)
            return
        if str(enabled).lower() not in ("yes", "true", "1"):
            return
        args: dict[str, str | None] = {}
        for arg, value in db.args.items():
            if "*" in arg or "?" in arg:
                try:
                    pattern = re.compile(arg)
                except re.error as exc:
                    self.problems.append(Problem(
                        f"database arg '{arg}' of '{db.file}' is not a valid regular "
                        f"expression: {exc} (from {ent.type} at {db.loc})", ent.loc,
                        ent.label, f"{what}.args"))
                    continue
                for name in fields:
                    if pattern.match(name):
                        args[name] = value
            else:
                args[arg] = value
        for arg, value in args.items():
            if value is None and arg not in fields and arg not in self.r.globals.variables:
                names = ", ".join(n for n in fields if n not in ("type", "entity_enabled"))
                self.problems.append(Problem(
                    f"database arg '{arg}' of '{db.file}' has no value and names no parameter "
                    f"or define of {ent.type}; give it a value or use one of: {names} "
                    f"(database at {db.args_locs.get(arg, db.loc)})", ent.loc, ent.label,
                    f"{what}.args.{arg}"))
                return
        try:
            file = str(self.r.render(fields, db.file.strip("\n"), "str"))
            row = [str(v) for v in self.r.render_map(fields, args).values()]
        except TemplateProblem as exc:
            self.fail(exc, ent, what, db.loc)
            return
        # one table per template and argument list: two models may load one template with
        # different arguments (autosave's Autosave and auto_save_restoreStatus), and a row
        # longer than its pattern header makes EPICS refuse the file
        key = (file, tuple(args))
        table = tables.get(key)
        if table is None:
            tables[key] = table = [list(args)]
        table.append(row)

    @staticmethod
    def subst(tables: dict[Table, list[list[str]]]) -> str:
        out = [SUBST_HEADER]
        for (file, _args), rows in tables.items():
            n_cols = len(rows[0])  # as ibek: a separator after every column but the last heading
            cells = [[f'"{_quotable(v)}", ' if i < n_cols - 1 else f'"{_quotable(v)}"'
                      for i, v in enumerate(row)] for row in rows]
            widths = [0] * max(len(row) for row in cells)
            for row in cells:
                for i, c in enumerate(row):
                    widths[i] = max(widths[i], len(c))
            out.append(f'\nfile "{file}" {{\npattern ')
            for row in cells:
                out.append("\n\t{ " + "".join(c.ljust(widths[i]) for i, c in enumerate(row))
                           + " }")
            out.append("\n}\n")
        return "".join(out)


_BARE_QUOTE = re.compile(r'(?<!\\)"')


def _quotable(value: str) -> str:
    """A value as it may stand between double quotes in a substitution file: a bare `"` is
    escaped (ibek writes it raw, which msi cannot parse), an escaped one is left alone."""
    return _BARE_QUOTE.sub(r'\\"', value) if '"' in value else value


# values YAML writes plain, whatever its resolver: a name starting with a letter (not one of
# YAML 1.1's booleans and nulls), and a host:port address (without the port it reads as a float)
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*|\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}")
_KEYWORDS = frozenset(["y", "yes", "n", "no", "true", "false", "on", "off", "null"])


def _scalar(value: Any) -> str:
    """`value` as yaml.safe_dump writes it in flow style (without importing yaml, ~20 ms, for
    the common names, numbers and addresses)."""
    if type(value) is int:
        return str(value)
    if type(value) is str and _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    import yaml  # (only an IOC that waits for devices needs it)

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[:-5]
    return text.rstrip("\n")


def wait_list(entities: list[Entity]) -> str | None:
    entries = [e for e in entities if e.type == WAIT_IP_TYPE and e.enabled]
    if not entries:
        return None
    blocks = []
    for ent in entries:
        f = ent.fields
        blocks.append("".join(f"{'  - ' if i == 0 else '    '}{key}: {_scalar(f[key])}\n"
                              for i, key in enumerate(("type", "device", "address", "timeout"))))
    return WAIT_HEADER + "\n".join(blocks)


def _find_pvi(rel_path: str, search: list[Path]) -> Path | None:
    path = Path(rel_path)
    if path.is_absolute():
        return path if path.is_file() else None
    override = search[0] / path.name
    if override.is_file():
        return override
    for folder in search[1:]:
        candidate = folder / path
        if candidate.is_file():
            return candidate
    return None


def outputs(all_entities: list[Entity], renderer: Renderer, options: GenerateOptions,
            instance_files: list[Path], ioc_name: str) -> Generated:
    out = _Outputs(renderer)
    entities = [e for e in all_entities if e.model is not None and e.enabled]
    warnings: list[Problem] = []

    # PVI: the .pvi.template rows of `pv: true` entities, and what screens need
    search = [Path(instance_files[0]).parent, *options.pvi_defs]
    pvi_entities: list[PviEntity] = []
    extra: list[tuple[Database, Entity]] = []
    for ent in entities:
        pvi = ent.model.pvi  # type: ignore[union-attr]
        if pvi is None:
            continue
        try:
            rel_path = str(renderer.render(ent.fields, pvi.yaml_path))
            macros = {k: str(v) for k, v in renderer.render_map(ent.fields,
                                                                 pvi.ui_macros or {}).items()}
        except TemplateProblem as exc:
            out.fail(exc, ent, "pvi", pvi.loc)
            continue
        found = _find_pvi(rel_path, search)
        device_name = Path(rel_path).name.split(".")[0]
        pvi_entities.append(PviEntity(ent, pvi, macros, rel_path, device_name, found))
        if pvi.pv:
            if found is None:
                where = ", ".join(str(p) for p in search)
                warnings.append(Problem(
                    f"PVI device file '{rel_path}' not found (looked in {where}); its "
                    f"'{device_name}.pvi.template' row is left out of ioc.subst", ent.loc,
                    ent.label, "pvi", severity="warning"))
            else:
                extra.append((Database(f"{device_name}.pvi.template", "True",
                                       dict(pvi.ui_macros or {}), pvi.loc), ent))

    st_cmd = out.st_cmd(entities, options)
    tables = out.database_rows(entities, extra)
    if out.problems:
        raise BerthError(out.problems)
    return Generated(
        st_cmd=st_cmd,
        ioc_subst=out.subst(tables),
        wait_list=wait_list(all_entities),
        pvi_entities=pvi_entities,
        warnings=warnings,
        entities=all_entities,
        ioc_name=ioc_name,
        pvi_search=search,
    )
