"""Jinja expressions of the shapes support files use most, evaluated without Jinja.

`{{ idx | int + 1 }}`, `{{ range(N) | list }}`, `{{ 'ADAravis-' ~ camera.P }}`,
`{{ a if b == 'x' else c }}`: importing and compiling Jinja costs more than the rest of a
generation run, so such expressions are parsed here once into a small tree and evaluated with
Jinja's meaning (its operator precedence, its `int`/`float`/`list`/`lower`/`upper`/`string`
filters). The subset is pure: names, attributes, literals, `+ - ~`, comparisons, `and or not`,
`if/else`, `default()`, `range()` and `_global.get_env()`/`get()`. Anything else fails to
parse (`None`), and any value or error only Jinja knows how to treat raises `NotSimple`, so the
caller renders that template with Jinja and results and messages stay Jinja's.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # (typing is not imported on the generate path)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Node = tuple[Any, ...]


class NotSimple(Exception):
    """Only Jinja knows what this template gives (or which error it raises)."""


_TOKEN = re.compile(r"""\s*(?:(?P<end>}})|(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>\d+(?:\.\d+)?(?![\w.]))|(?P<string>'[^'\\]*'|"[^"\\]*")
    |(?P<op>==|!=|<=|>=|[<>~+\-().,|=]))""", re.VERBOSE)
CONSTANTS = {"true": True, "false": False, "none": None,
              "True": True, "False": False, "None": None}
_COMPARE = ("==", "!=", "<", ">", "<=", ">=")
_FILTERS = ("int", "float", "list", "lower", "upper", "string")
_PURE_GLOBALS = ("get_env", "get")  # `set` and `incrementor` change state: Jinja renders those


class _Parser:
    """Recursive descent in Jinja's precedence order (condexpr, or, and, not, compare,
    + -, ~, unary with its filters, primary with its postfixes)."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self, kind: str, value: str | None = None) -> str | None:
        tok_kind, tok_value = self.tokens[self.pos]
        if tok_kind == kind and (value is None or tok_value == value):
            self.pos += 1
            return tok_value
        return None

    def expect(self, kind: str, value: str | None = None) -> str:
        got = self.take(kind, value)
        if got is None:
            raise NotSimple
        return got

    def condexpr(self) -> Node:
        node = self.or_()
        while self.take("name", "if") is not None:
            test = self.or_()
            self.expect("name", "else")  # (Jinja's else-less form yields an undefined)
            node = ("cond", test, node, self.condexpr())
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("name", "or") is not None:
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("name", "and") is not None:
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.take("name", "not") is not None:
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        node = self.math1()
        kind, value = self.peek()
        if kind == "op" and value in _COMPARE:
            self.pos += 1
            node = ("cmp", value, node, self.math1())
            kind, value = self.peek()
            if kind == "op" and value in _COMPARE or (kind, value) in (("name", "in"),
                                                                        ("name", "is")):
                raise NotSimple  # chained comparisons and tests: Jinja's
        return node

    def math1(self) -> Node:
        node = self.concat()
        while True:
            op = self.take("op", "+") or self.take("op", "-")
            if op is None:
                return node
            node = ("bin", op, node, self.concat())

    def concat(self) -> Node:
        node = self.unary()
        while self.take("op", "~") is not None:
            node = ("concat", node, self.unary())
        return node

    def unary(self, with_filter: bool = True) -> Node:
        if self.take("op", "-") is not None:
            node: Node = ("neg", self.unary(False))
        elif self.take("op", "+") is not None:
            node = ("pos", self.unary(False))
        else:
            node = self.primary()
        node = self.postfix(node)
        while with_filter and self.take("op", "|") is not None:
            name = self.expect("name")
            if name == "default" and self.take("op", "(") is not None:
                node = ("default", node, self.condexpr())  # (one argument: not `boolean`)
                self.expect("op", ")")
                continue
            if name not in _FILTERS:
                raise NotSimple
            node = ("filter", name, node)
        return node

    def primary(self) -> Node:
        kind, value = self.peek()
        self.pos += 1
        if kind == "name":
            return ("const", CONSTANTS[value]) if value in CONSTANTS else ("name", value)
        if kind == "number":
            return ("const", float(value) if "." in value else int(value))
        if kind == "string":
            return ("const", value[1:-1])
        if (kind, value) == ("op", "("):
            node = self.condexpr()
            self.expect("op", ")")
            return node
        raise NotSimple

    def postfix(self, node: Node) -> Node:
        while True:
            if self.take("op", ".") is not None:
                node = ("attr", node, self.expect("name"))
            elif self.take("op", "(") is not None:
                args: list[Node] = []
                while self.take("op", ")") is None:
                    if args:
                        self.expect("op", ",")
                    kind, _ = self.peek()
                    if kind == "name" and self.tokens[self.pos + 1] == ("op", "="):
                        raise NotSimple  # keyword arguments: Jinja's
                    args.append(self.condexpr())
                if node != ("name", "range") and not (
                        node[0] == "attr" and node[1] == ("name", "_global")
                        and node[2] in _PURE_GLOBALS):
                    raise NotSimple  # other calls (and `set`, `incrementor`): Jinja's
                node = ("call", node, tuple(args))
            else:
                return node


def parse(source: str, start: int) -> tuple[Node, int] | None:
    """The expression of the `{{` that ends at `start` and the position after its `}}`; None
    when it is not in the subset (or uses whitespace control, `{{-`)."""
    if source[start:start + 1] in ("-", "+"):
        return None
    tokens: list[tuple[str, str]] = []
    pos = start
    while True:
        match = _TOKEN.match(source, pos)
        if match is None:
            return None
        pos = match.end()
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        if kind == "end":
            break
    parser = _Parser(tokens)
    try:
        node = parser.condexpr()
        parser.expect("end")
    except (NotSimple, IndexError):
        return None
    return node, pos


def _to_int(value: Any) -> int:
    """Jinja's `int` filter: strings in base 10, "4.5" as 4, anything else 0."""
    try:
        return int(value, 10) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


_APPLY: dict[str, Callable[[Any], Any]] = {
    "int": _to_int, "float": _to_float, "list": list, "string": str,
    "lower": lambda v: str(v).lower(), "upper": lambda v: str(v).upper(),
}


_UNDEFINED = object()


class Evaluation:
    """One render's evaluation: `lookup(path)` resolves a dotted name as Jinja does (raising
    for an undefined one), `get_env`/`get` are `_global`'s, `shadowed` the names a template's
    fields define (they hide `range`); `iterations` is what range() may still yield."""

    def __init__(self, lookup: Callable[[tuple[str, ...]], Any], globals_: Any,
                 shadowed: Callable[[str], bool], iterations: int):
        self.lookup, self.globals, self.shadowed = lookup, globals_, shadowed
        self.iterations = iterations

    def value(self, node: Node) -> Any:
        try:
            return self._eval(node)
        except NotSimple:
            raise
        except Exception:  # an undefined name, a type error...: Jinja says what it means
            raise NotSimple from None

    def _path(self, node: Node) -> tuple[str, ...] | None:
        if node[0] == "name":
            return (node[1],)
        if node[0] == "attr":
            head = self._path(node[1])
            return None if head is None else (*head, node[2])
        return None

    def _eval(self, node: Node) -> Any:
        kind = node[0]
        if kind == "const":
            return node[1]
        if kind in ("name", "attr"):
            path = self._path(node)
            if path is None or path[0] in ("_global", "range"):
                raise NotSimple
            return self.lookup(path)
        if kind == "call":
            return self._call(node[1], [self._eval(arg) for arg in node[2]])
        if kind == "filter":
            return _APPLY[node[1]](self._eval(node[2]))
        if kind == "default":
            return self._default(node[1], node[2])
        if kind == "concat":
            return str(self._eval(node[1])) + str(self._eval(node[2]))
        if kind == "bin":
            left, right = self._eval(node[2]), self._eval(node[3])
            return left + right if node[1] == "+" else left - right
        if kind == "cmp":
            return _compare(node[1], self._eval(node[2]), self._eval(node[3]))
        if kind == "and":
            left = self._eval(node[1])
            return self._eval(node[2]) if left else left
        if kind == "or":
            left = self._eval(node[1])
            return left if left else self._eval(node[2])
        if kind == "not":
            return not self._eval(node[1])
        if kind == "neg":
            return -self._eval(node[1])
        if kind == "pos":
            return +self._eval(node[1])
        # "cond"
        return self._eval(node[2]) if self._eval(node[1]) else self._eval(node[3])

    def _default(self, node: Node, fallback: Node) -> Any:
        """Jinja's `value | default(fallback)`: the fallback when the value's last name or
        attribute is undefined (an undefined name before it stays an error)."""
        value = self._maybe(node)
        otherwise = self._maybe(fallback)  # (evaluated even when not used, as by Jinja)
        if value is not _UNDEFINED:
            return value
        if otherwise is _UNDEFINED:
            raise NotSimple
        return otherwise

    def _maybe(self, node: Node) -> Any:
        """`node`'s value, or _UNDEFINED for a name or attribute that is not there (Jinja's
        undefined value, an error only once it is used)."""
        path = self._path(node)
        if path is None or path[0] in ("_global", "range"):
            return self._eval(node)
        if len(path) > 1:
            self.lookup(path[:-1])  # (an attribute of an undefined value is an error)
        try:
            return self.lookup(path)
        except NotSimple:
            raise
        except Exception:
            return _UNDEFINED

    def _call(self, target: Node, args: list[Any]) -> Any:
        if target == ("name", "range") and not self.shadowed("range"):
            numbers = range(*args)
            if len(numbers) > self.iterations:
                raise NotSimple  # past the budget: Jinja's path reports it
            self.iterations -= len(numbers)
            return numbers
        if target[0] == "attr" and target[1] == ("name", "_global") and \
                target[2] in _PURE_GLOBALS:
            return getattr(self.globals, target[2])(*args)
        raise NotSimple


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == ">":
        return bool(left > right)
    if op == "<=":
        return bool(left <= right)
    return bool(left >= right)
