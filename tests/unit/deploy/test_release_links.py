"""Release folders hold everything they serve: no symbolic link out (issue 12, repro 12)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from berth.deploy import releases
from berth.errors import BerthError

EXAMPLE = Path(__file__).parents[3] / "examples" / "bl01b"
NAME = "bl01b-di-wave-01"


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    return repo


def test_a_link_out_of_the_repository_is_refused_and_no_release_is_made(tmp_path):
    repo = _repo(tmp_path)
    outside = tmp_path / "outside.db"
    outside.write_text('record(ai, "X") {}\n')
    (repo / "services" / NAME / "config" / "extra.db").symlink_to(outside)
    with pytest.raises(BerthError) as info:
        releases.from_working_copy(repo, NAME, "helm", tmp_path / "releases")
    assert "extra.db" in str(info.value) and "outside the release" in str(info.value)
    assert list((tmp_path / "releases").iterdir()) == []


def test_a_link_to_a_part_of_the_repository_the_release_leaves_out_is_refused(tmp_path):
    repo = _repo(tmp_path)
    (repo / "services" / NAME / "config" / "other.db").symlink_to(
        "../../bl01b-ea-sum-01/config/sum.db")
    with pytest.raises(BerthError, match="not in the release"):
        releases.from_working_copy(repo, NAME, "helm", tmp_path / "releases")


def test_a_link_within_the_instance_is_kept(tmp_path):
    repo = _repo(tmp_path)
    (repo / "services" / NAME / "config" / "again.db").symlink_to("wave.db")
    _version, folder = releases.from_working_copy(repo, NAME, "helm", tmp_path / "releases")
    assert (folder / "services" / NAME / "config" / "again.db").read_text() == \
        (repo / "services" / NAME / "config" / "wave.db").read_text()
