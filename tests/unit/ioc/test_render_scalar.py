"""wait_list.yaml's values are written without importing yaml where that is safe: each must
be exactly what yaml.safe_dump writes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.ioc import render


def dumped(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    return (text[:-5] if text.endswith("\n...\n") else text).rstrip("\n")


@pytest.mark.parametrize("value", ["BRICK1port", "192.168.250.13:1025", "192.168.250.13",
                                   "yes", "On", "null", "NULL", "y", "1.5", "a: b", "x#y",
                                   "http://h:1", "-a", "a-b/c.d", "", 0, 7, -3, True, 2.5,
                                   "10:20", "1e5", "e5", "p-1:2"])
def test_values_are_written_as_yaml_writes_them(value: Any) -> None:
    assert render._scalar(value) == dumped(value)  # noqa: SLF001 (the function under test)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(), st.text(alphabet="aZy09._-/: #", max_size=12),
                 st.from_regex(r"\d{1,3}(\.\d{1,3}){3}:\d{1,5}", fullmatch=True)))
def test_random_values_are_written_as_yaml_writes_them(value: Any) -> None:
    assert render._scalar(value) == dumped(value)  # noqa: SLF001
