"""`berth generate`: an IOC instance (+ support definitions) -> st.cmd, ioc.subst, wait_list.yaml.

The steps follow ibek 4.6 so that outputs (and the order in which `_global` counters advance)
are the same:

1. every top-level entity of every instance file is checked (all problems reported together),
2. top-level entities are rendered in file order: pre_defines, parameters, post_defines; ids are
   registered as they appear, so an object parameter can refer only to an entity above it,
3. sub-entities and `ibek.repeat` are expanded, in order, with the parents' fields in context,
4. the outputs are rendered from the resulting entity list (see `berth.ioc.render`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth import paths
from berth.errors import BerthError, Location, Problem
from berth.ioc.entity import (
    REPEAT_TYPE,
    WAIT_IP_TYPE,
    WAIT_USB_TYPE,
    Entity,
    check_fields,
    entity_label,
    enum_choices,
    enum_key,
    lax_bool,
    suggest,
)
from berth.ioc.support import (
    EntityModel,
    Pvi,
    SupportSet,
    describe,
    is_jinja,
    load_support,
)
from berth.ioc.templates import Renderer, TemplateProblem
from berth.yamlio import YDict, load_yaml, location_of

SUPPORT_GLOB = paths.SUPPORT_GLOB
_TOP_KEYS = ("ioc_name", "description", "entities", "shared")
_REPEAT_KEYS = ("type", "values", "variable", "entity", "entity_enabled")
_WAIT_IP_KEYS = ("type", "device", "address", "timeout", "entity_enabled")
_WAIT_USB_KEYS = ("type", "device", "id", "timeout", "entity_enabled")


def epics_root() -> Path:
    return paths.epics_root()


@dataclass
class GenerateOptions:
    """Paths written into the outputs, where PVI device files are looked up, and the
    environment `_global.get_env` sees (`from_env` fixes it when the options are made)."""

    ioc_dir: str = paths.IOC_DIR  # as written into st.cmd `cd "<IOC>"`
    runtime_dir: str = paths.RUNTIME_DIR  # st.cmd `dbLoadRecords <RUNTIME_DIR>/ioc.db`
    ioc_name: str | None = None  # IOC_NAME for `_global.get_env('IOC_NAME')`
    pvi_defs: list[Path] = field(default_factory=list)
    # what `_global.get_env` sees; None (direct construction only): this process's environment
    env: dict[str, str] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any
                 ) -> GenerateOptions:
        """Options from IOC, RUNTIME_DIR, IOC_NAME and EPICS_ROOT of `env` (default: this
        process's), overridden by keyword arguments that are not None. `pvi_defs` given here
        are searched before `$EPICS_ROOT/pvi-defs`."""
        env = dict(os.environ if env is None else env)
        extra_pvi = [Path(p) for p in overrides.pop("pvi_defs", None) or []]
        values: dict[str, Any] = {
            "ioc_dir": env.get("IOC") or paths.IOC_DIR,
            "runtime_dir": env.get("RUNTIME_DIR") or paths.RUNTIME_DIR,
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


@dataclass
class PviEntity:
    """An entity with a `pvi` block: what screens need (rendered macros, the device file)."""

    entity: Entity
    pvi: Pvi
    macros: dict[str, str]
    yaml_path: str
    device_name: str
    device_file: Path | None  # None when the device file was not found


@dataclass
class Generated:
    st_cmd: str
    ioc_subst: str
    wait_list: str | None
    pvi_entities: list[PviEntity] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    ioc_name: str = ""
    pvi_search: list[Path] = field(default_factory=list)  # where PVI device files were found

    def pvi_files(self, screen_formats: tuple[str, ...] = ("bob",)) -> dict[str, str]:
        """The PVI outputs (relative name -> text): each `<Device>.pvi.template` that
        ioc.subst's rows load, the screens of each device type used and `index.<fmt>`.
        Entities whose device file was not found were already warned about and are left out."""
        found = [p for p in self.pvi_entities if p.device_file is not None]
        if not found:
            return {}
        from berth.screens import ioc_screens, screen_entry_from

        return ioc_screens(self.ioc_name, [screen_entry_from(p) for p in found],
                           self.pvi_search, formats=screen_formats,
                           on_missing=lambda _problem: None)


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


# --------------------------------------------------------------------------------------------
# the generator


class _Build:
    """State of one generation run."""

    def __init__(self, support: SupportSet, renderer: Renderer, instance_files: list[Path]):
        self.support = support
        self.r = renderer
        self.instance_files = {str(p) for p in instance_files}
        self.problems: list[Problem] = []
        self.ids: dict[str, Entity] = {}
        self.later_ids: dict[str, tuple[str, Location]] = {}
        self.unknown: list[tuple[str, str, Location]] = []
        self.skipped_values: set[str] = set()  # strings of entities whose type is unknown

    # -- problems ---------------------------------------------------------------------------

    def problem(self, message: str, loc: Location, label: str | None, field_name: str | None,
                ent: Entity | None = None) -> None:
        if ent is not None:
            ent._failed = True
            if ent._quiet:
                return
        self.problems.append(Problem(message, loc, label, field_name))

    def template_problem(self, exc: TemplateProblem, ent: Entity, name: str, loc: Location,
                         origin: str = "") -> None:
        self.problem(exc.describe(origin), loc, ent._label, name, ent)

    # -- values -----------------------------------------------------------------------------

    def _lookup(self, ent: Entity, name: str, ref: Any, loc_of: Any) -> tuple[Any, bool]:
        """The entity an object parameter names, and whether the reference is good."""
        if not isinstance(ref, str):
            return ref, True
        target = self.ids.get(ref)
        if target is not None:
            return target, True
        if ref in self.skipped_values:
            ent._failed = ent._quiet = True  # refers to an entity of an unknown type
            return ref, False
        later = self.later_ids.get(ref)
        if later is not None:
            message = (f"refers to '{ref}', which is defined later by {later[0]} at {later[1]}; "
                       "an entity can only refer to entities defined above it")
        else:
            known = list(self.ids)
            shown = ", ".join(known[-10:]) if known else "(none)"
            if len(known) > 10:
                shown = f"... {shown} ({len(known)} in all)"
            message = (f"refers to '{ref}', but no entity above has that id"
                       f"{suggest(ref, known)}; ids defined so far: {shown}")
        self.problem(message, loc_of(name), ent._label, name, ent)
        return ref, False

    def _register(self, ent: Entity, name: str, value: Any, loc_of: Any) -> None:
        key = str(value)
        other = self.ids.get(key)
        if other is not None and other is not ent:
            self.problem(f"id '{key}' is already used by {other._label} at {other._loc}",
                         loc_of(name), ent._label, name, ent)
            return
        self.ids[key] = ent

    def process(self, ent: Entity, loc_of: Any, origin: str = "") -> None:
        """Render pre_defines, parameters and post_defines in order (ibek's Entity validator)."""
        model = ent._model
        assert model is not None
        fields = ent._fields
        steps: list[tuple[str, Any, str, bool]] = []
        steps += [(n, d.value, d.type or "", True) for n, d in model.pre_defines.items()]
        steps += [(n, fields[n], p.type, False) for n, p in model.parameters.items()
                  if n in fields]  # (a missing required one is reported already)
        steps += [(n, d.value, d.type or "", True) for n, d in model.post_defines.items()]
        for name, value, typ, is_define in steps:
            if isinstance(value, str):
                value_in = value
                try:
                    value = self.r.render(fields, value, typ)
                except TemplateProblem as exc:
                    if is_define:
                        define = model.pre_defines.get(name) or model.post_defines[name]
                        where = origin or f"define '{name}' of {model.type} at {define.loc}"
                    elif value_in is model.parameters[name].default:
                        param = model.parameters[name]
                        where = origin or f"the default of '{name}' of {model.type} at " \
                            f"{param.loc}"
                    else:
                        where = origin
                    self.template_problem(exc, ent, name, loc_of(name), where)
                    return
                if typ == "enum" and value_in is not model.parameters[name].default:
                    param = model.parameters[name]
                    ok, key = enum_key(param, value)
                    if not ok:
                        self.problem(f"expected one of {enum_choices(param)}, the template "
                                     f"rendered {describe(value)}", loc_of(name), ent._label, name,
                                     ent)
                        return
                    value = key
            if typ == "object":
                value, ok = self._lookup(ent, name, value, loc_of)
                if not ok:
                    return  # the rest of this entity would only echo the bad reference
            elif typ == "id":
                self._register(ent, name, value, loc_of)
            fields[name] = value
        enabled = fields.get("entity_enabled", True)
        if isinstance(enabled, str):
            try:
                rendered = self.r.render(fields, enabled)
            except TemplateProblem as exc:
                self.template_problem(exc, ent, "entity_enabled", loc_of("entity_enabled"))
                return
            as_bool = lax_bool(rendered)
            if as_bool is None:
                self.problem(f"expected true or false, the template rendered {rendered!r}",
                             loc_of("entity_enabled"), ent._label, "entity_enabled", ent)
                as_bool = False
            fields["entity_enabled"] = as_bool

    @staticmethod
    def map_enums(ent: Entity) -> None:
        """Swap enum keys for their values (ibek's fixup_enums), once an entity is done."""
        model = ent._model
        if model is None:
            return
        for name, param in model.parameters.items():
            if param.type == "enum" and param.values and name in ent._fields:
                try:
                    mapped = param.values.get(ent._fields[name])
                except TypeError:  # unhashable value
                    continue
                if mapped is not None:
                    ent._fields[name] = mapped

    # -- static checks of top-level entities --------------------------------------------------

    def check_builtin(self, data: YDict, label: str, loc_of: Any) -> None:
        type_name = data["type"]
        allowed = {REPEAT_TYPE: _REPEAT_KEYS, WAIT_IP_TYPE: _WAIT_IP_KEYS,
                   WAIT_USB_TYPE: _WAIT_USB_KEYS}[type_name]
        for key in data:
            if key not in allowed:
                self.problem(f"unknown key '{key}' for {type_name}; expected one of: "
                             f"{', '.join(allowed)}", loc_of(key), label, str(key))
        required = {REPEAT_TYPE: ("values", "entity"), WAIT_IP_TYPE: ("address",),
                    WAIT_USB_TYPE: ("id",)}[type_name]
        for key in required:
            if key not in data:
                self.problem(f"missing required key '{key}' for {type_name}", loc_of(None),
                             label, key)
        if type_name == REPEAT_TYPE:
            values = data.get("values")
            if "values" in data and not isinstance(values, list) and not is_jinja(values):
                self.problem(f"expected a list (or a Jinja string giving one), got "
                             f"{describe(values)}", loc_of("values"), label, "values")
            variable = data.get("variable", "index")
            if not isinstance(variable, str) or not variable.isidentifier():
                self.problem(f"expected a variable name, got {describe(variable)}",
                             loc_of("variable"), label, "variable")
            inner = data.get("entity")
            if "entity" in data:
                if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
                    self.problem("expected a mapping with a 'type'", loc_of("entity"), label,
                                 "entity")
                else:
                    self.check_entity(inner, f"{label} > entity", top=False)
        else:
            for key in data:
                if key in ("type", "entity_enabled"):
                    continue
                value = data[key]
                if key == "timeout":
                    if (not isinstance(value, int) or isinstance(value, bool)) and \
                            not is_jinja(value):
                        self.problem(f"expected an integer number of seconds, got "
                                     f"{describe(value)}", loc_of(key), label, key)
                elif not isinstance(value, str):
                    self.problem(f"expected a string, got {describe(value)}", loc_of(key),
                                 label, key)

    def check_entity(self, data: Any, label: str, top: bool
                     ) -> tuple[EntityModel | None, dict[str, Any]]:
        """Static check of one mapping: its model (None for built-ins and unknown types) and
        its checked fields. Unknown top-level types are collected by the caller."""
        type_name = data.get("type")

        def loc_of(key: Any) -> Location:
            return location_of(data, key)

        if type_name in (REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE):
            self.check_builtin(data, label, loc_of)
            return None, {}
        model = self.support.get(type_name)
        if model is None:
            if not top and not is_jinja(type_name):  # nested in a repeat
                self.unknown.append((type_name, label, location_of(data, "type")))
            return None, {}
        result = check_fields(model, data, label)
        self.problems.extend(result.problems)
        return model, result.fields

    # -- expansion (ibek's resolve_sub_entities) --------------------------------------------

    def make(self, raw: Mapping[str, Any], context: dict[str, Any], label: str,
             top_loc: Location, origin: str) -> Entity | None:
        """Render a raw entity mapping with `context`, check it, and build its entity."""
        in_instance = isinstance(raw, YDict) and raw.file in self.instance_files

        def loc_of(key: Any) -> Location:
            return location_of(raw, key) if in_instance else top_loc

        params: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                params[key] = self.r.render(context, value)
            except TemplateProblem as exc:
                self.problem(exc.describe(origin), loc_of(key), label, str(key))
                return None
        type_name = params.get("type")
        label = f"{label} ({type_name})"
        if type_name == REPEAT_TYPE:
            return self.make_repeat(params, label, loc_of)
        if type_name in (WAIT_IP_TYPE, WAIT_USB_TYPE):
            return self.make_wait(params, label, loc_of)
        model = self.support.get(type_name) if isinstance(type_name, str) else None
        if model is None:
            self.problem(f"entity type '{type_name}' is not defined by the support definitions"
                         f"{suggest(str(type_name), list(self.support.models))}"
                         + (f" (from {origin})" if origin else ""), loc_of("type"), label,
                         "type")
            return None
        checked = check_fields(model, params, label, loc_of)
        if checked.problems:
            if origin:
                checked.problems = [Problem(f"{p.message} (from {origin})", p.location,
                                            p.entity, p.field) for p in checked.problems]
            self.problems.extend(checked.problems)
            return None
        ent = Entity(model.type, model, checked.fields, label, loc_of(None))
        self.process(ent, loc_of, origin)
        # NB: like ibek, enum keys of sub-entities and repeated entities are not swapped for
        # their values (ibek-support relies on it, e.g. ADCore._NDOverlayN SHAPE: 1).
        return None if ent._failed else ent

    def make_repeat(self, params: dict[str, Any], label: str, loc_of: Any) -> Entity | None:
        values = params.get("values")
        if isinstance(values, str):
            import ast

            with contextlib.suppress(ValueError, SyntaxError):
                values = ast.literal_eval(values)
        if isinstance(values, tuple | range):
            values = list(values)
        if not isinstance(values, list):
            self.problem(f"'values' must give a list, got {describe(values)} (end a Jinja "
                         "expression with '| list')", loc_of("values"), label, "values")
            return None
        params["values"] = values
        params.setdefault("variable", "index")
        params.setdefault("entity_enabled", True)
        if not isinstance(params.get("entity"), dict):
            self.problem("expected a mapping with a 'type'", loc_of("entity"), label, "entity")
            return None
        return Entity(REPEAT_TYPE, None, params, label, loc_of(None))

    def make_wait(self, params: dict[str, Any], label: str, loc_of: Any) -> Entity | None:
        fields: dict[str, Any] = {"type": params["type"], "entity_enabled": True,
                                  "device": "DEVICE", "timeout": 0}
        fields.update(params)
        enabled = lax_bool(fields["entity_enabled"])
        timeout = fields["timeout"]
        if isinstance(timeout, str):
            with contextlib.suppress(ValueError):
                timeout = int(timeout.strip())
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            self.problem(f"expected an integer number of seconds, got {describe(timeout)}",
                         loc_of("timeout"), label, "timeout")
            return None
        if enabled is None:
            self.problem(f"expected true or false, got {describe(fields['entity_enabled'])}",
                         loc_of("entity_enabled"), label, "entity_enabled")
            return None
        fields["timeout"] = timeout
        fields["entity_enabled"] = enabled
        return Entity(str(fields["type"]), None, fields, label, loc_of(None))

    def expand(self, items: list[Any], context: dict[str, Any], top_loc: Location,
               label: str, origin: str = "") -> list[Entity]:
        resolved: list[Entity] = []
        context = dict(context)
        for item in items:
            if isinstance(item, Entity):
                ent: Entity | None = item
                top_loc = item._loc
            else:
                raw, item_label, item_origin = item
                ent = self.make(raw, context, item_label, top_loc, item_origin)
            if ent is None:
                continue
            context.update(ent._dump())
            if ent._type == REPEAT_TYPE:
                if ent._enabled:
                    resolved.extend(self.expand_repeat(ent, context, top_loc))
                continue
            resolved.append(ent)
            model = ent._model
            if model is not None and model.sub_entities and ent._enabled and not ent._failed:
                for i, sub in enumerate(model.sub_entities):
                    sub_label = f"{ent._label} > sub-entity {i + 1}"
                    sub_origin = f"sub_entities of {model.type} at {sub.loc()}"
                    resolved.extend(self.expand([(sub, sub_label, sub_origin)], context,
                                                top_loc, sub_label))
        return resolved

    def expand_repeat(self, rep: Entity, context: dict[str, Any], top_loc: Location
                      ) -> list[Entity]:
        fields = rep._fields
        variable = str(fields.get("variable", "index"))
        inner = fields["entity"]
        resolved: list[Entity] = []
        origin = ""
        if isinstance(inner, YDict) and inner.file not in self.instance_files:
            origin = f"ibek.repeat at {inner.loc()}"
        for index, value in enumerate(fields["values"]):
            context[variable] = value
            context[f"{variable}_num"] = index
            label = f"{rep._label} > {variable}={value!r}"
            resolved.extend(self.expand([(dict(inner) if not isinstance(inner, YDict)
                                          else inner, label, origin)], dict(context),
                                        top_loc, label))
        return resolved


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
    try:
        doc = load_yaml(path)
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
        if extra.resolve() not in seen:
            files.append(extra)
            seen.add(extra.resolve())
    return files


def generate(instance_files: list[Path], defs: list[Path], options: GenerateOptions,
             beside: bool = True) -> Generated:
    """Generate an IOC's start-up files in memory. Raises BerthError listing every problem.

    `defs` are support files or folders. With `beside` (for a config folder), the
    `*.ibek.support.yaml` files in the folder of the first instance file are loaded too."""
    from berth.ioc import render

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
    build = _Build(support, renderer, instance_files)

    problems: list[Problem] = []
    docs = [(p, _load_instance(p, i == 0, problems)) for i, p in enumerate(instance_files)]
    if problems:
        raise BerthError(problems)
    ioc_name = _ioc_name(renderer, docs[0][1])  # type: ignore[arg-type]
    renderer.ioc_name = ioc_name

    # 1. static checks of every top-level entity (an entity with problems is still rendered,
    #    quietly, so that independent mistakes further down are found in the same run)
    tops: list[list[tuple[YDict, str, EntityModel | None, dict[str, Any], bool]]] = []
    for _path, doc in docs:
        assert doc is not None
        entities = doc.get("entities") or []
        items: list[tuple[YDict, str, EntityModel | None, dict[str, Any], bool]] = []
        for i, raw in enumerate(entities):
            index = str(i + 1)
            if not isinstance(raw, YDict) or not isinstance(raw.get("type"), str):
                what = "a mapping with a 'type'" if not isinstance(raw, YDict) else \
                    "a 'type' naming the entity type"
                build.problem(f"each entity needs {what}", location_of(entities, i),
                              f"entity {index}", "type")
                continue
            label = entity_label(index, raw["type"])
            before = len(build.problems)
            model, fields = build.check_entity(raw, label, top=True)
            if model is None and raw["type"] not in (REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE):
                build.unknown.append((raw["type"], label, location_of(raw, "type")))
                build.skipped_values.update(v for v in raw.values() if isinstance(v, str))
                continue
            items.append((raw, label, model, fields, len(build.problems) > before))
            if model is not None and model.id_param:
                ident = raw.get(model.id_param)
                if isinstance(ident, str) and not is_jinja(ident):
                    build.later_ids.setdefault(ident, (label, location_of(raw, None)))
        tops.append(items)
    if build.unknown:
        build.problems.insert(0, _unknown_types_problem(build.unknown, support))

    # 2. render top-level entities in order (ids registered as they come)
    top_entities: list[Any] = []
    for items in tops:
        done: list[Entity] = []
        for raw, label, model, fields, quiet in items:
            if model is None:  # built-in: expanded with the others in step 3
                if not quiet:
                    top_entities.append((raw, label.split(" (")[0], ""))
                continue
            ent = Entity(model.type, model, fields, label, location_of(raw, None), quiet)
            ent._failed = quiet

            def loc_of(key: Any, raw: YDict = raw) -> Location:
                return location_of(raw, key)

            build.process(ent, loc_of)
            done.append(ent)
            top_entities.append(ent)
        for ent in done:  # ibek swaps enum keys for values once a whole file is validated
            build.map_enums(ent)

    # 3. sub-entities and repeats
    all_entities = build.expand(top_entities, {}, Location(instance_files[0]), "")
    if build.problems:
        raise BerthError(build.problems)

    # 4. outputs
    return render.outputs(all_entities, renderer, options, instance_files, ioc_name)


def _unknown_types_problem(unknown: list[tuple[str, str, Location]], support: SupportSet
                           ) -> Problem:
    modules = ", ".join(support.modules) or "(none)"
    if len(unknown) == 1:
        type_name, label, loc = unknown[0]
        return Problem(f"entity type '{type_name}' is not defined by the support definitions"
                       f"{suggest(type_name, list(support.models))}. Modules loaded: {modules}",
                       loc, label, "type")
    by_type: dict[str, list[tuple[str, Location]]] = {}
    for type_name, label, loc in unknown:
        by_type.setdefault(type_name, []).append((label, loc))
    parts = []
    for type_name, uses in by_type.items():
        lines = ", ".join(str(loc.line) for _, loc in uses)
        parts.append(f"{type_name} (line{'s' if len(uses) > 1 else ''} {lines})")
    first_loc = unknown[0][2]
    n = len(by_type)
    missing = sorted({t.rsplit(".", 1)[0] for t in by_type} - set(support.modules))
    absent = f" (modules not loaded: {', '.join(missing)})" if missing else ""
    return Problem(
        f"{n} entity types are not defined by the support definitions{absent}: "
        f"{'; '.join(parts)}. Modules loaded: {modules}", first_loc, field="type")


def write_outputs(generated: Generated, out_dir: Path, opi_dir: Path | None = None) -> list[Path]:
    """Write st.cmd, ioc.subst, (when needed) wait_list.yaml and the `<Device>.pvi.template`s
    into `out_dir`, and the screens into `opi_dir` (default `<out_dir>/opi`), all or nothing."""
    from berth.fsutil import atomic_write_all

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
    try:
        atomic_write_all(files)
    except OSError as exc:
        raise BerthError(Problem(f"cannot write outputs: {exc.strerror or exc}",
                                 Location(exc.filename or out_dir))) from None
    stale = out_dir / "wait_list.yaml"
    if generated.wait_list is None and stale.is_file():
        stale.unlink()  # a wait list left from an earlier generation would be wrong now
    return list(files)
