"""Expressions rendered without Jinja (berth.ioc.template_expr) must give exactly what Jinja
gives: the same text, or the same error. Checked on the shapes real support files use and on
random expressions of the subset."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateSyntaxError

from berth.ioc import templates
from berth.ioc.entity import TemplateProblem

FIELDS: dict[str, Any] = {"idx": "3", "n": 4, "gain": 2.5, "flag": True, "empty": "",
                          "nothing": None, "R": "ROI:", "camera": {"P": "BL47P", "CLASS":
                                                                   "AutoADGenICam"},
                          "items": [1, 2]}


def renderer() -> templates.Renderer:
    r = templates.Renderer({"HOME_DIR": "/home/x", "NUM": "12"}, "x.ibek.ioc.yaml")
    r.ioc_name = "Test-IOC"
    r.globals.set("shared", 7)
    return r


def outcome(fast: bool, source: str) -> tuple[str, Any]:
    """("ok", value) or ("error", message) of rendering `source`, by the fast path or Jinja."""
    r = renderer()
    try:
        if fast:
            return "ok", r.render(FIELDS, source)
        try:
            template = templates.jinja_environment().from_string(source)
        except TemplateSyntaxError as exc:  # as compile_template words it
            return "error", str(TemplateProblem(f"Jinja syntax error: {exc.message} (template "
                                                f"line {exc.lineno})", source))
        result = r._render_jinja(template, FIELDS, source)  # noqa: SLF001 (the reference)
        match = templates._TYPE_FILTER.search(source)  # noqa: SLF001 (as render() does)
        if match and match.group(1) in templates._TYPED:  # noqa: SLF001
            result = templates._coerce(result, match.group(1), source)  # noqa: SLF001
        return "ok", result
    except TemplateProblem as exc:
        return "error", str(exc)


REAL = [  # from the corpus's ibek-support files (ADCore, ADAravis) and common variations
    "{{ range(n) | list }}", "Overlay {{ idx | int + 1 }}", "{{ R }}{{ idx | int + 1 }}:",
    "{{ idx | int }}", "{{ R }}{{ n + 1}}:", "{{ 'ADAravis-' ~ camera.P }}.pvi.device.yaml",
    "{{ 'ADAravis-' ~ camera.P if camera.CLASS=='AutoADGenICam' else camera.CLASS }}.template",
    "{{ gain | int }} {{ gain | float }} {{ flag | int }}", "{{ -n }} {{ not flag }}",
    "{{ nothing }} {{ flag and R or 'x' }} {{ empty or 'default' }}",
    "{{ _global.get_env('NUM') | int * 1 }}", "{{ _global.get('shared') + 1 }}",
    "{{ ioc_name | lower ~ '-' ~ n }}", "{{ items | list }} {{ 'ab' | list }}",
    "{{ (n - 1) ~ (n + 1) }}", "{{ 1.5 + 1 }}", "{{ n > 3 }} {{ R != 'x' }}",
    "{{ '' if flag else camera.Port | default(camera.P) }}", "{{ missing | default(n) }}",
    "{{ camera.P | default('x') }} {{ nothing | default(1) }} {{ (n + 1) | default(0) }}",
    "{{ camera.P | default(camera.Port) }}", "{{ camera.Port | default(camera.P | default(1)) }}",
]
ERRORS = [  # each raises in Jinja: the fast path must give Jinja's message
    "{{ missing + 1 }}", "{{ R + 1 }}", "{{ camera.nokey ~ 'x' }}", "{{ range('a') | list }}",
    "{{ R < 1 }}", "{{ range(2000000) | list }}", "{{ -R }}", "{{ missing.P | default(1) }}",
    "{{ camera.P.x.y | default(1) }}",
]


@pytest.mark.parametrize("source", REAL + ERRORS)
def test_real_shapes_render_as_jinja_does(source: str) -> None:
    assert outcome(True, source) == outcome(False, source)


@pytest.mark.parametrize("source", REAL[:7])
def test_real_shapes_take_the_fast_path(source: str) -> None:
    assert type(templates.compile_template(source)).__name__ == "_Simple"


@pytest.mark.parametrize("source", ["{{- R }}", "{{ R -}}", "{{ R * 2 }}", "{{ items[0] }}",
                                    "{{ 1 < n < 5 }}", "{{ _global.incrementor('c') }}",
                                    "{{ R | replace('a', 'b') }}", "{{ 'a' if flag }}",
                                    "{{ n is odd }}", "{{ range(n, step=2) }}"])
def test_outside_the_subset_goes_to_jinja(source: str) -> None:
    assert type(templates.compile_template(source)).__name__ != "_Simple"
    assert outcome(True, source) == outcome(False, source)


_LEAVES = st.sampled_from(["idx", "n", "gain", "flag", "empty", "nothing", "R", "camera.P",
                           "camera.CLASS", "missing", "1", "0", "2.5", "'4.5'", "'ab'",
                           "true", "none", "ioc_name", "_global.get_env('NUM')",
                           "_global.get('shared')", "range(3)", "items", "camera.Port",
                           "missing.P"])


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda a, f: f"{a} | {f}", inner, st.sampled_from(
            ["int", "float", "list", "lower", "upper", "string"])),
        st.builds(lambda a: f"-{a}", inner), st.builds(lambda a: f"not {a}", inner),
        st.builds(lambda a, b: f"{a} | default({b})", inner, inner),
        st.builds(lambda ab, op: f"{ab[0]} {op} {ab[1]}", pair, st.sampled_from(
            ["+", "-", "~", "==", "!=", "<", ">=", "and", "or"])),
        st.builds(lambda a, b, c: f"{a} if {b} else {c}", inner, inner, inner),
    )


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=400, deadline=None)
@given(st.recursive(_LEAVES, _combine, max_leaves=6), st.sampled_from(["", "x ", "a{{ R }}"]))
def test_random_expressions_render_as_jinja_does(expression: str, before: str) -> None:
    source = f"{before}{{{{ {expression} }}}}!"
    assert outcome(True, source) == outcome(False, source)
