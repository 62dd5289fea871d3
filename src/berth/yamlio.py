"""YAML loading that remembers where every mapping key, value and list item came from.

Mappings load as `YDict` and sequences as `YList`: ordinary dict/list subclasses that also carry
the file name and the 1-based line/column of the container, of each key and of each value, so
that errors can point at the exact place. Scalars follow the YAML 1.2 core schema (as ibek's
ruamel loader does): `yes`/`no`/`on`/`off` stay strings, `1e3` is a float, `10:30` a string.
Merge keys (`<<: *anchor`, `<<: [*a, *b]`) behave as in PyYAML. A key written twice in one
mapping is an error.

Helm values files are read by Helm the YAML 1.1 way (`yes`, `on`, `y` are booleans, `010` is 8,
even as keys: `on:` is the key "true"); with `helm=True` such unquoted scalars are refused with
their location instead of meaning one thing to berth and another to Helm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from berth.errors import BerthError, Location, Problem
from berth.fsutil import read_text

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

    _Dict = dict[Any, Any]
    _List = list[Any]
else:
    _Dict, _List = dict, list

# (yaml is imported on first parse: a `berth generate` whose files all come from the support
# cache does not pay its ~13 ms)

__all__ = ["MISSING", "Reader", "YDict", "YList", "describe", "load_yaml", "loads_yaml",
           "location_of"]

Pos = tuple[int, int]  # 1-based line, column


class YDict(_Dict):
    """A dict that knows its file and where each key and value sits in it."""

    __slots__ = ("file", "pos", "key_pos", "value_pos")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file: str | None = None
        self.pos: Pos = (0, 0)
        self.key_pos: dict[Any, Pos] = {}
        self.value_pos: dict[Any, Pos] = {}

    def loc(self, key: Any = None) -> Location:
        """Where the value of `key` is (or the mapping itself when key is None / unknown)."""
        pos = self.value_pos.get(key, self.pos) if key is not None else self.pos
        return Location(self.file, *pos)

    def key_loc(self, key: Any) -> Location:
        return Location(self.file, *self.key_pos.get(key, self.pos))


class YList(_List):
    """A list that knows its file and where each item sits in it."""

    __slots__ = ("file", "pos", "item_pos")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.file: str | None = None
        self.pos: Pos = (0, 0)
        self.item_pos: list[Pos] = []

    def loc(self, index: int | None = None) -> Location:
        if index is None or index >= len(self.item_pos):
            return Location(self.file, *self.pos)
        return Location(self.file, *self.item_pos[index])


def _represent_plain(dumper: Any, data: Any) -> Any:
    if isinstance(data, dict):
        return dumper.represent_dict(data)
    return dumper.represent_list(data)




def location_of(container: Any, key: Any = None) -> Location:
    """Location of `container[key]` (or of the container) when it is a YDict/YList."""
    if isinstance(container, YDict | YList):
        return container.loc(key)
    return Location()


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: Pos, second: Pos):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

# YAML 1.2 core schema (plus merge keys), as ruamel.yaml resolves plain scalars: (tag, pattern,
# the first characters it can start with); compiled with the loader, on first use (a cached
# instance or support file is never parsed, and compiling these costs ~1.5 ms)
_RESOLVER_PATTERNS = (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_INT, r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$",
     "-+0123456789"),
    (_FLOAT, r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", "-+0123456789."),
    (_MERGE, r"^(?:<<)$", "<"),
    (_NULL, r"^(?:~|null|Null|NULL)$", "~nN"),
)


def _resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """The patterns of `_RESOLVER_PATTERNS` by first character."""
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, first in _RESOLVER_PATTERNS:
        regexp = re.compile(pattern, re.X)
        for char in first:
            table.setdefault(char, []).append((tag, regexp))
    return table


_LOADER: Any = None


def _loader_class() -> Any:
    """The (C) parser and composer of PyYAML with a YAML 1.2 core resolver (made on first
    use); nodes are turned into values by `_Builder`, not by PyYAML's constructor."""
    global _LOADER
    if _LOADER is None:
        import yaml

        try:  # the C parser is several times faster; construction stays in Python either way
            from yaml import CSafeLoader as base
        except ImportError:  # pragma: no cover - libyaml missing
            from yaml import SafeLoader as base  # type: ignore[assignment]

        resolvers = _resolvers()

        class Loader(base):
            def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
                if kind is yaml.ScalarNode:
                    if implicit[0]:
                        if value == "":
                            return _NULL
                        for tag, regexp in resolvers.get(value[0], ()):
                            if regexp.match(value):
                                return tag
                    return _STR
                return _SEQ if kind is yaml.SequenceNode else _MAP

        # values read here are written out again (helm --values, compose specs) as plain YAML;
        # a YDict exists only after a parse, so registering here is early enough
        for dumper in {yaml.SafeDumper, getattr(yaml, "CSafeDumper", yaml.SafeDumper)}:
            dumper.add_representer(YDict, _represent_plain)
            dumper.add_representer(YList, _represent_plain)
        _LOADER = Loader
    return _LOADER


def _to_int(text: str) -> int:
    text = text.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    if text[:1] in "+-":
        text = text[1:]
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if text.startswith(prefix):
            return sign * int(text[2:], base)
    return sign * int(text)


def _to_float(text: str) -> float:
    text = text.replace("_", "").lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_SCALARS: dict[str, Any] = {
    _STR: str, _INT: _to_int, _FLOAT: _to_float,
    _BOOL: lambda text: text.lower() == "true", _NULL: lambda text: None,
}


# plain scalars YAML 1.1 (go-yaml v2, so Helm) reads as a boolean or an octal, 1.2 does not
_YAML11_ONLY = (r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
                r"|[-+]?0[0-7_]+)$")


# An alias shares its anchor's value, but whatever walks the document (templates, Helm, JSON)
# sees it copied: "billion laughs" documents are refused once their aliases, expanded, would
# add more than this many values; and nesting deeper than MAX_DEPTH (no real file comes near).
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 100


class _TooBig(Exception):
    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message, self.mark = message, mark


class _Builder:
    """Turns a composed node graph into YDict / YList / scalars, with positions."""

    def __init__(self, file: str, helm: bool = False):
        import yaml

        self.file = file
        self.done: dict[int, Any] = {}  # anchored nodes appear more than once
        self.sizes: dict[int, int] = {}  # values in each container, aliases expanded
        self.count = 0  # values built so far, aliases expanded
        self.aliased = 0  # of which come from aliases
        self.depth = 0
        self.yaml = yaml
        # Helm values: plain scalars YAML 1.1 would read otherwise are reported
        self.yaml11_only = re.compile(_YAML11_ONLY) if helm else None
        self.ambiguous: list[Problem] = []

    def build(self, node: Any) -> Any:
        yaml = self.yaml
        if type(node) is yaml.ScalarNode:
            self.count += 1
            if self.yaml11_only and not node.style and self.yaml11_only.match(node.value):
                self._ambiguous(node)
            convert = _SCALARS.get(node.tag)
            if convert is None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unsupported tag {node.tag!r}", node.start_mark)
            try:
                return convert(node.value)
            except ValueError as exc:  # e.g. an integer of more than 4300 digits
                raise _TooBig(f"cannot read this number: {exc}", node.start_mark) from None
        cached = self.done.get(id(node))
        if cached is not None:
            size = self.sizes.get(id(node), 1)  # (no size yet: an alias inside its anchor)
            self.count += size
            self.aliased += size
            if self.aliased > MAX_ALIAS_EXPANSION:
                raise _TooBig(f"aliases expand to more than {MAX_ALIAS_EXPANSION} values "
                              "(an 'anchor bomb'?); write the values out instead",
                              node.start_mark)
            return cached
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
        start = self.count
        try:
            return self._container(node)
        finally:
            self.depth -= 1
            self.sizes[id(node)] = self.count - start + 1
            self.count += 1

    def _container(self, node: Any) -> Any:
        yaml = self.yaml
        if type(node) is yaml.SequenceNode:
            seq = YList()
            seq.file, seq.pos = self.file, _pos(node.start_mark)
            self.done[id(node)] = seq
            for child in node.value:
                seq.append(self.build(child))
                seq.item_pos.append(_pos(child.start_mark))
            return seq
        data = YDict()
        data.file, data.pos = self.file, _pos(node.start_mark)
        self.done[id(node)] = data
        sources: list[YDict] = []
        explicit = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged = self.build(value_node)
                items = merged if isinstance(merged, list) else [merged]
                if not all(isinstance(m, YDict) for m in items):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        "expected a mapping or list of mappings for merging",
                        value_node.start_mark)
                sources.extend(items)
            else:
                explicit.append((key_node, value_node))
        for source in reversed(sources):  # as PyYAML: the first source wins, last one's order
            for key, value in source.items():
                data[key] = value
                data.key_pos[key] = source.key_pos[key]
                data.value_pos[key] = source.value_pos[key]
        seen: dict[Any, Pos] = {}
        for key_node, value_node in explicit:
            key = self.build(key_node)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found unhashable key", key_node.start_mark) from None
            kpos = _pos(key_node.start_mark)
            if key in seen:
                raise _DuplicateKey(key, seen[key], kpos)
            seen[key] = kpos
            data[key] = self.build(value_node)
            data.key_pos[key] = kpos
            data.value_pos[key] = _pos(value_node.start_mark)
        return data

    def _ambiguous(self, node: Any) -> None:
        text = node.value
        if text[-1:].isdigit():
            helm, berth, fix = (f"the number {int(text.replace('_', ''), 8)}",
                                f"the number {_to_int(text)}",
                                f"{int(text.replace('_', ''), 8)} or {_to_int(text)}")
        else:
            helm, berth = (f"{str(text.lower() in ('y', 'yes', 'on')).lower()} (a boolean)",
                           f"the text '{text}'")
            fix = "true or false"
        self.ambiguous.append(Problem(
            f"'{text}' is ambiguous: Helm reads it as {helm}, YAML 1.2 (berth) as {berth}; "
            f"write {fix} or quote it (\"{text}\")", Location(self.file, *_pos(node.start_mark))))


def _line_column(text: str, offset: int) -> Pos:
    """1-based line and column of a character offset into `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def loads_yaml(text: str, file: str | Path | None = None, *, helm: bool = False) -> Any:
    """Parse YAML text; errors become a BerthError naming file, line and column. `helm`:
    refuse scalars Helm's YAML 1.1 reads differently (see the module docstring)."""
    import yaml

    name = str(file) if file is not None else "<string>"
    try:
        loader = _loader_class()(text)
    except UnicodeEncodeError as exc:  # (lone surrogates, from text decoded leniently)
        raise BerthError(Problem("invalid YAML: the text is not valid Unicode",
                                 Location(name, *_line_column(text, exc.start)))) from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise BerthError(Problem(f"invalid YAML: nested more than {MAX_DEPTH} levels deep",
                                     Location(name, 1, 1))) from None
        builder = _Builder(name, helm)
        data = None if node is None else builder.build(node)
        if builder.ambiguous:
            raise BerthError(builder.ambiguous)
        return data
    except _DuplicateKey as dup:
        raise BerthError(Problem(
            f"key '{dup.key}' appears twice in one mapping (first at line {dup.first[0]})",
            Location(name, *dup.second))) from None
    except _TooBig as big:
        raise BerthError(Problem(big.message, Location(name, *_pos(big.mark)))) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids (NUL...): at an offset
        line, column = _line_column(text, exc.position)
        what = (f"character {exc.character!r} is not allowed in YAML"
                if isinstance(exc.character, str) else str(exc.reason))
        raise BerthError(Problem(f"invalid YAML: {what}", Location(name, line, column))) \
            from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark is not None else (0, 0)
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise BerthError(Problem(f"invalid YAML: {what}", Location(name, line, col))) from None
    except yaml.YAMLError as exc:
        raise BerthError(Problem(f"invalid YAML: {exc}", Location(name))) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path, *, helm: bool = False) -> Any:
    """Read and parse a YAML file (see `loads_yaml`)."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise BerthError(Problem(f"cannot read file: {exc.strerror or exc}", Location(path))) \
            from None
    except UnicodeDecodeError as exc:
        raise BerthError(Problem(f"file is not UTF-8 text: {exc}", Location(path))) from None
    return loads_yaml(text, path, helm=helm)


# --- strict reading of a loaded document ------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"  # pickled (support cache) as the one module-level instance


MISSING: Any = _Missing()  # no value given (where None would be a value)


def describe(value: Any) -> str:
    """How a YAML value reads in an error message: its kind and a short rendering."""
    if value is None:
        return "nothing (null)"
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value))
    if kind is None:
        kind = "mapping" if isinstance(value, dict) else "list" if isinstance(value, list) \
            else type(value).__name__
        return kind
    text = repr(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"


class Reader:
    """Reads a loaded document strictly (known keys, expected kinds) and collects every
    problem, located and in one wording, so the user sees them all at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, message: str, loc: Location, field_name: str | None = None,
            entity: str | None = None) -> None:
        self.problems.append(Problem(message, loc, entity, field_name))

    def mapping(self, value: Any, where: Any, key: Any, what: str,
                entity: str | None = None) -> YDict | None:
        """`value` (found at `where[key]`, or at the Location `where`) when it is a mapping."""
        if isinstance(value, dict):
            return value  # type: ignore[return-value]
        loc = where if isinstance(where, Location) else location_of(where, key)
        self.add(f"{what} must be a mapping, got {describe(value)}", loc,
                 key if isinstance(key, str) else None, entity)
        return None

    def sequence(self, value: Any, where: Any, key: Any, what: str,
                 entity: str | None = None) -> YList | None:
        if isinstance(value, list):
            return value  # type: ignore[return-value]
        loc = where if isinstance(where, Location) else location_of(where, key)
        self.add(f"{what} must be a list, got {describe(value)}", loc,
                 key if isinstance(key, str) else None, entity)
        return None

    def mappings(self, data: Any, where: YDict, key: str, model: str, noun: str
                 ) -> Iterator[tuple[YList, int, YDict, str]]:
        """The mapping items of the list `where[key]` (each one checked to be a mapping)."""
        seq = self.sequence(data, where, key, f"'{key}' of {model}")
        if seq is None:
            return
        for i, raw in enumerate(seq):
            what = f"{noun} {i + 1} of {model}"
            spec = self.mapping(raw, seq, i, what)
            if spec is not None:
                yield seq, i, spec, what

    def string_entries(self, value: Any, where: YDict, key: str, what: str, noun: str,
                       owner: str, numbers: bool = False,
                       ) -> list[tuple[str, str | None, Location]] | None:
        """(name, value, where the name is) of each entry of the mapping `where[key]` whose
        value is a string or null (with `numbers`, a boolean or number too, as text); any other
        value is reported ("<noun> '<name>' of <owner> must be a string") and left out. None
        when `where[key]` is not a mapping (reported too)."""
        mapping = self.mapping(value, where, key, f"'{key}' of {what}")
        if mapping is None:
            return None
        entries: list[tuple[str, str | None, Location]] = []
        for name, item in mapping.items():
            if item is not None and not isinstance(item, str):
                if numbers and isinstance(item, bool | int | float):
                    item = str(item)
                else:
                    self.add(f"{noun} '{name}' of {owner} must be a string, got "
                             f"{describe(item)}", mapping.loc(name), str(name))
                    continue
            entries.append((str(name), item, mapping.key_loc(name)))
        return entries

    def keys(self, data: YDict, allowed: Sequence[str], required: Sequence[str],
             what: str, entity: str | None = None) -> None:
        for key in data:
            if key not in allowed:
                self.add(f"unknown key '{key}' in {what}; expected one of: "
                         f"{', '.join(allowed)}", data.key_loc(key), str(key), entity)
        for key in required:
            if key not in data:
                self.add(f"{what} is missing required key '{key}'", data.loc(), key, entity)

    def string(self, data: YDict, key: str, what: str, default: Any = MISSING,
               allow_none: bool = False) -> Any:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, str) or (allow_none and value is None):
            return value
        self.add(f"'{key}' of {what} must be a string, got {describe(value)}",
                 data.loc(key), key)
        return default if default is not MISSING else ""

    def text(self, data: YDict, key: str, what: str, entity: str | None = None,
             required: bool = False, default: str = "") -> str:
        """A string, or a number read as text; null or absent give `default`."""
        if key not in data or data[key] is None:
            if required:
                self.add(f"{what} is missing required key '{key}'", data.loc(), key, entity)
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.add(f"'{key}' of {what} must be text, got {describe(value)}",
                     data.loc(key), key, entity)
            return default
        return str(value)

    def boolean(self, data: YDict, key: str, what: str, default: bool) -> bool:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool):
            return value
        self.add(f"'{key}' of {what} must be true or false, got {describe(value)}",
                 data.loc(key), key)
        return default
