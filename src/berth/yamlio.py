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

import yaml

from berth.errors import BerthError, Location, Problem

try:  # the C parser is several times faster; construction stays in Python either way
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

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


class _Loader(_BaseLoader):
    """Safe loader: YAML 1.2 core scalars, position-carrying containers."""

    file_name: str | None = None

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = YDict()
    data.file = loader.file_name
    data.pos = _pos(node.start_mark)
    yield data
    explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    first_explicit = len(node.value) - explicit
    seen: dict[Any, Pos] = {}
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found unhashable key", key_node.start_mark) from None
        kpos = _pos(key_node.start_mark)
        if i >= first_explicit:
            if key in seen:
                raise _DuplicateKey(key, seen[key], kpos)
            seen[key] = kpos
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_pos[key] = kpos
        data.value_pos[key] = _pos(value_node.start_mark)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Any:
    data = YList()
    data.file = loader.file_name
    data.pos = _pos(node.start_mark)
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.item_pos.append(_pos(child.start_mark))


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    if text[:1] in "+-":
        text = text[1:]
    if text.startswith("0x"):
        return sign * int(text[2:], 16)
    if text.startswith("0o"):
        return sign * int(text[2:], 8)
    if text.startswith("0b"):
        return sign * int(text[2:], 2)
    return sign * int(text)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

# YAML 1.2 core schema resolvers (plus merge keys), as ruamel.yaml resolves plain scalars.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?[0-9][0-9_]*|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


def loads_yaml(text: str, file: str | Path | None = None) -> Any:
    """Parse YAML text; errors become a BerthError naming file, line and column."""
    name = str(file) if file is not None else "<string>"
    loader = _Loader(text)
    loader.file_name = name
    try:
        return loader.get_single_data()
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
