"""Steps 1-3 of `berth generate` (see `berth.ioc.generate`): check the top-level entities,
render them in order, and expand sub-entities and `ibek.repeat`, the way ibek 4.6 does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

from berth.errors import Location, Problem
from berth.ioc.entity import (
    REPEAT_TYPE,
    WAIT_IP_TYPE,
    WAIT_USB_TYPE,
    Entity,
    TemplateProblem,
    TemplateView,
    check_fields,
    entity_label,
    enum_choices,
    enum_key,
    lax_bool,
    suggest,
)
from berth.ioc.support import EntityModel, SupportSet, is_jinja
from berth.ioc.templates import Renderer
from berth.values import Value
from berth.yamlio import YDict, describe, location_of

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

    LocOf = Callable[[Any], Location]

_REPEAT_KEYS = ("type", "values", "variable", "entity", "entity_enabled")
_WAIT_IP_KEYS = ("type", "device", "address", "timeout", "entity_enabled")
_WAIT_USB_KEYS = ("type", "device", "id", "timeout", "entity_enabled")



class TopEntity(Value):
    """A top-level entity after its static check (step 1)."""

    FIELDS = ("raw", "label", "model", "fields", "quiet")
    raw: YDict
    label: str
    model: EntityModel | None  # None for the built-ins (ibek.repeat, ibek.wait_*)
    fields: dict[str, Any]
    quiet: bool  # problems were found: it is still rendered, but quietly

    def __init__(self, raw: YDict, label: str, model: EntityModel | None,
                 fields: dict[str, Any], quiet: bool):
        self.raw, self.label, self.model, self.fields, self.quiet = (raw, label, model, fields,
                                                                      quiet)


class EntityExpander:
    """State of one generation run: checks, renders and expands entities, collecting
    problems."""

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
            ent.failed = True
            if ent.quiet:
                return
        self.problems.append(Problem(message, loc, label, field_name))

    def template_problem(self, exc: TemplateProblem, ent: Entity, name: str, loc: Location,
                         origin: str = "") -> None:
        self.problem(exc.describe(origin), loc, ent.label, name, ent)

    # -- values -----------------------------------------------------------------------------

    def _lookup(self, ent: Entity, name: str, ref: Any, loc_of: Any) -> tuple[Any, bool]:
        """The entity an object parameter names, and whether the reference is good."""
        if not isinstance(ref, str):
            return ref, True
        target = self.ids.get(ref)
        if target is not None:
            return TemplateView(target), True
        if ref in self.skipped_values:
            ent.failed = ent.quiet = True  # refers to an entity of an unknown type
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
        self.problem(message, loc_of(name), ent.label, name, ent)
        return ref, False

    def _register(self, ent: Entity, name: str, value: Any, loc_of: Any) -> None:
        key = str(value)
        other = self.ids.get(key)
        if other is not None and other is not ent:
            self.problem(f"id '{key}' is already used by {other.label} at {other.loc}",
                         loc_of(name), ent.label, name, ent)
            return
        self.ids[key] = ent

    def process(self, ent: Entity, loc_of: Any, origin: str = "") -> None:
        """Render pre_defines, parameters and post_defines in order (ibek's Entity validator)."""
        model = ent.model
        assert model is not None
        fields = ent.fields
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
                                     f"rendered {describe(value)}", loc_of(name), ent.label, name,
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
                             loc_of("entity_enabled"), ent.label, "entity_enabled", ent)
                as_bool = False
            fields["entity_enabled"] = as_bool

    @staticmethod
    def map_enums(ent: Entity) -> None:
        """Swap enum keys for their values (ibek's fixup_enums), once an entity is done."""
        model = ent.model
        if model is None:
            return
        for name, param in model.parameters.items():
            if param.type == "enum" and param.values and name in ent.fields:
                try:
                    mapped = param.values.get(ent.fields[name])
                except TypeError:  # unhashable value
                    continue
                if mapped is not None:
                    ent.fields[name] = mapped

    # -- steps 1 and 2: top-level entities --------------------------------------------------

    def check_top(self, doc: YDict) -> list[TopEntity]:
        """Static checks of every top-level entity of one instance file. An entity with
        problems is kept (quiet), so that independent mistakes further down are found in the
        same run; one of an unknown type is left out and collected in `unknown`."""
        entities = doc.get("entities") or []
        items: list[TopEntity] = []
        for i, raw in enumerate(entities):
            index = str(i + 1)
            if not isinstance(raw, YDict) or not isinstance(raw.get("type"), str):
                what = "a mapping with a 'type'" if not isinstance(raw, YDict) else \
                    "a 'type' naming the entity type"
                self.problem(f"each entity needs {what}", location_of(entities, i),
                             f"entity {index}", "type")
                continue
            label = entity_label(index, raw["type"])
            before = len(self.problems)
            model, fields = self.check_entity(raw, label, top=True)
            if model is None and raw["type"] not in (REPEAT_TYPE, WAIT_IP_TYPE, WAIT_USB_TYPE):
                self.unknown.append((raw["type"], label, location_of(raw, "type")))
                self.skipped_values.update(v for v in raw.values() if isinstance(v, str))
                continue
            items.append(TopEntity(raw, label, model, fields, len(self.problems) > before))
            if model is not None and model.id_param:
                ident = raw.get(model.id_param)
                if isinstance(ident, str) and not is_jinja(ident):
                    self.later_ids.setdefault(ident, (label, location_of(raw, None)))
        return items

    def render_tops(self, items: list[TopEntity]) -> list[Entity | tuple[YDict, str, str]]:
        """Render one file's top-level entities in order (ids registered as they come). The
        built-ins come back raw, to be expanded with the others by `expand`."""
        out: list[Entity | tuple[YDict, str, str]] = []
        done: list[Entity] = []
        for top in items:
            if top.model is None:
                if not top.quiet:
                    out.append((top.raw, top.label.split(" (")[0], ""))
                continue
            ent = Entity(top.model.type, top.model, top.fields, top.label,
                         location_of(top.raw, None), top.quiet)
            ent.failed = top.quiet

            def loc_of(key: Any, raw: YDict = top.raw) -> Location:
                return location_of(raw, key)

            self.process(ent, loc_of)
            done.append(ent)
            out.append(ent)
        for ent in done:  # ibek swaps enum keys for values once a whole file is validated
            self.map_enums(ent)
        return out

    def unknown_types_problem(self) -> Problem:
        """One problem naming every entity type the support definitions do not define."""
        return _unknown_types_problem(self.unknown, self.support)

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
        return None if ent.failed else ent

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
                top_loc = item.loc
            else:
                raw, item_label, item_origin = item
                ent = self.make(raw, context, item_label, top_loc, item_origin)
            if ent is None:
                continue
            context.update(ent.dump())
            if ent.type == REPEAT_TYPE:
                if ent.enabled:
                    resolved.extend(self.expand_repeat(ent, context, top_loc))
                continue
            resolved.append(ent)
            model = ent.model
            if model is not None and model.sub_entities and ent.enabled and not ent.failed:
                for i, sub in enumerate(model.sub_entities):
                    sub_label = f"{ent.label} > sub-entity {i + 1}"
                    sub_origin = f"sub_entities of {model.type} at {sub.loc()}"
                    resolved.extend(self.expand([(sub, sub_label, sub_origin)], context,
                                                top_loc, sub_label))
        return resolved

    def expand_repeat(self, rep: Entity, context: dict[str, Any], top_loc: Location
                      ) -> list[Entity]:
        fields = rep.fields
        variable = str(fields.get("variable", "index"))
        inner = fields["entity"]
        resolved: list[Entity] = []
        origin = ""
        if isinstance(inner, YDict) and inner.file not in self.instance_files:
            origin = f"ibek.repeat at {inner.loc()}"
        for index, value in enumerate(fields["values"]):
            context[variable] = value
            context[f"{variable}_num"] = index
            label = f"{rep.label} > {variable}={value!r}"
            resolved.extend(self.expand([(dict(inner) if not isinstance(inner, YDict)
                                          else inner, label, origin)], dict(context),
                                        top_loc, label))
        return resolved


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
