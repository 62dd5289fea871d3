"""A pure-Python `msi`: expand EPICS substitution files and templates into a database.

Substitution files (as msi and `dbLoadTemplate` read them)::

    global { P=BL01 }                       # definitions for everything below, anywhere
    file "$(ADCORE)/db/x.template" {        # file names may use -M macros / the environment
        pattern { A, B }                    # then one row per instance
                { 1, "two words" }
        global { Q=2 }
    }
    file y.template { { A=1, B="x" } }      # or definitions given by name

Each instance expands its template in a scope of its own over the globals. Templates may hold
`include "file"` (searched along the include path) and `substitute "A=1,B=2"` lines (definitions
for the rest of the instance). Macro expansion itself lives in `berth.epics.macros` (macLib rules).

Templates are read and split into text and references once per call, so a substitution file of
thousands of instances of the same template costs one dictionary look-up per reference.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from berth.epics.macros import Definition, MacroTable, Ref, Report, compile_text
from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write, read_text

SUBSTITUTION_SUFFIXES = (".substitutions", ".subst", ".sub", ".substitution")
_MAX_PROBLEMS = 50  # per call: beyond this, one summary line


# ---------------------------------------------------------------------------------------------
# Substitution files
# ---------------------------------------------------------------------------------------------

# Every character outside whitespace starts one of these, so nothing is skipped silently.
_TOKEN = re.compile(
    r"""
    (?P<comment>\#[^\n]*)
  | (?P<lbrace>\{) | (?P<rbrace>\}) | (?P<comma>,) | (?P<equals>=)
  | (?P<quote>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')
  | (?P<open_quote>["'])
  | (?P<word>[^\s"'{},=\#][^\s"{},=]*)
    """,
    re.VERBOSE,
)
_KIND = {"lbrace": "{", "rbrace": "}", "comma": ",", "equals": "=", "quote": "quote",
         "open_quote": "open_quote", "word": "word", "comment": "comment"}

# A token is (kind, text, offset): kind one of { } , = word quote eof; quotes keep their quotes.
# Plain tuples, as there are about ten per instance; lines and columns are worked out from the
# offset only when a message needs them.
_Token = tuple[str, str, int]


def _value(token: _Token) -> str:
    """A token as a macro value: quotes are kept (macLib removes them when it expands the value),
    single quotes become double ones, as dbLoadTemplate does."""
    kind, text, _ = token
    if kind == "quote" and text[0] == "'":
        return f'"{text[1:-1]}"'
    return text


def _plain(token: _Token) -> str:
    """A token as a name: quotes and escapes removed."""
    kind, text, _ = token
    if kind == "quote":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


class _Lines:
    """Turns offsets in a file into Locations (file, line, column), when one is needed."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._starts: list[int] | None = None

    def at(self, offset: int) -> Location:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect_right(self._starts, offset)
        return Location(self.path, line, offset - self._starts[line - 1] + 1)


@dataclass(frozen=True, slots=True)
class _Globals:
    definitions: list[Definition]


@dataclass(frozen=True, slots=True)
class _Row:
    definitions: list[Definition]
    offset: int
    lines: _Lines

    @property
    def location(self) -> Location:
        return self.lines.at(self.offset)


@dataclass(slots=True)
class _FileSet:
    name: str  # as written (macros not yet expanded)
    location: Location
    rows: list[_Row | _Globals] = field(default_factory=list)


class _SubstitutionParser:
    """Recursive descent over the tokens; every mistake names file, line and column."""

    def __init__(self, text: str, path: Path) -> None:
        self.lines = _Lines(path, text)
        kinds = _KIND
        self.tokens: list[_Token] = [
            (kinds[m.lastgroup], m.group(), m.start())  # type: ignore[index]
            for m in _TOKEN.finditer(text) if m.lastgroup != "comment"]
        self.tokens.append(("eof", "", len(text)))
        for token in self.tokens:
            if token[0] == "open_quote":
                raise BerthError(Problem("unterminated string (strings must end on their line)",
                                         self.lines.at(token[2])))
        self.pos = 0

    def fail(self, message: str, token: _Token | None = None) -> BerthError:
        token = token or self.tokens[self.pos]
        return BerthError(Problem(message, self.lines.at(token[2])))

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def skip_commas(self) -> None:
        while self.tokens[self.pos][0] == ",":
            self.pos += 1

    def expect_open(self, what: str) -> _Token:
        token = self.take()
        if token[0] != "{":
            raise self.fail(f"expected '{{' to open {what}, found {_describe(token)}", token)
        return token

    def unterminated(self, opening: _Token, what: str) -> BerthError:
        return self.fail(f"unterminated {what}: '{{' opened here is never closed", opening)

    def parse(self) -> list[_Globals | _FileSet]:
        items: list[_Globals | _FileSet] = []
        while True:
            kind, text, _ = self.peek()
            if kind == "eof":
                return items
            if kind == "word" and text == "global":
                self.take()
                items.append(self.globals_block())
            elif kind == "word" and text == "file":
                self.take()
                items.append(self.file_block())
            else:
                raise self.fail(f"expected 'file' or 'global', found {_describe(self.peek())}")

    def globals_block(self) -> _Globals:
        opening = self.expect_open("'global'")
        return _Globals(self.definitions(opening, "global block"))

    def file_block(self) -> _FileSet:
        name = self.take()
        if name[0] not in ("word", "quote") or not _plain(name):
            raise self.fail(f"expected a template file name after 'file', found "
                            f"{_describe(name)}", name)
        fileset = _FileSet(_plain(name), self.lines.at(name[2]))
        opening = self.expect_open(f"the instances of {fileset.name}")
        kind, text, _ = self.peek()
        if kind == "word" and text == "pattern":
            self.take()
            self.pattern_body(fileset, opening)
        else:
            self.definitions_body(fileset, opening)
        return fileset

    def next_row(self, fileset: _FileSet, file_open: _Token) -> _Token | None:
        """In a file block: skip commas and take any `global` blocks (kept as rows in order);
        the token that starts the next row, or None after the block's closing brace."""
        while True:
            self.skip_commas()
            kind, text, _ = token = self.peek()
            if kind == "}":
                self.take()
                return None
            if kind == "eof":
                raise self.unterminated(file_open, f"file block '{fileset.name}'")
            if kind == "word" and text == "global":
                self.take()
                fileset.rows.append(self.globals_block())
                continue
            return token

    def pattern_body(self, fileset: _FileSet, file_open: _Token) -> None:
        names_open = self.expect_open("the pattern names")
        names: list[str] = []
        while True:
            self.skip_commas()
            token = self.take()
            if token[0] == "}":
                break
            if token[0] == "eof":
                raise self.unterminated(names_open, "pattern")
            if token[0] not in ("word", "quote"):
                raise self.fail(f"expected a macro name, found {_describe(token)}", token)
            names.append(_plain(token))
        tokens = self.tokens
        while (first := self.next_row(fileset, file_open)) is not None:
            if first[0] == "word" and tokens[self.pos + 1][0] == "{":
                self.take()  # an old-style row name before the values: ignored, as EPICS does
            row_open = self.expect_open("a row of values")
            values: list[str] = []
            pos = self.pos
            while True:  # the hot loop: one pass per value of every row
                kind, text, _ = value = tokens[pos]
                pos += 1
                if kind == "word" or kind == "quote":
                    values.append(text if text[0] != "'" else _value(value))
                elif kind == "}":
                    break
                elif kind == "eof":
                    raise self.unterminated(row_open, "row of values")
                elif kind != ",":
                    raise self.fail(f"expected a value, found {_describe(value)}", value)
            self.pos = pos
            if len(values) != len(names):
                raise self.fail(f"this row has {len(values)} value(s) but the pattern names "
                                f"{len(names)} macro(s) ({', '.join(names)})", row_open)
            fileset.rows.append(_Row(list(zip(names, values, strict=True)), row_open[2],
                                     self.lines))

    def definitions_body(self, fileset: _FileSet, file_open: _Token) -> None:
        while self.next_row(fileset, file_open) is not None:
            row_open = self.expect_open("a set of definitions {A=1, B=2}")
            fileset.rows.append(_Row(self.definitions(row_open, "set of definitions"),
                                     row_open[2], self.lines))

    def definitions(self, opening: _Token, what: str) -> list[Definition]:
        """`A=1, B="x"` up to the closing brace."""
        result: list[Definition] = []
        while True:
            self.skip_commas()
            name = self.take()
            if name[0] == "}":
                return result
            if name[0] == "eof":
                raise self.unterminated(opening, what)
            if name[0] not in ("word", "quote"):
                raise self.fail(f"expected a macro name, found {_describe(name)}", name)
            equals = self.take()
            if equals[0] != "=":
                raise self.fail(f"expected '=' after macro name '{_plain(name)}', found "
                                f"{_describe(equals)}", equals)
            value = self.peek()
            if value[0] in ("word", "quote"):
                self.take()
                result.append((_plain(name), _value(value)))
            elif value[0] in (",", "}"):
                result.append((_plain(name), ""))
            else:
                raise self.fail(f"expected a value for '{_plain(name)}', found "
                                f"{_describe(value)}", value)


def _describe(token: _Token) -> str:
    if token[0] == "eof":
        return "the end of the file"
    return f"'{token[1]}'"


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

_DIRECTIVE = re.compile(r'[ \t]*(include|substitute)[ \t]*"((?:\\"|[^"])*)"[ ]*\r?\n?\Z')


@dataclass(frozen=True, slots=True)
class _Text:
    parts: list[str | Ref]
    has_refs: bool


@dataclass(frozen=True, slots=True)
class _Substitute:
    definitions: str
    line: int


@dataclass(frozen=True, slots=True)
class _Include:
    template: _Template


@dataclass(slots=True)
class _Template:
    path: Path
    ops: list[_Text | _Substitute | _Include] = field(default_factory=list)


def _search(name: str, include_paths: Sequence[Path]) -> Path | None:
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    for directory in include_paths or (Path.cwd(),):
        candidate = Path(directory) / path
        if candidate.is_file():
            return candidate
    return None


def _not_found(name: str, include_paths: Sequence[Path], where: Location) -> BerthError:
    if Path(name).is_absolute():
        searched = "(absolute path)"
    else:
        searched = "searched: " + (", ".join(str(p) for p in include_paths)
                                   if include_paths else f"{Path.cwd()} (no -I given)")
    return BerthError(Problem(f"template '{name}' not found; {searched}", where))


def _read(path: Path, where: Location) -> str:
    try:
        return read_text(path, errors="surrogateescape")
    except OSError as exc:
        raise BerthError(Problem(f"cannot read {path}: {exc.strerror}", where)) from None


class _Expander:
    """One expansion run: the include path, the template cache and the problems found."""

    def __init__(self, include_paths: Sequence[Path], strict: bool) -> None:
        self.include_paths = [Path(p) for p in include_paths]
        self.strict = strict
        self.templates: dict[Path, _Template] = {}
        self.problems: list[Problem] = []
        self.problem_count = 0

    # ---- templates ---------------------------------------------------------------------
    def template(self, name: str, where: Location, stack: tuple[Path, ...] = ()) -> _Template:
        path = _search(name, self.include_paths)
        if path is None:
            raise _not_found(name, self.include_paths, where)
        key = path.resolve()
        if key in stack:
            chain = " -> ".join(str(p) for p in (*stack, key))
            raise BerthError(Problem(f"include loop: {chain}", where))
        cached = self.templates.get(key)
        if cached is None:
            cached = self.compile(path, _read(path, where), (*stack, key))
            self.templates[key] = cached
        return cached

    def compile(self, path: Path, text: str, stack: tuple[Path, ...]) -> _Template:
        template = _Template(path)
        parts: list[str | Ref] = []
        has_refs = False

        def flush() -> None:
            nonlocal parts, has_refs
            if parts:
                template.ops.append(_Text(parts, has_refs))
            parts, has_refs = [], False

        for number, line in enumerate(text.splitlines(keepends=True), start=1):
            first = line.lstrip(" \t")[:1]
            directive = _DIRECTIVE.match(line) if first in ("i", "s") else None
            if directive:
                flush()
                if directive.group(1) == "include":
                    where = Location(path, number)
                    template.ops.append(_Include(self.template(directive.group(2), where, stack)))
                else:
                    template.ops.append(_Substitute(directive.group(2), number))
                continue
            if "$" not in line:
                if parts and isinstance(parts[-1], str):
                    parts[-1] += line
                else:
                    parts.append(line)
                continue
            for piece in compile_text(line, number):
                if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                    parts[-1] += piece
                else:
                    parts.append(piece)
                    has_refs = has_refs or isinstance(piece, Ref)
        flush()
        return template

    # ---- expansion ---------------------------------------------------------------------
    def instance(self, template: _Template, table: MacroTable, out: list[str],
                 instance: Location | None) -> None:
        """Expand one instance of a template (`instance`: where it was asked for)."""
        try:
            self.emit(template, table, out, instance)
        except RecursionError:
            raise BerthError(Problem("macro values refer to each other too deeply to expand",
                                     instance or Location(template.path))) from None

    def emit(self, template: _Template, table: MacroTable, out: list[str],
             instance: Location | None) -> None:
        for op in template.ops:
            if isinstance(op, _Text):
                if not op.has_refs:
                    out.append(op.parts[0])  # type: ignore[arg-type]  # one literal piece
                    continue
                report = Report()
                out.append(table.expand_compiled(op.parts, report))
                if report:
                    self.attribute(op, table, template.path, instance)
            elif isinstance(op, _Substitute):
                table.define_text(op.definitions)
            else:
                self.emit(op.template, table, out, instance)

    def attribute(self, op: _Text, table: MacroTable, path: Path,
                  instance: Location | None) -> None:
        """Find which reference on which line went wrong (only on this rare path)."""
        for part in op.parts:
            if isinstance(part, str):
                continue
            report = Report()
            table.expand_ref(part, report)
            suffix = f" (instance at {instance})" if instance else ""
            for name in report.undefined:
                self.add(Problem(f"macro '{name}' is undefined{suffix}",
                                 Location(path, part.line)))
            for name in report.recursive:
                self.add(Problem(f"macro '{name}' is defined in terms of itself{suffix}",
                                 Location(path, part.line)))

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            severity = "error" if self.strict else "warning"
            self.problems.append(Problem(problem.message, problem.location, problem.entity,
                                         problem.field, severity))

    def finish(self, warnings: list[Problem] | None) -> None:
        if self.problem_count > len(self.problems):
            more = self.problem_count - len(self.problems)
            self.problems.append(Problem(f"... and {more} more undefined or recursive macro "
                                         "reference(s)",
                                         severity="error" if self.strict else "warning"))
        if self.strict and self.problems:
            raise BerthError(self.problems)
        if warnings is not None:
            warnings.extend(self.problems)


def _expand_file_name(name: str, macros: Mapping[str, str], where: Location) -> str:
    """Macros in a template's file name come from -M, then the environment."""
    if "$" not in name:
        return name
    table = MacroTable(dict(os.environ))
    table.push()
    table.define(macros.items())
    report = Report()
    expanded = table.expand(name, report)
    if report.undefined or report.recursive:
        names = ", ".join(report.undefined + report.recursive)
        raise BerthError(Problem(f"cannot expand template file name '{name}': macro {names} is "
                                 "undefined (give it with -M or in the environment)", where))
    return expanded


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def expand_substitutions(subst: Path, include_paths: Sequence[Path] = (),
                         macros: Mapping[str, str] | None = None, strict: bool = False,
                         warnings: list[Problem] | None = None, *,
                         template: Path | None = None) -> str:
    """Expand a substitution file into database text, as `msi -S subst` does.

    Template names are searched along `include_paths` in order (absolute ones used as they are;
    with no include path, the current directory). `macros` are raw macro definitions, as given
    with -M: visible to every template and to `$(X)` in template file names (which also see the
    environment). Undefined references stay as `$(X,undefined)` and are appended to `warnings`;
    with `strict` they raise a BerthError instead. `template` replaces every file set's template
    (msi's `-S subst template`). Raises BerthError naming file and line for every mistake.
    """
    subst = Path(subst)
    macros = dict(macros or {})
    where = Location(subst)
    text = _read(subst, where)
    items = _SubstitutionParser(text, subst).parse()
    expander = _Expander(include_paths, strict)
    table = MacroTable(macros)
    out: list[str] = []
    for item in items:
        if isinstance(item, _Globals):
            table.define(item.definitions)
            continue
        if template is not None:
            compiled = expander.template(str(template), item.location)
        else:
            name = _expand_file_name(item.name, macros, item.location)
            compiled = expander.template(name, item.location)
        for row in item.rows:
            if isinstance(row, _Globals):
                table.define(row.definitions)
                continue
            table.push()
            table.define(row.definitions)
            expander.instance(compiled, table, out, row.location)
            table.pop()
    expander.finish(warnings)
    return "".join(out)


def expand_template(template: Path, include_paths: Sequence[Path] = (),
                    macros: Mapping[str, str] | None = None, strict: bool = False,
                    warnings: list[Problem] | None = None) -> str:
    """Expand one template with `macros`, as `msi -M ... template` does."""
    template = Path(template)
    expander = _Expander(include_paths, strict)
    where = Location(template)
    if not template.is_file():
        raise BerthError(Problem("template not found", where))
    compiled = expander.compile(template, _read(template, where), (template.resolve(),))
    table = MacroTable(dict(macros or {}))
    out: list[str] = []
    expander.instance(compiled, table, out, None)
    expander.finish(warnings)
    return "".join(out)


def is_substitution_file(path: Path) -> bool:
    return Path(path).suffix.lower() in SUBSTITUTION_SUFFIXES


def expand_to_file(subst_or_template: Path, out: Path, include_paths: Sequence[Path] = (),
                   macros: Mapping[str, str] | None = None, strict: bool = False) -> list[Problem]:
    """Expand a substitution file (by its suffix: .substitutions, .subst, .sub) or a template
    into `out`, atomically: on any error nothing is written. Returns the warnings."""
    warnings: list[Problem] = []
    if is_substitution_file(subst_or_template):
        text = expand_substitutions(subst_or_template, include_paths, macros, strict, warnings)
    else:
        text = expand_template(subst_or_template, include_paths, macros, strict, warnings)
    atomic_write(Path(out), text.encode("utf-8", errors="surrogateescape"))
    return warnings
