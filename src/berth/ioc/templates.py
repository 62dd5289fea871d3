"""Jinja rendering for support and instance templates, the way ibek renders them, but safe.

Templates run in a `SandboxedEnvironment` with strict undefined names. Each distinct template
string is compiled once per process and cached. Strings without any Jinja markup skip Jinja
entirely (with the same result Jinja would give). The `_global` helpers (`get_env`, `set`, `get`,
`incrementor`) keep state for one generation run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from berth.ioc import template_expr
from berth.ioc.entity import TemplateProblem, TemplateView

TYPE_CHECKING = False  # (typing is not imported on the generate path: ~3 ms)
if TYPE_CHECKING:
    from typing import Any

_TYPED = ("int", "float", "bool", "list", "dict")
_TYPE_FILTER = re.compile(r"\| *([a-z]*) *}}")
_CASTS: dict[str, type] = {"int": int, "float": float, "bool": bool, "list": list, "dict": dict}
_NEWLINES = re.compile(r"\r\n|\r")
# `{{ name }}`, `{{ a.b.c }}`, `{{ _global.get_env('X') }}`, optionally `| upper` / `| lower`,
# and nothing else: these render without Jinja (with the same result)
_SIMPLE_EXPR = re.compile(
    r"\{\{ *(?:(?P<path>[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)"
    r"|_global\.get_env\((?P<q>['\"])(?P<env>[A-Za-z0-9_]*)(?P=q)\))"
    r" *(?:\| *(?P<filter>upper|lower) *)?\}\}")


def _has_attribute(obj: Any, name: str) -> bool:
    """Whether Jinja's `obj.name` finds an attribute. Mappings and lists loaded from YAML carry
    their source positions as attributes; templates must see them as the plain dicts and lists
    they are (so that a key called `file` or `pos` is found as a key)."""
    from berth.yamlio import YDict, YList

    if isinstance(obj, TemplateView):
        return False  # an entity's view is read by item: its fields, nothing else
    if isinstance(obj, YDict):
        return hasattr(dict, name)
    if isinstance(obj, YList):
        return hasattr(list, name)
    return hasattr(obj, name)


def _describe_missing(obj: Any, name: str) -> str:
    if isinstance(obj, TemplateView):
        return f"{obj.describe()} has no field '{name}'"
    if isinstance(obj, Mapping):
        return f"'{name}' is not one of the fields {', '.join(sorted(map(str, obj)))}"
    return f"{type(obj).__name__} value has no attribute '{name}'"


# Templates come from repositories anyone with a merge request can change: each render is
# bounded in loop iterations, output size and time (no real template comes near these).
MAX_ITERATIONS = 1_000_000  # items all the range()s of one render may yield
MAX_OUTPUT = 4 * 1024 * 1024  # characters one render may produce (also one `*` result)
RENDER_SECONDS = 2.0


class _Budget:
    """What is left of one render's allowance (see MAX_ITERATIONS...)."""

    def __init__(self) -> None:
        self.iterations = MAX_ITERATIONS


_BUDGET: list[_Budget] = []  # the render under way (renders do not nest, but stay safe)


class _OverBudget(Exception):
    """A template went past a limit (message in words for the user)."""


class _TimeUp(BaseException):
    """Raised by the render alarm; a BaseException so template code cannot swallow it."""


def _bounded_range(*args: int) -> Any:
    """`range` for templates: one render's ranges together yield at most MAX_ITERATIONS."""
    numbers = range(*args)
    budget = _BUDGET[-1] if _BUDGET else None
    if budget is not None:
        if len(numbers) > budget.iterations:
            raise _OverBudget(f"range() of {len(numbers)} items goes past the limit of "
                              f"{MAX_ITERATIONS} loop iterations for one template")
        budget.iterations -= len(numbers)
    return numbers


def _check_size(value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_OUTPUT:
        raise _OverBudget(f"a value of {len(value)} items goes past the limit of "
                          f"{MAX_OUTPUT} for one template")
    return value


_ENV: Any = None


def jinja_environment() -> Any:
    """The sandboxed Jinja environment (jinja2 is imported on first need only)."""
    global _ENV
    if _ENV is None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment
        from jinja2.utils import missing

        class Undefined(StrictUndefined):
            """Strict undefined whose message names the entity (not a Python class)."""

            __slots__ = ()

            @property
            def _undefined_message(self) -> str:
                if self._undefined_hint:
                    return self._undefined_hint
                obj, name = self._undefined_obj, self._undefined_name
                if obj is missing:
                    return f"'{name}' is undefined"
                return _describe_missing(obj, str(name))

        class Environment(SandboxedEnvironment):
            intercepted_binops = frozenset(("*", "**"))

            def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
                if operator == "**":
                    if isinstance(right, int) and abs(right) > 1000 and isinstance(left, int) \
                            and abs(left) > 1:
                        raise _OverBudget(f"{left} ** {right} is too large a number")
                    return left ** right
                sequence, times = (left, right) if isinstance(right, int) else (right, left)
                if isinstance(times, int) and isinstance(sequence, str | bytes | list | tuple) \
                        and len(sequence) * times > MAX_OUTPUT:
                    raise _OverBudget(f"a value of {len(sequence) * times} items goes past "
                                      f"the limit of {MAX_OUTPUT} for one template")
                return _check_size(left * right)

            def getattr(self, obj: Any, attribute: str) -> Any:
                if not _has_attribute(obj, attribute):
                    return self.getitem(obj, attribute)
                return super().getattr(obj, attribute)

            def getitem(self, obj: Any, argument: Any) -> Any:
                if isinstance(obj, TemplateView):
                    try:
                        return obj[argument]
                    except (KeyError, TypeError):
                        return self.undefined(obj=obj, name=argument)
                return super().getitem(obj, argument)

        _ENV = Environment(undefined=Undefined, keep_trailing_newline=False, autoescape=False)
        _ENV.globals["range"] = _bounded_range
    return _ENV


_NotSimple = template_expr.NotSimple  # a simple look-up met what only Jinja can print


class _Expression:
    """A `{{ ... }}` of template_expr's subset, parsed."""

    __slots__ = ("node",)

    def __init__(self, node: Any):
        self.node = node


class _Simple:
    """A template made only of text, simple look-ups (see `_SIMPLE_EXPR`) and expressions of
    template_expr's subset."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[tuple[str, Any, str | None]]):
        # (text before, dotted name as a tuple, an environment variable name or an
        # _Expression, filter)
        self.parts = parts

    def render(self, renderer: Renderer, fields: Mapping[str, Any]) -> str:
        out = []
        evaluation = None  # (one per render: its range() budget covers the whole template)
        for text, what, filt in self.parts:
            out.append(text)
            if what is None:
                continue
            if type(what) is tuple:
                value = str(renderer.lookup(fields, what))
            elif type(what) is _Expression:
                evaluation = evaluation or renderer.evaluation(fields)
                value = renderer.printed(evaluation.value(what.node))
            else:
                value = renderer.globals.get_env(what)
            if filt == "upper":
                value = value.upper()
            elif filt == "lower":
                value = value.lower()
            out.append(value)
        return "".join(out)


_CACHE: dict[str, Any] = {}


def _simple(source: str) -> _Simple | None:
    if "{%" in source or "{#" in source:
        return None
    if "\r" in source:
        source = _NEWLINES.sub("\n", source)
    if source.endswith("\n"):
        source = source[:-1]
    parts: list[tuple[str, Any, str | None]] = []
    pos = 0
    while (start := source.find("{{", pos)) >= 0:
        match = _SIMPLE_EXPR.match(source, start)
        if match is not None and (match.group("path") or "").split(".")[0] not in \
                template_expr.CONSTANTS:  # (`true`, `none`: constants, not names)
            path = match.group("path")
            what = tuple(path.split(".")) if path is not None else match.group("env")
            parts.append((source[pos:start], what, match.group("filter")))
            pos = match.end()
            continue
        parsed = template_expr.parse(source, start + 2)
        if parsed is None:
            return None
        parts.append((source[pos:start], _Expression(parsed[0]), None))
        pos = parsed[1]
    parts.append((source[pos:], None, None))
    return _Simple(parts)


def compile_template(source: str) -> Any:
    """The compiled template for `source` (compiled once, then cached)."""
    template = _CACHE.get(source)
    if template is None:
        template = _simple(source)
        if template is None:
            from jinja2 import TemplateSyntaxError

            try:
                template = jinja_environment().from_string(source)
            except TemplateSyntaxError as exc:
                raise TemplateProblem(f"Jinja syntax error: {exc.message} (template line "
                                      f"{exc.lineno})", source) from None
        _CACHE[source] = template
    return template


def cache_size() -> int:
    return len(_CACHE)


def _plain(source: str) -> str | None:
    """What Jinja would render for a string with no markup at all, or None if it has some."""
    if "{" in source:
        return None
    if "\r" in source:
        source = _NEWLINES.sub("\n", source)
    return source[:-1] if source.endswith("\n") else source


def _coerce(value: str, typ: str, source: str) -> Any:
    import ast

    try:
        return _CASTS[typ](ast.literal_eval(value))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise TemplateProblem(f"expected a value of type {typ}, but the template rendered "
                              f"{value!r}", source) from None


class Globals:
    """The `_global` object of templates: environment look-ups and shared variables."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self.variables: dict[str, Any] = {}

    def get_env(self, key: str) -> str:
        return self._env.get(str(key), "")

    def set(self, key: Any, value: Any) -> Any:
        self.variables[str(key)] = value
        return value

    def get(self, key: Any, default: Any = "") -> Any:
        return self.variables.get(str(key), default)

    def incrementor(self, name: Any, start: int = 0, increment: int = 1,
                    stop: int | None = None) -> int:
        index = str(name)
        counter = self.variables.get(index)
        if counter is None:
            value = start
        else:
            if not isinstance(counter, int):
                raise TemplateProblem(f"incrementor '{index}': variable '{index}' holds "
                                      f"{counter!r}, not a counter")
            value = counter + increment
            if stop is not None and value > stop:
                raise TemplateProblem(f"counter '{index}' ran past its stop value {stop} "
                                      f"(next value would be {value})")
        self.variables[index] = value
        return value


class Renderer:
    """Renders strings for one generation run: holds `_global` and the IOC names."""

    def __init__(self, env: Mapping[str, str], ioc_yaml_file_name: str):
        self.globals = Globals(env)
        self.ioc_yaml_file_name = ioc_yaml_file_name
        self.ioc_name = ""

    def context(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        ctx = dict(fields)
        ctx.update(self.globals.variables)
        ctx["_global"] = self.globals
        ctx["ioc_yaml_file_name"] = self.ioc_yaml_file_name
        ctx["ioc_name"] = self.ioc_name
        return ctx

    def render(self, fields: Mapping[str, Any], source: Any, typ: str = "") -> Any:
        """Render like ibek's `UTILS.render`: lists item by item, other non-strings unchanged;
        `typ` (int float bool list dict) converts the result; with no `typ`, a trailing
        `| int }}` style filter in the template picks the conversion."""
        if isinstance(source, list):
            return [self.render(fields, item) for item in source]
        if not isinstance(source, str):
            return source
        plain = _plain(source)
        if plain is not None:
            result: Any = plain
        else:
            template = compile_template(source)
            if type(template) is _Simple:
                try:
                    result = template.render(self, fields)
                except TemplateProblem as exc:
                    exc.template = source
                    raise
                except _NotSimple:
                    jinja_template = jinja_environment().from_string(source)
                    result = self._render_jinja(jinja_template, fields, source)
            else:
                result = self._render_jinja(template, fields, source)
        if typ:
            if typ in _TYPED:
                return _coerce(result, typ, source)
            return result
        if plain is None:
            match = _TYPE_FILTER.search(source)
            if match and match.group(1) in _TYPED:
                return _coerce(result, match.group(1), source)
        return result

    def evaluation(self, fields: Mapping[str, Any]) -> template_expr.Evaluation:
        """The evaluator of template_expr expressions for one render with `fields`."""
        return template_expr.Evaluation(
            lambda path: self.lookup(fields, path), self.globals,
            lambda name: name in fields or name in self.globals.variables, MAX_ITERATIONS)

    @staticmethod
    def printed(value: Any) -> str:
        """What Jinja prints for `value` (NotSimple when only Jinja knows, or it is too big)."""
        if callable(value) or isinstance(value, str | list) and len(value) > MAX_OUTPUT:
            raise _NotSimple
        text = str(value)
        if len(text) > MAX_OUTPUT:
            raise _NotSimple
        return text

    def lookup(self, fields: Mapping[str, Any], path: tuple[str, ...]) -> Any:
        """`a.b.c` as Jinja resolves it in `context(fields)` (attribute, else item)."""
        name = path[0]
        value: Any
        if name == "ioc_name":
            value = self.ioc_name
        elif name == "ioc_yaml_file_name":
            value = self.ioc_yaml_file_name
        elif name in self.globals.variables:
            value = self.globals.variables[name]
        elif name in fields:
            value = fields[name]
        else:
            raise TemplateProblem(f"'{name}' is undefined")
        for attr in path[1:]:
            if isinstance(value, TemplateView):
                try:
                    value = value[attr]
                except KeyError:
                    raise TemplateProblem(_describe_missing(value, attr)) from None
                continue
            if isinstance(value, Mapping):
                if attr in value and not _has_attribute(value, attr):
                    value = value[attr]
                    continue
                if not _has_attribute(value, attr):
                    raise TemplateProblem(_describe_missing(value, attr))
            try:
                value = getattr(value, attr)
            except AttributeError:
                try:
                    value = value[attr]
                except (TypeError, LookupError):
                    raise TemplateProblem(_describe_missing(value, attr)) from None
        if callable(value):
            raise _NotSimple  # a method: let Jinja decide what printing it means
        return value

    def _render_jinja(self, template: Any, fields: Mapping[str, Any], source: str) -> Any:
        from jinja2 import UndefinedError
        from jinja2.exceptions import SecurityError

        try:
            return _bounded_render(template, self.context(fields))
        except _OverBudget as exc:
            raise TemplateProblem(str(exc), source) from None
        except _TimeUp:
            raise TemplateProblem(f"rendering took longer than {RENDER_SECONDS:g} s (an "
                                  "endless or very long loop?)", source) from None
        except TemplateProblem as exc:
            exc.template = source
            raise
        except SecurityError as exc:
            raise TemplateProblem(f"unsafe template: {exc}", source) from None
        except UndefinedError as exc:
            raise TemplateProblem(str(exc), source) from None
        except Exception as exc:  # anything a template expression can raise
            raise TemplateProblem(f"{type(exc).__name__}: {exc}", source) from None

    def render_map(self, fields: Mapping[str, Any], mapping: Mapping[str, str | None]
                   ) -> dict[str, Any]:
        """Render each value; a key with no value means `{{ KEY }}`."""
        return {key: self.render(fields, value if value is not None else f"{{{{ {key} }}}}")
                for key, value in mapping.items()}


_ALARM_SET = False  # whether berth's SIGALRM handler is installed (once: it costs ~20 us)


def _alarm(_signum: int, _frame: Any) -> None:
    if _BUDGET:  # (an alarm outside a render, e.g. a late one, is ignored)
        raise _TimeUp


def _bounded_render(template: Any, context: dict[str, Any]) -> str:
    """`template.render(context)` within MAX_ITERATIONS, MAX_OUTPUT and (in the main thread,
    where a signal can interrupt any loop, even an empty one) RENDER_SECONDS."""
    import signal
    import threading

    global _ALARM_SET
    timed = threading.current_thread() is threading.main_thread()
    if timed and not _ALARM_SET:
        if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN):
            timed = False  # someone else's alarm: leave it alone, the range budget still holds
        else:
            signal.signal(signal.SIGALRM, _alarm)
            _ALARM_SET = True
    if timed:
        signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
    _BUDGET.append(_Budget())
    try:
        out: list[str] = []
        size = 0
        # (the chunks as Template.render makes them, without generate()'s wrapping per chunk)
        for chunk in template.root_render_func(template.new_context(context)):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise _OverBudget(f"the template's output goes past the limit of {MAX_OUTPUT} "
                                  "characters")
            out.append(chunk)
        return "".join(out)
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _BUDGET.pop()
