"""Support definitions (`*.ibek.support.yaml`, ibek format 3/4): strict loading into value classes.

Every key is checked (an unknown key is an error with file:line:column), every problem in every
file is collected before anything is raised, and several files load into one `SupportSet` in
which an entity type may be defined only once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from berth import fsutil
from berth.errors import BerthError, Location, Problem
from berth.values import Value
from berth.yamlio import (
    MISSING,
    Reader,
    YDict,
    YList,
    describe,
    load_yaml,
    loads_yaml,
)

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

    from berth.ioc.support_cache import SupportCache

PARAM_TYPES = ("str", "int", "float", "bool", "enum", "object", "id", "dict", "list")
DEFINE_TYPES = ("str", "int", "float", "bool", "list")
WHEN = ("first", "every", "last")


def is_jinja(value: Any) -> bool:
    """A string that holds a Jinja expression, accepted in place of any typed value."""
    return isinstance(value, str) and "{{" in value


class Param(Value):
    __slots__ = FIELDS = ("name", "type", "description", "default", "values", "loc")
    name: str
    type: str
    description: str
    default: Any  # MISSING: the instance must give it
    values: dict[Any, Any] | None  # enum: key (what users write) -> value (rendered)
    loc: Location

    def __init__(self, name: str, type: str, description: str, default: Any = MISSING,
                 values: dict[Any, Any] | None = None, loc: Location | None = None):
        self.name, self.type, self.description = name, type, description
        self.default, self.values = default, values
        self.loc = Location() if loc is None else loc

    @property
    def required(self) -> bool:
        return self.default is MISSING


class Define(Value):
    __slots__ = FIELDS = ("name", "value", "type", "description", "loc")
    name: str
    value: Any
    type: str | None  # None: no conversion
    description: str
    loc: Location

    def __init__(self, name: str, value: Any, type: str | None, description: str,
                 loc: Location | None = None):
        self.name, self.value, self.type, self.description = name, value, type, description
        self.loc = Location() if loc is None else loc


class ScriptItem(Value):
    __slots__ = FIELDS = ("kind", "when", "value", "loc")
    kind: str  # "text" | "comment"
    when: str  # first | every | last (other words on text items behave as every, like ibek)
    value: str
    loc: Location

    def __init__(self, kind: str, when: str, value: str, loc: Location | None = None):
        self.kind, self.when, self.value = kind, when, value
        self.loc = Location() if loc is None else loc


class Database(Value):
    __slots__ = FIELDS = ("file", "enabled", "args", "loc", "args_locs")
    file: str
    enabled: str
    args: dict[str, str | None]
    loc: Location
    args_locs: dict[str, Location]

    def __init__(self, file: str, enabled: str, args: dict[str, str | None],
                 loc: Location | None = None, args_locs: dict[str, Location] | None = None):
        self.file, self.enabled, self.args = file, enabled, args
        self.loc = Location() if loc is None else loc
        self.args_locs = {} if args_locs is None else args_locs


class EnvVar(Value):
    __slots__ = FIELDS = ("name", "value", "loc")
    name: str
    value: str
    loc: Location

    def __init__(self, name: str, value: str, loc: Location | None = None):
        self.name, self.value = name, value
        self.loc = Location() if loc is None else loc


class Pvi(Value):
    __slots__ = FIELDS = ("yaml_path", "ui_index", "ui_macros", "pv", "pv_prefix", "loc")
    yaml_path: str
    ui_index: bool
    ui_macros: dict[str, str | None] | None
    pv: bool
    pv_prefix: str
    loc: Location

    def __init__(self, yaml_path: str, ui_index: bool = True,
                 ui_macros: dict[str, str | None] | None = None, pv: bool = False,
                 pv_prefix: str = "", loc: Location | None = None):
        self.yaml_path, self.ui_index, self.ui_macros = yaml_path, ui_index, ui_macros
        self.pv, self.pv_prefix = pv, pv_prefix
        self.loc = Location() if loc is None else loc


class EntityModel(Value):
    __slots__ = FIELDS = ("module", "name", "description", "parameters", "pre_defines",
                          "post_defines", "pre_init", "post_init", "databases", "env_vars",
                          "pvi", "sub_entities", "loc", "id_param")
    module: str
    name: str
    description: str
    parameters: dict[str, Param]
    pre_defines: dict[str, Define]
    post_defines: dict[str, Define]
    pre_init: list[ScriptItem]
    post_init: list[ScriptItem]
    databases: list[Database]
    env_vars: list[EnvVar]
    pvi: Pvi | None
    sub_entities: list[YDict]
    loc: Location
    id_param: str | None

    def __init__(self, module: str, name: str, description: str,
                 parameters: dict[str, Param] | None = None,
                 pre_defines: dict[str, Define] | None = None,
                 post_defines: dict[str, Define] | None = None,
                 pre_init: list[ScriptItem] | None = None,
                 post_init: list[ScriptItem] | None = None,
                 databases: list[Database] | None = None, env_vars: list[EnvVar] | None = None,
                 pvi: Pvi | None = None, sub_entities: list[YDict] | None = None,
                 loc: Location | None = None, id_param: str | None = None):
        self.module, self.name, self.description = module, name, description
        self.parameters = {} if parameters is None else parameters
        self.pre_defines = {} if pre_defines is None else pre_defines
        self.post_defines = {} if post_defines is None else post_defines
        self.pre_init = [] if pre_init is None else pre_init
        self.post_init = [] if post_init is None else post_init
        self.databases = [] if databases is None else databases
        self.env_vars = [] if env_vars is None else env_vars
        self.pvi = pvi
        self.sub_entities = [] if sub_entities is None else sub_entities
        self.loc = Location() if loc is None else loc
        self.id_param = id_param

    @property
    def type(self) -> str:
        return entity_type(self.module, self.name)


def entity_type(module: str, name: str) -> str:
    """An entity type as instances name it: `module.name`."""
    return f"{module}.{name}"


class SupportSet(Value):
    """Entity models from one or more support files, by type (`module.name`). Models from the
    support cache stay pickled until their type is first asked for (`get`, `models`)."""

    FIELDS = ("models", "files")
    files: list[Path]

    def __init__(self, models: dict[str, EntityModel] | None = None,
                 files: list[Path] | None = None):
        self._models: dict[str, EntityModel | _Stored] = {
            type_name: model for type_name, model in (models or {}).items()}
        self.files = [] if files is None else files

    @property
    def models(self) -> dict[str, EntityModel]:
        """Every model, by type, in the order the files define them."""
        return {type_name: self._model(type_name) for type_name in self._models}

    def get(self, type_name: str) -> EntityModel | None:
        return self._model(type_name) if type_name in self._models else None

    def _model(self, type_name: str) -> EntityModel:
        model = self._models[type_name]
        if type(model) is _Stored:
            model = self._models[type_name] = model.load()
        assert type(model) is EntityModel
        return model

    def add(self, model: EntityModel | _Stored) -> EntityModel | None:
        """Add a model unless its type is there already; returns the one there."""
        if model.type in self._models:
            return self._model(model.type)
        self._models[model.type] = model
        return None

    @property
    def modules(self) -> list[str]:
        return sorted({m.module for m in self._models.values()})


class _Stored:
    """An entity model still pickled in the support cache, with what loading it needs."""

    __slots__ = ("module", "name", "data", "source")

    def __init__(self, module: str, name: str, data: bytes, source: _StoredFile):
        self.module, self.name, self.data, self.source = module, name, data, source

    @property
    def type(self) -> str:
        return entity_type(self.module, self.name)

    def load(self) -> EntityModel:
        model = self.source.cache.model(self.data, self.source.name)
        return model if model is not None else self.source.parse_again(self.name)


class _StoredFile:
    """The support file a cache entry was made from."""

    __slots__ = ("path", "name", "key", "cache", "parsed")

    def __init__(self, path: Path, name: str, key: str, cache: SupportCache):
        self.path, self.name, self.key, self.cache = path, name, key, cache
        self.parsed: dict[str, EntityModel] | None = None  # by name, once parsed again

    def parse_again(self, model_name: str) -> EntityModel:
        """The model `model_name` parsed from the file, for an entry damaged inside (which is
        stored anew; the file is parsed once, however many of its models are damaged): the
        file's bytes are those hashed, unless it changed meanwhile."""
        if self.parsed is None:
            chk = Checker()
            models = _parse(self.path, None, self.name, chk) or []
            if chk.problems:
                raise BerthError(chk.problems)
            self.cache.put_models(self.key, self.name, models)
            self.parsed = {m.name: m for m in models}
        found = self.parsed.get(model_name)
        if found is None:
            raise BerthError(Problem(
                f"changed while berth read it: entity model '{model_name}' is gone",
                Location(self.path)))
        return found


# strict checking: the one reader of berth (`yamlio.Reader`); `Checker` stays the local name
Checker = Reader


# --------------------------------------------------------------------------------------------
# reading one support file

_TOP_KEYS = ("module", "entity_models", "shared")
_MODEL_KEYS = ("name", "description", "parameters", "pre_defines", "post_defines", "pre_init",
               "post_init", "databases", "env_vars", "pvi", "sub_entities", "shared")
_PARAM_KEYS = ("type", "description", "default", "values")
_DEFINE_KEYS = ("description", "value", "type")
_SCRIPT_KEYS = ("type", "when", "value")
_DB_KEYS = ("file", "enabled", "args")
_ENV_KEYS = ("name", "value")
_PVI_KEYS = ("yaml_path", "ui_index", "ui_macros", "pv", "pv_prefix")


def _check_default(chk: Checker, ptype: str, value: Any, where: YDict, what: str) -> None:
    ok = True
    if value is None:
        return
    if ptype in ("str", "id"):
        ok = isinstance(value, str)
    elif ptype == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or is_jinja(value)
    elif ptype == "float":
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or is_jinja(value)
    elif ptype == "bool":
        ok = isinstance(value, bool) or is_jinja(value)
    elif ptype == "dict":
        ok = isinstance(value, dict) or is_jinja(value)
    elif ptype == "list":
        ok = isinstance(value, list) or is_jinja(value)
    if not ok:
        chk.add(f"default of {what} must be of type {ptype} (or a Jinja string), got "
                f"{describe(value)}", where.loc("default"), "default")


def _read_param(chk: Checker, name: str, data: Any, where: YDict, model: str) -> Param | None:
    what = f"parameter '{name}' of {model}"
    spec = chk.mapping(data, where, name, what)
    if spec is None:
        return None
    chk.keys(spec, _PARAM_KEYS, ("type", "description"), what)
    ptype = spec.get("type")
    if ptype not in PARAM_TYPES:
        if "type" in spec:
            chk.add(f"type of {what} must be one of {', '.join(PARAM_TYPES)}, got "
                    f"{describe(ptype)}", spec.loc("type"), "type")
        return None
    description = chk.string(spec, "description", what, "")
    default = spec.get("default", MISSING)
    if default is not MISSING:
        _check_default(chk, ptype, default, spec, what)
        if default is None:
            default = MISSING  # ibek: a null default means "no default"
        elif ptype == "float" and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)  # as ibek's model of the support file converts it
        elif ptype == "int" and isinstance(default, float) and default.is_integer():
            default = int(default)
    values = None
    if ptype == "enum":
        raw = spec.get("values")
        if "values" not in spec:
            chk.add(f"{what} is an enum and needs 'values'", spec.loc(), "values")
        elif isinstance(raw, dict):
            values = dict(raw)
        else:
            chk.add(f"'values' of {what} must be a mapping, got {describe(raw)}",
                    spec.loc("values"), "values")
    elif "values" in spec:
        chk.add(f"'values' is only allowed on enum parameters ({what} is {ptype})",
                spec.key_loc("values"), "values")
    return Param(name, ptype, description, default, values, where.key_loc(name))


def _read_defines(chk: Checker, data: Any, where: YDict, key: str, model: str
                  ) -> dict[str, Define]:
    result: dict[str, Define] = {}
    defines = chk.mapping(data, where, key, f"'{key}' of {model}")
    if defines is None:
        return result
    for name, spec_raw in defines.items():
        what = f"{key[:-1]} '{name}' of {model}"
        spec = chk.mapping(spec_raw, defines, name, what)
        if spec is None:
            continue
        chk.keys(spec, _DEFINE_KEYS, ("description", "value"), what)
        dtype = spec.get("type", "str")
        if dtype is not None and dtype not in DEFINE_TYPES:
            chk.add(f"type of {what} must be one of {', '.join(DEFINE_TYPES)}, got "
                    f"{describe(dtype)}", spec.loc("type"), "type")
            continue
        description = chk.string(spec, "description", what, "")
        result[str(name)] = Define(str(name), spec.get("value"), dtype, description,
                                   defines.key_loc(name))
    return result


def _read_script(chk: Checker, data: Any, where: YDict, key: str, model: str
                 ) -> list[ScriptItem]:
    items: list[ScriptItem] = []
    for seq, i, spec, what in chk.mappings(data, where, key, model, f"{key} item"):
        chk.keys(spec, _SCRIPT_KEYS, (), what)
        kind = spec.get("type", "text")
        if kind not in ("text", "comment"):
            chk.add(f"type of {what} must be 'text' or 'comment', got {describe(kind)}",
                    spec.loc("type"), "type")
            continue
        when = chk.string(spec, "when", what, "every")
        if kind == "comment" and when not in WHEN:
            chk.add(f"'when' of {what} must be one of {', '.join(WHEN)}, got {describe(when)}",
                    spec.loc("when"), "when")
        value = chk.string(spec, "value", what, "")
        items.append(ScriptItem(kind, when, value, seq.loc(i)))
    return items


def _read_databases(chk: Checker, data: Any, where: YDict, model: str) -> list[Database]:
    result: list[Database] = []
    for seq, i, spec, what in chk.mappings(data, where, "databases", model, "database"):
        chk.keys(spec, _DB_KEYS, ("file",), what)
        file = chk.string(spec, "file", what, "")
        enabled = spec.get("enabled", "True")
        if isinstance(enabled, bool):
            enabled = str(enabled)
        elif not isinstance(enabled, str):
            chk.add(f"'enabled' of {what} must be a Jinja string or boolean, got "
                    f"{describe(enabled)}", spec.loc("enabled"), "enabled")
            enabled = "True"
        args: dict[str, str | None] = {}
        locs: dict[str, Location] = {}
        raw_args = spec.get("args")
        if raw_args is not None:
            for arg, value, loc in chk.string_entries(raw_args, spec, "args", what, "arg", what,
                                                      numbers=True) or ():
                args[arg] = value
                locs[arg] = loc
        result.append(Database(file, enabled, args, seq.loc(i), locs))
    return result


def _read_env_vars(chk: Checker, data: Any, where: YDict, model: str) -> list[EnvVar]:
    result: list[EnvVar] = []
    for seq, i, spec, what in chk.mappings(data, where, "env_vars", model, "env_var"):
        chk.keys(spec, _ENV_KEYS, ("name", "value"), what)
        result.append(EnvVar(chk.string(spec, "name", what, ""),
                             chk.string(spec, "value", what, ""), seq.loc(i)))
    return result


def _read_pvi(chk: Checker, data: Any, where: YDict, model: str) -> Pvi | None:
    if data is None:
        return None
    what = f"'pvi' of {model}"
    spec = chk.mapping(data, where, "pvi", what)
    if spec is None:
        return None
    chk.keys(spec, _PVI_KEYS, ("yaml_path",), what)
    macros = spec.get("ui_macros")
    ui_macros: dict[str, str | None] | None = None
    if macros is not None:
        entries = chk.string_entries(macros, spec, "ui_macros", what, "ui_macro", model)
        if entries is not None:
            ui_macros = {name: value for name, value, _loc in entries}
    return Pvi(
        yaml_path=chk.string(spec, "yaml_path", what, ""),
        ui_index=chk.boolean(spec, "ui_index", what, True),
        ui_macros=ui_macros,
        pv=chk.boolean(spec, "pv", what, False),
        pv_prefix=chk.string(spec, "pv_prefix", what, ""),
        loc=where.loc("pvi"),
    )


def _read_sub_entities(chk: Checker, data: Any, where: YDict, model: str) -> list[YDict]:
    result: list[YDict] = []
    for _seq, _i, spec, what in chk.mappings(data, where, "sub_entities", model, "sub_entity"):
        if "type" not in spec:
            chk.add(f"{what} is missing required key 'type'", spec.loc(), "type")
            continue
        if not isinstance(spec["type"], str):
            chk.add(f"'type' of {what} must be a string, got {describe(spec['type'])}",
                    spec.loc("type"), "type")
            continue
        result.append(spec)
    return result


def _read_model(chk: Checker, module: str, raw: Any, seq: YList, index: int
                ) -> EntityModel | None:
    spec = chk.mapping(raw, seq, index, f"entity_models item {index + 1}")
    if spec is None:
        return None
    name = spec.get("name")
    label = (entity_type(module, name) if isinstance(name, str)
             else f"entity_models item {index + 1}")
    chk.keys(spec, _MODEL_KEYS, ("name", "description"), f"entity model {label}")
    if not isinstance(name, str):
        if "name" in spec:
            chk.add(f"'name' of {label} must be a string, got {describe(name)}",
                    spec.loc("name"), "name")
        return None
    model = EntityModel(module, name, chk.string(spec, "description", label, ""),
                        loc=seq.loc(index))
    params = spec.get("parameters")
    if params is not None:
        pmap = chk.mapping(params, spec, "parameters", f"'parameters' of {label}")
        for pname, pspec in (pmap or {}).items():
            param = _read_param(chk, str(pname), pspec, pmap, label)  # type: ignore[arg-type]
            if param is not None and param.name == "type":
                # ibek's entity class replaces such a parameter by its own `type` key (the
                # entity type), so it can never be given: ADCore.NDAttributes has one
                continue
            if param is not None:
                model.parameters[param.name] = param
                if param.type == "id" and model.id_param is None:
                    model.id_param = param.name
    if spec.get("pre_defines") is not None:
        model.pre_defines = _read_defines(chk, spec["pre_defines"], spec, "pre_defines", label)
    if spec.get("post_defines") is not None:
        model.post_defines = _read_defines(chk, spec["post_defines"], spec, "post_defines",
                                           label)
    if spec.get("pre_init") is not None:
        model.pre_init = _read_script(chk, spec["pre_init"], spec, "pre_init", label)
    if spec.get("post_init") is not None:
        model.post_init = _read_script(chk, spec["post_init"], spec, "post_init", label)
    if spec.get("databases") is not None:
        model.databases = _read_databases(chk, spec["databases"], spec, label)
    if spec.get("env_vars") is not None:
        model.env_vars = _read_env_vars(chk, spec["env_vars"], spec, label)
    model.pvi = _read_pvi(chk, spec.get("pvi"), spec, label)
    if spec.get("sub_entities") is not None:
        model.sub_entities = _read_sub_entities(chk, spec["sub_entities"], spec, label)
    return model


def read_support(data: Any, file: str | Path, chk: Checker) -> list[EntityModel]:
    """Check one loaded support document and return its entity models."""
    if not isinstance(data, dict):
        chk.add(f"a support file must be a mapping with 'module' and 'entity_models', got "
                f"{describe(data)}", Location(file, 1, 1))
        return []
    top: YDict = data  # type: ignore[assignment]
    chk.keys(top, _TOP_KEYS, ("module", "entity_models"), "support file")
    module = top.get("module")
    if not isinstance(module, str):
        if "module" in top:
            chk.add(f"'module' must be a string, got {describe(module)}", top.loc("module"),
                    "module")
        return []
    seq = top.get("entity_models")
    if seq is None:
        return []
    models_seq = chk.sequence(seq, top, "entity_models", "'entity_models'")
    if models_seq is None:
        return []
    models: list[EntityModel] = []
    seen: dict[str, EntityModel] = {}
    for i, raw in enumerate(models_seq):
        model = _read_model(chk, module, raw, models_seq, i)
        if model is None:
            continue
        if model.name in seen:
            chk.add(f"entity model '{model.name}' is defined twice in this file (first at line "
                    f"{seen[model.name].loc.line})", model.loc, "name")
            continue
        seen[model.name] = model
        models.append(model)
    return models


def load_support(paths: Iterable[str | Path]) -> SupportSet:
    """Load support files into one set; every problem in every file is raised together.

    Files unchanged since berth last read them come from the support cache
    (`berth.ioc.support_cache`) instead of being parsed and checked again."""
    from berth.ioc.support_cache import SupportCache

    cache = SupportCache.open()
    chk = Checker()
    result = SupportSet()
    for path in paths:
        path = Path(path)
        models = _load_file(path, chk, cache)
        if models is None:
            continue
        result.files.append(path)
        for model in models:
            previous = result.add(model)
            if previous is not None:
                loc = model.load().loc if isinstance(model, _Stored) else model.loc
                chk.add(f"entity type '{model.type}' is defined twice: here and in "
                        f"{previous.loc}", loc, "name")
    if chk.problems:
        raise BerthError(chk.problems)
    return result


def _load_file(path: Path, chk: Checker, cache: SupportCache | None
               ) -> list[EntityModel] | list[_Stored] | None:
    """The entity models of one support file (None when it cannot be parsed); problems go to
    `chk`. With a cache, the bytes read are the bytes hashed, parsed and stored."""
    text = None
    key = None
    name = str(path)  # the one string every location of the models holds (see the cache)
    try:
        content = fsutil.read_bytes(path)
        text = content.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        pass  # load_yaml below reports it, with its usual message
    else:
        if cache is not None:
            key = cache.key(content)
            stored = cache.get_models(key)
            if stored is not None:
                source = _StoredFile(path, name, key, cache)
                return [_Stored(module, model, data, source) for module, model, data in stored]
    before = len(chk.problems)
    models = _parse(path, text, name, chk)
    if models is not None and cache is not None and key is not None \
            and len(chk.problems) == before:
        cache.put_models(key, name, models)
    return models


def _parse(path: Path, text: str | None, name: str, chk: Checker) -> list[EntityModel] | None:
    """The entity models of one support file, parsed from `text` (None: read `path`); None
    when it cannot be parsed; problems go to `chk`."""
    try:
        if text is None:
            data = load_yaml(path)
        else:
            if "\r" in text:  # as read_text does (universal newlines)
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            data = loads_yaml(text, name)
    except BerthError as err:
        chk.problems.extend(err.problems)
        return None
    return read_support(data, path, chk)
