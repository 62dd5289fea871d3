"""YAML loading that remembers where every mapping key, value and list item came from.

Mappings load as `YDict` and sequences as `YList`: ordinary dict/list subclasses that also carry
the file name and the 1-based line/column of the container, of each key and of each value, so
that errors can point at the exact place. Scalars follow the YAML 1.2 core schema (as ibek's
ruamel loader does): `yes`/`no`/`on`/`off` stay strings, `1e3` is a float, `10:30` a string.
Merge keys (`<<: *anchor`, `<<: [*a, *b]`) behave as in PyYAML. A key written twice in one
mapping is an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from berth.errors import BerthError, Location, Problem

# (yaml is imported on first parse: a `berth generate` whose files all come from the support
# cache does not pay its ~13 ms)

__all__ = ["YDict", "YList", "load_yaml", "loads_yaml", "location_of"]

Pos = tuple[int, int]  # 1-based line, column


class YDict(dict[Any, Any]):
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


class YList(list[Any]):
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

# YAML 1.2 core schema (plus merge keys), as ruamel.yaml resolves plain scalars; by first char
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


def _add_resolver(tag: str, pattern: str, first: str) -> None:
    regexp = re.compile(pattern, re.X)
    for char in first:
        _RESOLVERS.setdefault(char, []).append((tag, regexp))


_add_resolver(_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add_resolver(_INT, r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$",
              "-+0123456789")
_add_resolver(_FLOAT, r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", "-+0123456789.")
_add_resolver(_MERGE, r"^(?:<<)$", "<")
_add_resolver(_NULL, r"^(?:~|null|Null|NULL)$", "~nN")


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

        class Loader(base):
            def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
                if kind is yaml.ScalarNode:
                    if implicit[0]:
                        if value == "":
                            return _NULL
                        for tag, regexp in _RESOLVERS.get(value[0], ()):
                            if regexp.match(value):
                                return tag
                    return _STR
                return _SEQ if kind is yaml.SequenceNode else _MAP

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


class _Builder:
    """Turns a composed node graph into YDict / YList / scalars, with positions."""

    def __init__(self, file: str):
        import yaml

        self.file = file
        self.done: dict[int, Any] = {}  # anchored nodes appear more than once
        self.yaml = yaml

    def build(self, node: Any) -> Any:
        yaml = self.yaml
        if type(node) is yaml.ScalarNode:
            convert = _SCALARS.get(node.tag)
            if convert is None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unsupported tag {node.tag!r}", node.start_mark)
            return convert(node.value)
        cached = self.done.get(id(node))
        if cached is not None:
            return cached
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


def loads_yaml(text: str, file: str | Path | None = None) -> Any:
    """Parse YAML text; errors become a BerthError naming file, line and column."""
    import yaml

    name = str(file) if file is not None else "<string>"
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _Builder(name).build(node)
    except _DuplicateKey as dup:
        raise BerthError(Problem(
            f"key '{dup.key}' appears twice in one mapping (first at line {dup.first[0]})",
            Location(name, *dup.second))) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark is not None else (0, 0)
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise BerthError(Problem(f"invalid YAML: {what}", Location(name, line, col))) from None
    except yaml.YAMLError as exc:
        raise BerthError(Problem(f"invalid YAML: {exc}", Location(name))) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file (see `loads_yaml`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BerthError(Problem(f"cannot read file: {exc.strerror or exc}", Location(path))) \
            from None
    except UnicodeDecodeError as exc:
        raise BerthError(Problem(f"file is not UTF-8 text: {exc}", Location(path))) from None
    return loads_yaml(text, path)
