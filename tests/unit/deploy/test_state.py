"""The one rule set for history, rollback and ownership of an instance (`InstanceState`), shared
by the local and compose backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.deploy.state import InstanceState, StateDir
from berth.errors import BerthError


def releases(tmp_path: Path, *versions: str) -> dict[str, Path]:
    folders = {v: tmp_path / "releases" / v for v in versions}
    for folder in folders.values():
        folder.mkdir(parents=True)
    return folders


def test_record_appends_only_when_the_release_changes(tmp_path: Path) -> None:
    rel = releases(tmp_path, "v1", "v2")
    st = InstanceState("ioc")
    first, changed = st.record("v1", rel["v1"], "")
    assert changed and first.current and first.version == "v1"
    st.started = False
    again, changed = st.record("v1", rel["v1"], "")
    assert not changed and st.started and again.deployed_at == first.deployed_at
    _, changed = st.record("v2", rel["v2"], "")
    assert changed
    assert [(r.version, r.current) for r in st.releases()] == [("v1", False), ("v2", True)]


def test_rollback_target_and_pinning(tmp_path: Path) -> None:
    rel = releases(tmp_path, "v1", "v2", "v3")
    st = InstanceState("ioc")
    for version in ("v1", "v2", "v3"):
        st.record(version, rel[version], "")
    target, note = st.rollback_target(None)
    assert (target.version, note) == ("v2", "rollback from v3")
    assert st.rollback_target("v1")[0].version == "v1"
    st.record(target.version, Path(target.release), note, pin=True)
    assert st.pinned and st.deployment is not None and st.deployment.version == "v2"
    assert st.releases()[-1].note == "rollback from v3"
    st.record("v3", rel["v3"], "")  # the next explicit deploy unpins
    assert not st.pinned

    with pytest.raises(BerthError, match="version 'v9' of 'ioc' was never deployed here "
                                         r"\(deployed: v1, v2, v3\)"):
        st.rollback_target("v9")
    with pytest.raises(BerthError, match="no earlier version"):
        InstanceState("new").rollback_target(None)
    rel["v2"].rmdir()
    with pytest.raises(BerthError, match="release folder of v2 is gone"):
        st.rollback_target(None)


def test_instance_names_are_unique_per_state_folder(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    st = InstanceState("ioc")
    st.claim(tmp_path / "a", state.state_file)
    st.claim(tmp_path / "a", state.state_file)  # its own repository again: fine
    with pytest.raises(BerthError, match=f"already deployed from repository {tmp_path / 'a'}"):
        st.claim(tmp_path / "b", state.state_file)
    assert st.belongs_to(tmp_path / "a") and not st.belongs_to(tmp_path / "b")
    legacy = InstanceState("old")  # from a state file written before repositories were kept
    assert legacy.belongs_to(tmp_path / "b", ["old"]) and not legacy.belongs_to(tmp_path / "b")


def test_state_file_round_trip_keeps_repository_and_pin(tmp_path: Path) -> None:
    rel = releases(tmp_path, "v1")
    state = StateDir(tmp_path / "state")
    st = InstanceState("ioc")
    st.claim(tmp_path / "a", state.state_file)
    st.record("v1", rel["v1"], "", pin=True)
    state.save({"ioc": st})
    loaded = state.load()["ioc"]
    assert (loaded.repo, loaded.pinned, loaded.releases()) == (str(tmp_path / "a"), True,
                                                               st.releases())


def _json_values():  # type: ignore[no-untyped-def]
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
        st.text(max_size=12)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


def test_any_state_file_reads_or_is_one_located_error(tmp_path: Path) -> None:
    """Fuzz: whatever JSON state.json holds, reading it gives instances with safe names or a
    BerthError naming the file, never another exception."""
    import json
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    state = StateDir(tmp_path)
    entry = st.fixed_dictionaries({"name": st.text(max_size=12)}, optional={
        "history": _json_values(), "current": _json_values(), "started": _json_values(),
        "runs_base": _json_values(), "repo": _json_values()})
    documents = _json_values() | st.fixed_dictionaries({"instances": _json_values()
                                                        | st.dictionaries(st.text(max_size=12),
                                                                          entry, max_size=3)})

    @settings(max_examples=300, deadline=None)
    @given(documents)
    def check(document: object) -> None:
        state.state_file.write_text(json.dumps(document))
        try:
            found = state.load()
        except BerthError as err:
            assert str(state.state_file) in str(err) and "\n" not in str(err)
            return
        assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) for n in found)

    check()


def test_a_huge_or_special_state_file_is_refused_not_read(tmp_path: Path) -> None:
    """A state.json over the read bound is one located error (no MemoryError, nothing read
    whole); a FIFO in its place is refused at once instead of hanging the command."""
    import os

    from berth.fsutil import MAX_READ

    state = StateDir(tmp_path)
    with state.state_file.open("wb") as out:
        out.truncate(MAX_READ + 1)  # sparse: big to stat, cheap on disk
    with pytest.raises(BerthError) as err:
        state.load()
    assert str(state.state_file) in str(err.value) and "too large" in str(err.value)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)

    state.state_file.unlink()
    os.mkfifo(state.state_file)
    with pytest.raises(BerthError) as err:
        state.load()  # would block for ever in open() if read as a plain file
    assert str(state.state_file) in str(err.value) and "FIFO" in str(err.value)
