"""YAML loading that remembers line numbers, so errors can name file:line for any key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from berth.errors import error

# libyaml's parser when PyYAML was built with it (much faster on big device files).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YDict(dict[str, Any]):
    """A mapping from YAML with the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A sequence from YAML with the 1-based line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


class _Scalars:
    """Resolves scalar nodes (int, bool, str, null…) with one SafeConstructor per file."""

    def __init__(self) -> None:
        self.constructor = yaml.constructor.SafeConstructor()

    def __call__(self, node: yaml.Node) -> Any:
        return self.constructor.construct_object(node, deep=True)


def _convert(node: yaml.Node, path: Path, scalars: _Scalars) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = YDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise error("mapping keys must be plain names", path, key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1)
            key = str(scalars(key_node))
            if key in out:
                raise error(f"duplicate key '{key}'", path, key_node.start_mark.line + 1,
                            key_node.start_mark.column + 1, field=key)
            out[key] = _convert(value_node, path, scalars)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = YList(_convert(item, path, scalars) for item in node.value)
        seq.line = node.start_mark.line + 1
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq
    # Scalars: let the safe constructor decide the type (int, bool, str, null…).
    return scalars(node)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file into YDict/YList/scalars; syntax errors become BerthErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", path) from None
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 0
        column = mark.column + 1 if mark else 0
        raise error(f"invalid YAML: {exc.problem}", path, line, column) from None
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", path) from None
    if node is None:
        return None
    try:
        return _convert(node, path, _Scalars())
    except yaml.MarkedYAMLError as exc:  # e.g. a malformed timestamp or an unknown tag
        mark = exc.problem_mark
        raise error(f"invalid YAML: {exc.problem}", path, mark.line + 1 if mark else 0,
                    mark.column + 1 if mark else 0) from None
