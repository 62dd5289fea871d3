"""EPICS macro expansion, behaving exactly as libCom's macLib does (as used by msi and iocsh).

The rules, checked against macLib itself (see tests/test_msi_maclib.py):

- `$(NAME)` and `${NAME}` are references; the name may itself contain references (`$(A_$(B))`).
- `$(NAME=default)` uses `default` (expanded) when NAME is undefined; `$(NAME,A=1,B=2)` defines
  A and B in a scope that lasts for this one reference.
- Text is copied with its quotes and backslash escapes; inside single quotes no reference is
  expanded, inside double quotes they are. `\\$` stops a `$` from starting a reference.
- Macro *values* (and names, and defaults) are expanded one level down, where quotes and escape
  backslashes are removed: `A="x y"` gives `x y`.
- An undefined reference is kept as `$(NAME,undefined)`; a value that refers back to itself
  (directly or through others) gives `$(NAME,recursive)`.
- Definitions (`A=1, B="x,y", C`) are split the way `macParseDefns` splits them: quotes and escapes
  protect commas, spaces around names and values are dropped, and a bare name undefines it.

Values are expanded lazily and cached until the definitions change, and a reference is parsed once
(`compile_text`), so expanding the same text for thousands of instances costs little per instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Definition = tuple[str, str | None]  # (name, raw value); None undefines the name


_SPACE = frozenset(" \t\n\r\f\v")


def parse_definitions(text: str) -> list[Definition]:
    """Split `A=1, B = "x,y", C` into [(A, '1'), (B, '"x,y"'), (C, None)], as macParseDefns.

    Values keep their quotes and escapes: they are removed when the value is expanded.
    """
    spans: list[tuple[int, int, bool]] = []  # (start, end, is_name_without_value)
    quote = ""
    state = "pre_name"
    start = 0
    i = 0
    n = len(text)

    def close(end: int, no_value: bool) -> None:
        while end > start and text[end - 1] in _SPACE:
            end -= 1
        spans.append((start, end, no_value))

    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c == "'" or c == '"':
            quote = c
        escape = c == "\\" and i + 1 < n
        plain = not quote and not escape
        if state == "pre_name":
            if plain and (c in _SPACE or c == ","):
                i += 1
                continue
            start, state = i, "in_name"
        if state == "in_name":
            if plain and c in "=,":
                close(i, False)
                state = "pre_value"
                if c == ",":  # a name with no value: undefine it
                    spans[-1] = (*spans[-1][:2], True)
                    state = "pre_name"
                i += 2 if escape else 1
                continue
        elif state == "pre_value":
            if plain and c in _SPACE:
                i += 1
                continue
            start, state = i, "in_value"
        if state == "in_value" and plain and c == ",":
            close(i, False)
            state = "pre_name"
        i += 2 if escape else 1
    if state == "in_name":
        close(n, True)
    elif state == "pre_value":
        start = n
        close(n, False)
    elif state == "in_value":
        close(n, False)

    # Names and values alternate: a name span is followed by its value span unless it has none.
    result: list[Definition] = []
    k = 0
    while k < len(spans):
        s, e, no_value = spans[k]
        name = _unquote(text[s:e])
        if no_value:
            result.append((name, None))
            k += 1
        else:
            vs, ve, _ = spans[k + 1]
            result.append((name, text[vs:ve]))
            k += 2
    return result


def _unquote(raw: str) -> str:
    """Remove quotes and escape backslashes (how macLib cleans up a defined name)."""
    if not _SPECIAL.search(raw):
        return raw
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(raw):
        c = raw[i]
        if quote and c == quote:
            quote = ""
        elif not quote and c in "'\"":
            quote = c
        elif c == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


# Characters that make a value need real expansion (otherwise it is its own value).
_SPECIAL = re.compile(r"[$'\"\\]")
# Characters the top-level scanner stops at; everything between is copied as is.
_LEVEL0_STOP = re.compile(r"[$'\"\\]")
_SIMPLE_REF = re.compile(r"\$(?:\(([^$'\"\\)=,]*)\)|\{([^$'\"\\}=,]*)\})\Z")
_DEFAULT_REF = re.compile(
    r"\$(?:\(([^$'\"\\)=,]*)=([^$'\"\\),]*)\)|\{([^$'\"\\}=,]*)=([^$'\"\\},]*)\})\Z"
)


@dataclass
class Report:
    """What went wrong while expanding: names left undefined and references found recursive."""

    undefined: list[str] = field(default_factory=list)
    recursive: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.undefined or self.recursive)

    def merge(self, other: Report) -> None:
        self.undefined.extend(other.undefined)
        self.recursive.extend(other.recursive)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference found in text at compile time; `name` is set when it is a plain `$(NAME)`
    (optionally with a literal default), the common case that needs no parsing at run time."""

    raw: str  # the whole line: macLib may read a default value past the reference's own end
    start: int = 0  # where the reference starts in `raw`
    name: str | None = None
    default: str | None = None
    line: int = 0  # 1-based line in the compiled file, for messages


@dataclass
class _Context:
    table: MacroTable
    report: Report
    use_cache: bool
    visited: set[str] = field(default_factory=set)
    quiet: bool = False  # undefined references stay `$(X)`, unreported


class MacroTable:
    """Scoped macro definitions: an outer scope plus pushed ones (per instance, per reference)."""

    def __init__(self, definitions: Mapping[str, str] | None = None) -> None:
        self._scopes: list[dict[str, str]] = [dict(definitions or {})]
        # name -> expanded value, for values that expanded cleanly. A value that needed no
        # expansion stays valid until its own name changes; one that did (listed in `_derived`)
        # may depend on any other macro, so it goes at every change.
        self._clean: dict[str, str] = {}
        self._derived: set[str] = set()
        self._dirty: dict[str, tuple[str, Report]] = {}  # values with problems; like derived
        self._missing: set[str] = set()  # names known to be undefined

    # ---- definitions -------------------------------------------------------------------
    def push(self) -> None:
        self._scopes.append({})  # nothing visible changes until something is defined in it

    def pop(self) -> None:
        if len(self._scopes) > 1:
            self._changed(self._scopes.pop())

    def define(self, definitions: Iterable[Definition]) -> None:
        """Install definitions in the innermost scope; a None value undefines the name in every
        scope (as macLib does)."""
        top = self._scopes[-1]
        names = []
        for name, value in definitions:
            names.append(name)
            if value is None:
                for scope in self._scopes:
                    scope.pop(name, None)
            else:
                top[name] = value
        self._changed(names)

    def define_text(self, text: str) -> None:
        self.define(parse_definitions(text))

    def lookup(self, name: str) -> str | None:
        """The raw value of the innermost definition of `name`."""
        for scope in reversed(self._scopes):
            value = scope.get(name)
            if value is not None:
                return value
        return None

    def _changed(self, names: Iterable[str]) -> None:
        clean, missing = self._clean, self._missing
        for name in names:
            clean.pop(name, None)
            missing.discard(name)
        if self._derived:
            for name in self._derived:
                clean.pop(name, None)
            self._derived.clear()
        if self._dirty:
            self._dirty.clear()

    # ---- expansion ---------------------------------------------------------------------
    def value(self, name: str, report: Report) -> str | None:
        """The expanded value of `name` (None when undefined); problems go to `report`."""
        clean = self._clean.get(name)
        if clean is not None:
            return clean
        known = self._dirty.get(name)
        if known is not None:
            report.merge(known[1])
            return known[0]
        raw = self.lookup(name)
        if raw is None:
            return None
        if not _SPECIAL.search(raw):
            self._clean[name] = raw
            return raw
        if len(raw) > 1 and raw[0] == '"' == raw[-1] and not _SPECIAL.search(raw, 1, len(raw) - 1):
            self._clean[name] = raw[1:-1]  # "text": the quotes go, nothing else to do
            return raw[1:-1]
        # Expanded one level down with no reference marked visited yet, as macLib does when
        # it refreshes all values before expanding a string.
        own = Report()
        out: list[str] = []
        _trans(raw, 0, 1, "", out, False, _Context(self, own, use_cache=False))
        text = "".join(out)
        if own:
            self._dirty[name] = (text, own)
            report.merge(own)
        else:
            self._clean[name] = text
            self._derived.add(name)
        return text

    def expand(self, text: str, report: Report | None = None) -> str:
        """Expand a string (quotes and escapes in it are kept, as for a template line)."""
        report = report if report is not None else Report()
        if "$" not in text:
            return text
        out: list[str] = []
        _trans(text, 0, 0, "", out, False, _Context(self, report, use_cache=True))
        return "".join(out)

    def expand_ref(self, ref: Ref, report: Report) -> str:
        """Expand one compiled reference."""
        if ref.name is not None:
            if ref.name not in self._missing:
                value = self.value(ref.name, report)
                if value is not None:
                    return value
                self._missing.add(ref.name)
            if ref.default is not None:
                return ref.default
            report.undefined.append(ref.name)
            return f"$({ref.name},undefined)"
        out: list[str] = []
        _refer(ref.raw, ref.start, 0, out, False, _Context(self, report, use_cache=True))
        return "".join(out)

    def expand_compiled(self, parts: Iterable[str | Ref], report: Report) -> str:
        """Expand text split by `compile_text`; a plain reference whose value is known, or
        whose macro is known to be undefined and has a default, costs a look-up or two."""
        clean, missing = self._clean, self._missing
        out: list[str] = []
        append = out.append
        for part in parts:
            if isinstance(part, str):
                append(part)
                continue
            name = part.name
            if name is not None:
                value = clean.get(name)
                if value is not None:
                    append(value)
                    continue
                if part.default is not None and name in missing:
                    append(part.default)
                    continue
            append(self.expand_ref(part, report))
        return "".join(out)


def compile_text(text: str, line: int = 0) -> list[str | Ref]:
    """Split one line of top-level text into literal pieces and references, once, for repeated
    expansion. Quote state is followed as macLib follows it (a reference inside single quotes
    stays text); like msi, each line is expanded on its own, so pass one line at a time.
    """
    parts: list[str | Ref] = []
    quote = ""
    pos = 0
    literal_start = 0
    n = len(text)
    while True:
        match = _LEVEL0_STOP.search(text, pos)
        if match is None:
            break
        i = match.start()
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
                pos = i + 1
                continue
        elif c == "'" or c == '"':
            quote = c
            pos = i + 1
            continue
        if c == "$":
            if i + 1 < n and text[i + 1] in "({" and quote != "'":
                end = _refer(text, i, 0, None, False, None)
                if i > literal_start:
                    parts.append(text[literal_start:i])
                parts.append(_make_ref(text, i, end, line))
                literal_start = pos = end
                continue
            pos = i + 1
        elif c == "\\" and i + 1 < n:
            pos = i + 2
        else:
            pos = i + 1
    if literal_start < n:
        parts.append(text[literal_start:])
    return parts


def _make_ref(text: str, start: int, end: int, line: int) -> Ref:
    raw = text[start:end]
    simple = _SIMPLE_REF.match(raw)
    if simple:
        name = simple.group(1) if simple.group(1) is not None else simple.group(2)
        return Ref(text, start, name, None, line)
    with_default = _DEFAULT_REF.match(raw)
    if with_default:
        g = with_default.groups()
        name, default = (g[0], g[1]) if g[0] is not None else (g[2], g[3])
        return Ref(text, start, name, default, line)
    return Ref(text, start, None, None, line)


def _trans(raw: str, pos: int, level: int, term: str, out: list[str] | None, skip: bool,
           ctx: _Context | None) -> int:
    """Copy `raw` from `pos` up to a character in `term` (or the end), expanding references.

    Level 0 is the user's text (quotes and escapes kept); deeper levels are names, defaults and
    values (quotes and escape backslashes dropped). With `out` None nothing is evaluated: only the
    extent is found. `skip` reproduces macLib's scan past a default value, in which a backslash
    does not protect the next character. Returns the position of the terminator.
    """
    n = len(raw)
    discard = level > 0
    quote = ""
    while pos < n:
        c = raw[pos]
        if c in term:
            break
        if quote:
            if c == quote:
                quote = ""
                if discard:
                    pos += 1
                    continue
        elif c == '"' or c == "'":
            quote = c
            if discard:
                pos += 1
                continue
        if c == "$" and pos + 1 < n and raw[pos + 1] in "({" and quote != "'":
            pos = _refer(raw, pos, level, out, skip, ctx)
            continue
        if c == "\\" and pos + 1 < n:
            if skip:
                pos += 1
                continue
            if out is not None:
                if not discard:
                    out.append("\\")
                out.append(raw[pos + 1])
            pos += 2
            continue
        if out is not None:
            out.append(c)
        pos += 1
    return pos


def _refer(raw: str, pos: int, level: int, out: list[str] | None, skip: bool,
           ctx: _Context | None) -> int:
    """Handle the reference starting at raw[pos] == '$'; return the position after it."""
    n = len(raw)
    close = ")" if raw[pos + 1] == "(" else "}"
    pos += 2
    evaluate = out is not None and ctx is not None
    name_out: list[str] | None = [] if evaluate else None
    name_report = Report()
    if evaluate:
        assert ctx is not None
        report, ctx.report = ctx.report, name_report
        pos = _trans(raw, pos, level + 1, close + "=,", name_out, False, ctx)
        ctx.report = report
    else:
        pos = _trans(raw, pos, level + 1, close + "=,", None, False, None)
    default_at = -1
    if pos < n and raw[pos] == "=":
        default_at = pos + 1
        pos = _trans(raw, default_at, level + 1, close + ",", None, True, None)
    # `$(NAME,A=1,B=2)`: each value is expanded as it is defined, in a scope of its own that
    # lasts for this reference; references still undefined then stay as `$(X)`, for later.
    pushed = False
    while pos < n and raw[pos] == ",":
        if evaluate and not pushed:
            assert ctx is not None
            ctx.table.push()
            pushed = True
            quiet, ctx.quiet = ctx.quiet, True
        def_name: list[str] | None = [] if evaluate else None
        pos = _trans(raw, pos + 1, level + 1, close + "=,", def_name, False,
                     ctx if evaluate else None)
        if pos < n and raw[pos] == "=":
            def_value: list[str] | None = [] if evaluate else None
            if evaluate:
                assert ctx is not None and def_name is not None and def_value is not None
                pos = _trans(raw, pos + 1, level + 1, close + ",", def_value, False, ctx)
                ctx.table.define([("".join(def_name), "".join(def_value))])
            else:
                pos = _trans(raw, pos + 1, level + 1, close + ",", None, False, None)
    if pushed:
        assert ctx is not None
        ctx.quiet = quiet
    elif evaluate:
        # macLib forgets problems met in the name when scoped definitions follow it.
        assert ctx is not None
        ctx.report.merge(name_report)
    if pos < n:
        pos += 1
    if not evaluate:
        return pos
    assert out is not None and ctx is not None and name_out is not None
    name = "".join(name_out)
    table = ctx.table
    use_cache = ctx.use_cache
    if pushed:
        ctx.use_cache = False
    try:
        raw_value = table.lookup(name)
        if raw_value is not None:
            if name in ctx.visited:
                if ctx.quiet:
                    out.append(f"$({name})")
                else:
                    ctx.report.recursive.append(name)
                    out.append(f"$({name},recursive)")
            elif ctx.use_cache:
                out.append(table.value(name, ctx.report) or "")
            else:
                ctx.visited.add(name)
                _trans(raw_value, 0, level + 1, "", out, False, ctx)
                ctx.visited.discard(name)
        elif default_at >= 0:
            _trans(raw, default_at, level + 1, close + ",", out, False, ctx)
        elif ctx.quiet:
            out.append(f"$({name})")
        else:
            ctx.report.undefined.append(name)
            out.append(f"$({name},undefined)")
    finally:
        if pushed:
            table.pop()
            ctx.use_cache = use_cache
    return pos
