"""Values and compose files of the wrong shape are located errors in every verb that reads
them, never tracebacks (issue 12, repro 10)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_berth

EXAMPLE = Path(__file__).parents[3] / "examples" / "bl01b"


@pytest.mark.parametrize(("values", "where", "words"), [
    ("ioc-instance: hello\n", ":1:15", "'ioc-instance' must be a mapping"),
    ("global: hello\n", ":1:9", "'global' must be a mapping"),
    ("ioc-instance:\n  env: 3\n", ":2:8", "'env' must be a list"),
    ("ioc-instance:\n  env: [a]\n", ":2:9", "each item of 'env' must be a mapping"),
])
@pytest.mark.parametrize("verb", ["ps", "check"])
def test_a_values_file_of_the_wrong_shape(tmp_path, values, where, words, verb):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    values_file = repo / "services" / "bl01b-di-wave-01" / "values.yaml"
    values_file.write_text(values)
    target = ("-t", tmp_path / "state") if verb == "ps" else ()
    result = run_berth(*target, "-r", repo, verb, timeout=120)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
    output = result.stdout + result.stderr
    assert f"values.yaml{where}" in output and words in output, output


@pytest.mark.parametrize(("compose", "where", "words"), [
    ("services: [a]\n", ":1:11", "'services' must be a mapping"),
    ("services:\n  a: 3\n", ":2:6", "service 'a' must be a mapping"),
    ("include: x.yml\n", ":1:10", "'include' must be a list"),
    ("services:\n  a: {labels: 3}\n", ":2:15", "'labels' of service 'a'"),
])
def test_a_compose_file_of_the_wrong_shape(tmp_path, compose, where, words):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "compose.yaml").write_text(compose)
    result = run_berth("-t", tmp_path / "state", "-r", repo, "ps", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"compose.yaml{where}" in result.stderr and words in result.stderr, result.stderr


def test_an_anchor_bomb_in_a_values_file_is_refused_quickly(tmp_path):
    import time

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    lines = ["x0: &x0 [l, l, l, l, l, l, l, l, l, l]"]
    lines += [f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]" for i in range(1, 9)]
    values_file = repo / "services" / "bl01b-di-wave-01" / "values.yaml"
    values_file.write_text("bomb:\n" + "".join(f"  {line}\n" for line in lines)
                           + "ioc-instance:\n  image: x\n  extra: *x8\n")
    start = time.monotonic()
    result = run_berth("-t", tmp_path / "state", "-r", repo, "ps", timeout=60)
    assert time.monotonic() - start < 15
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "values.yaml:" in result.stderr and "anchor bomb" in result.stderr, result.stderr
