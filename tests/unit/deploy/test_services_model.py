"""Reading services repositories: both layouts, Helm-style merging, versions from git tags."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from berth.deploy.services import ServicesRepo, helm_merge
from berth.errors import BerthError


def git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def commit_and_tag(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", tag)
    git(repo, "tag", tag)


def test_helm_merge_deep_merges_maps_replaces_lists_and_null_deletes():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": 3}
    override = {"a": {"y": [3], "z": 2}, "b": None}
    assert helm_merge(base, override) == {"a": {"x": 1, "y": [3], "z": 2}, "c": 3}


@pytest.fixture
def helm_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "bl99"
    shared = repo / ".helm-shared"
    (shared / "templates").mkdir(parents=True)
    (shared / "Chart.yaml").write_text("apiVersion: v2\nname: x\nversion: 1.0.0\n")
    (repo / "services").mkdir()
    (repo / "services" / "values.yaml").write_text(
        "global: {domain: bl99, location: bl99}\n"
        "shared: &shared\n  hostNetwork: true\n  env: [{name: A, value: '1'}]\n"
        "ioc-instance:\n  <<: *shared\n"
    )
    for name in ("ioc-a", "ioc-b"):
        svc = repo / "services" / name
        (svc / "config").mkdir(parents=True)
        (svc / "values.yaml").write_text(f"ioc-instance:\n  image: img/{name}:1\n")
        (svc / "config" / "ioc.yaml").write_text(f"ioc_name: {name}\nentities: []\n")
        (svc / "Chart.yaml").symlink_to("../../.helm-shared/Chart.yaml")
    git(repo, "init", "-q")
    return repo


def test_helm_layout_merges_shared_values_and_finds_config(helm_repo: Path):
    repo = ServicesRepo.load(helm_repo)
    assert repo.layout == "helm"
    assert sorted(repo.iocs) == ["ioc-a", "ioc-b"]
    svc = repo.service("ioc-a")
    assert svc.image == "img/ioc-a:1"
    assert svc.instance_values["hostNetwork"] is True
    assert svc.instance_values["global"]["domain"] == "bl99"
    assert svc.config_dir == helm_repo / "services" / "ioc-a" / "config"
    assert svc.environment["A"] == "1"


def test_versions_follow_changes_symlinks_and_shared_values(helm_repo: Path):
    commit_and_tag(helm_repo, "1.0")
    (helm_repo / "services" / "ioc-a" / "config" / "ioc.yaml").write_text("entities: [x]\n")
    commit_and_tag(helm_repo, "1.1")  # only ioc-a changed
    (helm_repo / ".helm-shared" / "Chart.yaml").write_text("apiVersion: v2\nname: y\n")
    commit_and_tag(helm_repo, "1.2")  # symlinked chart changed: both
    (helm_repo / "README").write_text("docs\n")
    commit_and_tag(helm_repo, "1.3")  # nothing of theirs changed
    (helm_repo / "services" / "values.yaml").write_text("global: {domain: other}\n")
    commit_and_tag(helm_repo, "1.4")  # shared values: both
    repo = ServicesRepo.load(helm_repo)
    assert repo.versions("ioc-a") == ["1.0", "1.1", "1.2", "1.4"]
    assert repo.versions("ioc-b") == ["1.0", "1.2", "1.4"]


def test_unknown_service_suggests_close_names(helm_repo: Path):
    with pytest.raises(BerthError, match="did you mean ioc-a"):
        ServicesRepo.load(helm_repo).service("ioc-aa")


def test_malformed_values_names_file_and_line(helm_repo: Path):
    bad = helm_repo / "services" / "ioc-b" / "values.yaml"
    bad.write_text("ioc-instance:\n  image: [unclosed\n")
    with pytest.raises(BerthError) as info:
        ServicesRepo.load(helm_repo)
    text = str(info.value)
    assert f"{bad}:3" in text and "invalid YAML" in text


def test_corpus_repos_read_unchanged(corpus: Path):
    p47 = ServicesRepo.load(corpus / "services" / "p47-services")
    assert sorted(p47.iocs) == sorted([
        "bl47p-ea-dcam-01", "bl47p-ea-dcam-02", "bl47p-mo-ioc-01", "sr03c-va-ioc-01",
        "bl47p-ea-fastcs-01", "bl47p-ea-panda-01", "bl47p-synoptic"])
    mo = p47.service("bl47p-mo-ioc-01")
    assert mo.image == "ghcr.io/epics-containers/ioc-pmac-runtime:2026.6.1"
    assert mo.instance_values["securityContext"]["runAsUser"] == 37887  # from the shared anchor
    example = ServicesRepo.load(corpus / "services" / "example-services")
    assert example.layout == "compose"
    test01 = example.service("bl01t-ea-test-01")
    assert test01.is_ioc and test01.environment["IOC_PREFIX"] == "BL01T-EA-TEST-01"
    assert test01.environment["BEAMLINE"] == "bl01t"  # inherited through extends
    assert test01.config_dir is not None and (test01.config_dir / "ioc.yaml").exists()
    assert "ca-gateway" in example.services and not example.service("ca-gateway").is_ioc


def test_corpus_versions_on_a_copy_with_history(corpus: Path, tmp_path: Path):
    repo = tmp_path / "p47"
    shutil.copytree(corpus / "services" / "p47-services", repo, symlinks=True)
    os.system(f"chmod -R u+w {repo}")
    git(repo, "init", "-q")
    commit_and_tag(repo, "2026.1.1")
    values = repo / "services" / "bl47p-mo-ioc-01" / "values.yaml"
    values.write_text(values.read_text() + "\n# changed\n")
    commit_and_tag(repo, "2026.1.2")
    loaded = ServicesRepo.load(repo)
    assert loaded.versions("bl47p-mo-ioc-01") == ["2026.1.1", "2026.1.2"]
    assert loaded.versions("bl47p-ea-dcam-01") == ["2026.1.1"]


def test_yaml_11_only_values_mean_the_same_to_check_deploy_and_template(tmp_path: Path):
    """Helm reads `enabled: yes` as true and `on:` as the key "true" (YAML 1.1); berth reads
    YAML 1.2, where both are text. Rather than mean two things, every command refuses them at
    the same place, before anything runs."""
    from conftest import run_berth

    repo = tmp_path / "bl01b-services"
    service = repo / "services" / "bl01b-ea-ioc-01"
    (service / "config").mkdir(parents=True)
    (service / "config" / "ioc.yaml").write_text("ioc_name: bl01b-ea-ioc-01\nentities: []\n")
    values = service / "values.yaml"
    values.write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:1.0\n  enabled: yes\n"
                      "on:\n  push: true\n")
    expected = [f"{values}:3:12: 'yes' is ambiguous: Helm reads it as true (a boolean), "
                "YAML 1.2 (berth) as the text 'yes'",
                f"{values}:4:1: 'on' is ambiguous: Helm reads it as true (a boolean)"]
    env = {"BERTH_STATE_DIR": str(tmp_path / "state")}
    for code, argv in ((1, ["check", "-r", repo]),  # check's exit code for findings
                       (2, ["deploy", "bl01b-ea-ioc-01", "-b", "local", "-r", repo]),
                       (2, ["template", "bl01b-ea-ioc-01", "-b", "k8s", "-r", repo])):
        result = run_berth(*argv, env=env)
        assert result.returncode == code, (argv, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        for message in expected:
            assert message in result.stdout + result.stderr, (argv, result.stdout,
                                                              result.stderr)
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.conf"))
    values.write_text("ioc-instance:\n  image: ghcr.io/berth/softioc:1.0\n  enabled: 'yes'\n"
                      "'on':\n  push: true\n")  # quoted: text for Helm and berth alike
    assert ServicesRepo.load(repo).service("bl01b-ea-ioc-01").values["ioc-instance"][
        "enabled"] == "yes"


def test_service_source_keeps_locations_of_values_and_compose_files(tmp_path: Path):
    repo = tmp_path / "r"
    (repo / "services" / "a").mkdir(parents=True)
    (repo / "services" / "a" / "values.yaml").write_text("# c\nioc-instance:\n  image: x\n")
    svc = ServicesRepo.load(repo).service("a")
    assert svc.source is not None
    block = svc.source["ioc-instance"]
    assert (block.loc("image").line, block.loc("image").column) == (3, 10)
    assert str(block.loc("image").file) == str(repo.resolve() / "services" / "a" / "values.yaml")
