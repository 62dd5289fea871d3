"""Hostile or unlucky input to `berth generate` / `berth run` (issue 12, repros 9-12): bounded
work, located errors, no tracebacks, no file outside the config folder read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import run_berth

DEMO = Path(__file__).parents[2] / "data" / "generate" / "demo.ibek.support.yaml"
HEAD = 'ioc_name: "{{ _global.get_env(\'IOC_NAME\') }}"\ndescription: hostile\n'


def _config(tmp_path: Path, body: str = "entities: []\n", name: str = "ioc.yaml") -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / name).write_text(HEAD + body)
    return config


def _generate(config: Path, *extra: str | Path, timeout: float = 60):
    start = time.monotonic()
    result = run_berth("generate", config, "--defs", DEMO, "-o", config.parent / "out", *extra,
                       env={"IOC_NAME": "HOSTILE"}, timeout=timeout)
    return result, time.monotonic() - start


def _refused(result, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize("verb", ["generate", "run"])
def test_a_fifo_named_like_an_instance_file_is_refused_at_once(tmp_path, verb):
    config = tmp_path / "config"
    config.mkdir()
    os.mkfifo(config / "x.yaml")  # nobody ever writes to it: a read would block forever
    start = time.monotonic()
    if verb == "generate":
        result = run_berth("generate", config, "--defs", DEMO, "-o", tmp_path / "out",
                           timeout=30)
    else:
        result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", timeout=30)
    _refused(result, "x.yaml", "named pipe")
    assert time.monotonic() - start < 15


def test_a_fifo_support_file_beside_the_instance_is_refused(tmp_path):
    config = _config(tmp_path)
    os.mkfifo(config / "x.ibek.support.yaml")
    result, took = _generate(config, timeout=30)
    _refused(result, "x.ibek.support.yaml", "named pipe")
    assert took < 15


def test_an_instance_file_linked_to_dev_zero_is_refused_without_reading_it(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.yaml").symlink_to("/dev/zero")
    result, took = _generate(config, timeout=30)
    _refused(result, "ioc.yaml", "a device")
    assert "MemoryError" not in result.stderr and took < 15


def test_an_instance_file_too_large_is_refused(tmp_path):
    config = _config(tmp_path)
    with open(config / "ioc.yaml", "a") as f:
        f.truncate(17 * 1024 * 1024)  # sparse: costs no disk
    result, _ = _generate(config)
    _refused(result, "ioc.yaml", "file too large")


@pytest.mark.parametrize("verb", ["generate", "run"])
def test_an_instance_file_linked_out_of_the_config_folder_is_refused(tmp_path, verb):
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.yaml").symlink_to("/etc/passwd")
    if verb == "generate":
        result, _ = _generate(config)
    else:
        result = run_berth("run", config, "--runtime-dir", tmp_path / "rt", timeout=30)
    _refused(result, "ioc.yaml", "symbolic link to /etc/passwd", "outside the config folder")
    assert "root:" not in result.stdout + result.stderr  # nothing of the file is shown


def test_a_link_inside_the_config_folder_still_works(tmp_path):
    config = _config(tmp_path, name="real.yaml")
    (config / "ioc.yaml").symlink_to("real.yaml")
    result, _ = _generate(config)
    assert result.returncode == 0, result.stderr


def test_nested_ranges_in_a_template_value_stop_quickly_with_a_located_error(tmp_path):
    config = _config(tmp_path, "entities:\n  - type: demo.Template\n    text: \"{% for i in "
                     "range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}"
                     "{% endfor %}\"\n")
    result, took = _generate(config)
    _refused(result, "ioc.yaml:5", "range()")
    assert took < 10  # (the limit trips in well under 2 s; process start-up is the rest)


def test_an_empty_nested_loop_in_a_support_file_does_not_hang(tmp_path):
    support = tmp_path / "loop.ibek.support.yaml"
    support.write_text(
        "module: loop\nentity_models:\n  - name: Spin\n    description: spins\n"
        "    parameters: {}\n    pre_init:\n      - value: \"{% for i in range(100000) %}"
        "{% for j in range(100000) %}{% endfor %}{% endfor %}\"\n")
    config = _config(tmp_path, "entities:\n  - type: loop.Spin\n")
    result, took = _generate(config, "--defs", support)
    _refused(result, "range()")
    assert took < 10


def test_a_huge_string_product_is_refused(tmp_path):
    config = _config(tmp_path, "entities:\n  - type: demo.Template\n"
                     "    text: \"{{ 'x' * 1000000000 }}\"\n")
    result, _ = _generate(config)
    _refused(result, "ioc.yaml:5", "limit")


def test_an_anchor_bomb_in_the_entity_list_is_refused_with_its_place(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.yaml").write_text(HEAD + "shared:\n" + "".join(f"  {line}\n" for line in lines)
                                     + "entities: *a8\n")
    result, took = _generate(config)
    _refused(result, "ioc.yaml:", "anchor bomb")
    assert took < 10


def test_an_anchor_bomb_in_parameters_is_refused(tmp_path):
    lines = ["- &b0 [y, y, y, y, y, y, y, y, y, y]"]
    lines += [f"- &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, 9)]
    config = _config(tmp_path, "shared:\n" + "".join(f"  {line}\n" for line in lines)
                     + "entities:\n  - type: demo.Template\n    text: *b8\n")
    result, took = _generate(config)
    _refused(result, "ioc.yaml:", "anchor bomb")
    assert took < 10


@pytest.mark.parametrize(("body", "where", "words"), [
    ("entities:\n  - type: demo.Template\n    text: " + "9" * 5000 + "\n", "ioc.yaml:5:11",
     "cannot read this number"),
    ("entities: []\nx: \"a\0b\"\n", "ioc.yaml:4:6", "control characters are not allowed"),
    ("entities: []\n\0\n", "ioc.yaml:4:1", "control characters are not allowed"),
    ("entities: [\n", "ioc.yaml:4:1", "invalid YAML"),
])
def test_bad_yaml_is_a_located_error(tmp_path, body, where, words):
    config = tmp_path / "config"
    config.mkdir()
    (config / "ioc.yaml").write_bytes((HEAD + body).encode())
    result, _ = _generate(config)
    _refused(result, where, words)


def test_an_interrupted_generate_leaves_nothing_behind_on_the_next_run(tmp_path):
    config = _config(tmp_path, "entities:\n  - type: demo.Template\n    text: one\n")
    result, _ = _generate(config)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    # what a SIGKILL in the middle of an earlier generate leaves: a half-made copy of the
    # folder beside it and a temporary file inside it
    (tmp_path / ".out.gen-0123456789ab").mkdir()
    (tmp_path / ".out.gen-0123456789ab" / "st.cmd").write_text("half\n")
    (out / ".st.cmd.0123456789ab.tmp").write_text("half\n")
    (out / "mine.txt").write_text("the user's own file\n")
    result, _ = _generate(config)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "out"]
    assert sorted(p.name for p in out.iterdir()) == ["ioc.subst", "mine.txt", "st.cmd"]
    assert (out / "mine.txt").read_text() == "the user's own file\n"


def test_a_long_loop_without_range_is_stopped_by_the_render_time_limit(tmp_path):
    # a billion empty iterations over a string: no range() to count, so the time limit acts
    config = _config(tmp_path, "entities:\n  - type: demo.Template\n    text: \"{% set s = 'x' * "
                     "1000 %}{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}"
                     "{% endfor %}{% endfor %}\"\n")
    result, took = _generate(config)
    _refused(result, "ioc.yaml:5", "longer than 2 s")
    assert took < 10


@pytest.mark.parametrize(("out", "words"), [
    ("/sys/kernel/berth-out", "Operation not permitted"),  # refused even to root
    ("/etc/passwd/out", "Not a directory"),
])
def test_an_output_folder_the_system_refuses_is_one_located_line(tmp_path, out, words):
    config = _config(tmp_path)
    result = run_berth("generate", config, "--defs", DEMO, "-o", out,
                       env={"IOC_NAME": "HOSTILE"}, timeout=60)
    _refused(result, f"{out}: cannot write outputs: {words}")
    assert result.stderr.count("\n") == 1
