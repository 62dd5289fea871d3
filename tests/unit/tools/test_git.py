"""berth.tools.git.Git against a real git repository made in tmp_path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from berth.errors import BerthError
from berth.tools import run, run_bytes
from berth.tools.git import Git

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **ENV}).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    top = tmp_path / "top"
    (top / "sub" / "deep").mkdir(parents=True)
    (top / "sub" / "a.txt").write_text("one\n")
    (top / "sub" / "deep" / "run.sh").write_text("#!/bin/sh\n")
    (top / "sub" / "deep" / "run.sh").chmod(0o755)
    (top / "sub" / "link").symlink_to("a.txt")
    (top / "other.txt").write_text("other\n")
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-qm", "first")
    git(top, "tag", "1.0")
    (top / "sub" / "a.txt").write_text("two\n")
    git(top, "commit", "-qam", "second")
    git(top, "tag", "2.0")
    return top


def test_top_and_tags_oldest_first_from_a_subfolder(repo: Path):
    g = Git(repo / "sub")
    assert g.is_repo and g.top == repo.resolve()
    assert g.tags == ["1.0", "2.0"]
    assert g.commit_of("1.0") == git(repo, "rev-parse", "1.0^{commit}").strip()


def test_outside_a_repository(tmp_path: Path):
    g = Git(tmp_path)
    assert not g.is_repo and g.tags == [] and g.top == tmp_path


def test_ls_tree_and_show_see_the_file_as_it_was_at_a_tag(repo: Path):
    g = Git(repo)
    tree = g.ls_tree("1.0")
    assert set(tree) == {"sub/a.txt", "sub/deep/run.sh", "sub/link", "other.txt"}
    assert tree["sub/link"][0] == "120000" and g.blob(tree["sub/link"][1]) == "a.txt"
    assert g.show("1.0", "sub/a.txt") == "one\n"
    assert g.show("2.0", "sub/a.txt") == "two\n"
    assert g.show("2.0", "missing.txt") is None


def test_extract_a_prefix_at_a_tag_keeps_modes_links_and_filters(repo: Path, tmp_path: Path):
    dest = tmp_path / "out"
    dest.mkdir()
    Git(repo).extract("1.0", "sub", dest, lambda path: path.name != "skip")
    assert (dest / "a.txt").read_text() == "one\n"
    assert os.readlink(dest / "link") == "a.txt"
    assert os.access(dest / "deep" / "run.sh", os.X_OK)
    assert not (dest / "other.txt").exists() and not (dest / "sub").exists()
    only = tmp_path / "only"
    only.mkdir()
    Git(repo).extract("2.0", "", only, lambda path: path.parts[0] == "other.txt")
    assert [p.name for p in only.iterdir()] == ["other.txt"]


def test_extract_refuses_a_link_leaving_the_folder(repo: Path, tmp_path: Path):
    (repo / "sub" / "escape").symlink_to("../other.txt")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "escape")
    git(repo, "tag", "3.0")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BerthError, match="escape -> ../other.txt leaves"):
        Git(repo).extract("3.0", "sub", dest)
    Git(repo).extract("3.0", "", dest)  # from the top the same link stays inside


def test_a_failing_git_command_names_itself_and_what_git_said(repo: Path):
    with pytest.raises(BerthError, match=r"'git -C .* rev-parse nope\^\{commit\}' failed "
                                         r"\(exit 128\)"):
        Git(repo).commit_of("nope")


def test_commit_push_and_log_only_the_named_file(repo: Path, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "HEAD")
    g = Git(repo)
    assert g.has_remote() and g.upstream()
    (repo / "other.txt").write_text("changed\n")
    (repo / "sub" / "a.txt").write_text("not committed\n")
    commit = g.commit("change other", "other.txt")
    g.push()
    assert git(remote, "rev-parse", "HEAD").strip() == commit
    assert g.log("other.txt", "%s") == ["change other", "first"]
    assert "sub/a.txt" in git(repo, "status", "--porcelain")


def test_run_reports_a_missing_tool_and_returns_binary_output(tmp_path: Path):
    with pytest.raises(BerthError, match="'no-such-tool-here' was not found"):
        run(["no-such-tool-here"])
    assert run_bytes(["printf", "\\x00\\x01"]) == b"\x00\x01"
