"""Property-based fuzzing of every loader of untrusted files (issue 12): values, compose,
support, instance and state.json files. Whatever the bytes, berth either reads them or raises
a BerthError whose every problem names the file: never any other exception (a traceback)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from berth.deploy.services import ServicesRepo
from berth.deploy.state import StateDir
from berth.errors import BerthError
from berth.ioc.generate import GenerateOptions, generate
from berth.ioc.support import load_support

DEMO = Path(__file__).parents[1] / "data" / "generate" / "demo.ibek.support.yaml"
OPTIONS = GenerateOptions(ioc_dir="/epics/ioc", runtime_dir="/epics/runtime", ioc_name="FUZZ")
# 60 examples a loader: ~7 s for all of them on the 2-core machine (400: ~13 s)
FUZZ = settings(max_examples=int(os.environ.get("BERTH_FUZZ_EXAMPLES", "60")), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])

# the keys each loader looks for, so that the fuzzer reaches past "unknown key"
KEYS = ["ioc-instance", "global", "env", "name", "value", "image", "services", "include",
        "configs", "labels", "environment", "extends", "file", "target", "source", "is_ioc",
        "ioc_name", "entities", "type", "description", "shared", "module", "entity_models",
        "parameters", "pre_init", "databases", "args", "instances", "version", "repo"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=8), st.sampled_from(["demo.Port", "{{ x }}", "str", "obj",
                                                          "x=1", "true", "hello"]))
documents = st.recursive(
    scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner,
                        max_size=5)), max_leaves=20)
yaml_texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, sort_keys=False)),
    st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#,? \n\t0\x00\\%@`")), max_size=60),
)


def _assert_located(call: Any, file: Path) -> None:
    try:
        call()
    except BerthError as err:
        assert err.problems, "a BerthError with no problem"
        for problem in err.problems:
            assert problem.location.file is not None, f"no location: {problem}"
            assert str(problem), "an empty message"


def _touch_service_properties(root: Path) -> None:
    repo = ServicesRepo.load(root)
    for service in repo.services.values():
        seen = (service.is_ioc, service.image, service.environment, service.config_dir,
                service.instance_values)
        assert len(seen) == 5


@FUZZ
@given(yaml_texts)
@example("ioc-instance: hello\n")
@example("global: hello\n")
def test_values_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "services" / "x").mkdir(parents=True)
        (root / "services" / "x" / "values.yaml").write_text(text)
        _assert_located(lambda: _touch_service_properties(root), root)


@FUZZ
@given(yaml_texts)
@example("services: [a]\n")
def test_compose_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "compose.yaml").write_text(text)
        _assert_located(lambda: _touch_service_properties(root), root)


@FUZZ
@given(yaml_texts)
@example("module: m\nentity_models: 3\n")
def test_support_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "fuzz.ibek.support.yaml"
        file.write_text(text)
        _assert_located(lambda: load_support([file]), file)


@FUZZ
@given(yaml_texts)
@example("ioc_name: x\nentities: [{type: demo.Port, name: p, host: 3}]\n")
def test_instance_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "ioc.yaml"
        file.write_text(text)
        _assert_located(lambda: generate([file], [DEMO], OPTIONS), file)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS + ["x", "../x"]), inner,
                                            max_size=4)), max_leaves=12)


@FUZZ
@given(st.one_of(json_values.map(json.dumps), st.text(max_size=30)))
@example("[]")
@example("null")
@example('{"instances": []}')
def test_state_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        state = StateDir(Path(tmp))
        state.state_file.parent.mkdir(parents=True, exist_ok=True)
        state.state_file.write_text(text)
        _assert_located(state.load, state.state_file)
