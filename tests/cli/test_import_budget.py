"""The import budget of the two commands every IOC start runs: `berth generate` and `berth run`
(up to the fork of its builder) must not import the libraries they do not need. typer costs
~0.1 s, pydantic as much again, Jinja ~0.03 s: each would be paid at every IOC start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

DEMO = Path(__file__).parents[1] / "data" / "generate" / "demo.ibek.support.yaml"
NEVER = ("typer", "click", "pydantic", "jinja2", "rich")
# standard-library modules generation has no use for, each a few ms (or a chain of them)
NEVER_STDLIB = ("subprocess", "argparse", "json", "shutil", "tempfile", "logging",
                "importlib.metadata", "email", "socket", "threading", "asyncio", "difflib",
                "hashlib", "textwrap", "pickle", "datetime", "decimal", "locale", "signal",
                "dataclasses", "typing")  # kept out by berth.values, TYPE_CHECKING-only typing


def modules_after(code: str, tmp_path: Path, *, full: bool = False) -> set[str]:
    """Run `code` in a fresh interpreter (with a cache folder of this test's own); the
    top-level packages it left in sys.modules (every module's dotted name when `full`)."""
    report = tmp_path / "modules.txt"
    script = code + textwrap.dedent(f"""
        import sys
        with open({str(report)!r}, "w") as f:  # (not json: that would be in the list)
            f.write("\\n".join(sorted(sys.modules)))
        """)
    env = dict(os.environ, BERTH_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("BERTH_NO_CACHE", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    names = report.read_text().splitlines()
    return set(names) if full else {name.split(".")[0] for name in names}


def generate_code(ioc: Path, out: Path) -> str:
    """A script that runs `berth generate IOC --defs DEMO -o OUT` through the console entry."""
    return textwrap.dedent(f"""
        import sys
        sys.argv = ["berth", "generate", {str(ioc)!r}, "--defs", {str(DEMO)!r},
                    "-o", {str(out)!r}]
        from berth.cli.main import main
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        """)


def test_generate_imports_no_cli_framework_and_no_jinja_for_plain_templates(tmp_path: Path
                                                                         ) -> None:
    ioc = tmp_path / "ioc.yaml"
    ioc.write_text('ioc_name: budget\nentities:\n'
                   '  - {type: demo.Port, name: p1, host: "h:1"}\n'
                   '  - {type: demo.Port, name: p2, host: "h:2"}\n')
    out = tmp_path / "out"
    code = generate_code(ioc, out)
    cold = modules_after(code, tmp_path)
    assert 'portConfigure("p2", "h:2"' in (out / "st.cmd").read_text()  # it really generated
    assert "yaml" in cold  # the first run parses the YAML files
    assert not cold & set(NEVER), sorted(cold & set(NEVER))
    (out / "st.cmd").unlink()
    warm = modules_after(code, tmp_path)  # the same files again: all from the support cache
    assert 'portConfigure("p2", "h:2"' in (out / "st.cmd").read_text()
    assert not warm & {*NEVER, "yaml"}, sorted(warm & {*NEVER, "yaml"})


def test_generate_from_the_cache_imports_no_stdlib_it_does_not_need(tmp_path: Path) -> None:
    ioc = tmp_path / "ioc.yaml"
    ioc.write_text('ioc_name: budget\nentities:\n  - {type: demo.Port, name: p1, host: "h:1"}\n')
    out = tmp_path / "out"
    code = generate_code(ioc, out)
    modules_after(code, tmp_path)  # fills the support cache
    (out / "st.cmd").unlink()
    warm = modules_after(code, tmp_path, full=True)
    assert 'portConfigure("p1", "h:1"' in (out / "st.cmd").read_text()
    assert not warm & set(NEVER_STDLIB), sorted(warm & set(NEVER_STDLIB))


def test_generate_cli_layer_imports_no_typing(tmp_path: Path) -> None:
    # the command line, its argument reader, the errors and the paths: what generate loads
    # before berth.ioc; typing (and pathlib-only annotations) stay behind TYPE_CHECKING there
    loaded = modules_after(textwrap.dedent("""
        import berth.cli.main, berth.cli.ioc, berth.run.argv, berth.errors, berth.paths
        """), tmp_path, full=True)
    assert "berth.cli.ioc" in loaded
    assert not loaded & {"typing", *NEVER}, sorted(loaded & {"typing", *NEVER})


def test_generate_imports_jinja_when_a_template_needs_it(tmp_path: Path) -> None:
    # the other side of the budget: a template with a statement does load Jinja
    ioc = tmp_path / "ioc.yaml"
    ioc.write_text('ioc_name: budget\nentities:\n'
                   '  - {type: demo.Port, name: p1, host: "h:1"}\n'
                   '  - {type: demo.Command, command: "{% for i in [3] %}{{ i }}{% endfor %}"}\n')
    out = tmp_path / "out"
    loaded = modules_after(generate_code(ioc, out), tmp_path)
    assert "\n3\n" in (out / "st.cmd").read_text()
    assert "jinja2" in loaded


def test_common_expressions_generate_without_jinja(tmp_path: Path) -> None:
    # the shapes real support files use (p47's areaDetector plugins, ADAravis): no Jinja
    ioc = tmp_path / "ioc.yaml"
    ioc.write_text('ioc_name: budget\nentities:\n'
                   '  - {type: demo.Port, name: p1, host: "h:1"}\n'
                   '  - {type: demo.Command, command: "{{ 1 + 2 }}"}\n'
                   '  - {type: demo.Command, command: "{{ \'A-\' ~ ioc_name if 1 == 1 else 0 }}"}\n'
                   '  - {type: demo.Command,'
                   '     command: "{{ range(3) | list }} {{ \'4.5\' | int + 1 }}"}\n')
    out = tmp_path / "out"
    loaded = modules_after(generate_code(ioc, out), tmp_path)
    st_cmd = (out / "st.cmd").read_text()
    assert "\n3\nA-budget\n[0, 1, 2] 5\n" in st_cmd, st_cmd
    assert "jinja2" not in loaded


def test_run_imports_before_the_builder_fork_are_lean(tmp_path: Path) -> None:
    # what `berth run` imports before it forks its builder: the CLI entry, its own argument
    # reader and the launcher (the builder imports yaml, Jinja and berth.ioc after the fork)
    loaded = modules_after(textwrap.dedent("""
        import berth.cli.main, berth.run.argv, berth.cli.run, berth.run.launch
        """), tmp_path)
    assert "berth" in loaded
    assert not loaded & {*NEVER, "yaml", "typing"}, sorted(loaded & {*NEVER, "yaml", "typing"})
