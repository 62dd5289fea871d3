"""Test helper: put the stand-in helm/kubectl/argocd first on PATH, give them rules, read their log.

Used by tests/test_k8s*.py and tests/test_argocd*.py (`from fakebin.fakes import FakeTools`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FAKEBIN = Path(__file__).resolve().parent
DATA = FAKEBIN.parent / "data" / "k8s"


class FakeTools:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "calls.jsonl"
        self.rules_file = folder / "rules.json"
        self.rules: list[dict[str, Any]] = []
        self._save()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{FAKEBIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "BERTH_FAKE_LOG": str(self.log),
            "BERTH_FAKE_RULES": str(self.rules_file),
        }

    def answer(self, tool: str, match: list[str], *, stdout: str = "", file: str | None = None,
               stderr: str = "", exit: int = 0) -> None:
        """Add a rule; `file` names a recorded answer in tests/data/k8s/ (or an absolute path)."""
        rule: dict[str, Any] = {"tool": tool, "match": match, "stdout": stdout,
                                "stderr": stderr, "exit": exit}
        if file is not None:
            rule["stdout_file"] = str(file if Path(file).is_absolute() else DATA / file)
        self.rules.append(rule)
        self._save()

    def _save(self) -> None:
        self.rules_file.write_text(json.dumps(self.rules))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def argvs(self) -> list[list[str]]:
        return [[c["tool"], *c["argv"]] for c in self.calls()]

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)


def git(cwd: Path, *args: str) -> str:
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def make_services_repo(root: Path) -> Path:
    """A small Helm-layout services repo with two IOCs and tags 2026.1.1 and 2026.1.2; the
    working copy then differs from both tags (so tests can tell where files came from)."""
    services = root / "services"
    (services / "bl01b-ea-ioc-01" / "config").mkdir(parents=True)
    (services / "bl01b-mo-ioc-01" / "config").mkdir(parents=True)
    (services / "values.yaml").write_text(
        "global:\n  domain: bl01b\n  location: bl01b-loc\n  enabled: true\n"
        "ioc-instance:\n  hostNetwork: true\n")
    for name in ("bl01b-ea-ioc-01", "bl01b-mo-ioc-01"):
        (services / name / "values.yaml").write_text(
            "ioc-instance:\n  image: ghcr.io/berth/softioc:1.0\n")
        (services / name / "config" / "ioc.yaml").write_text(f"ioc_name: {name}\n# v1\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "tag", "2026.1.1")
    (services / "bl01b-ea-ioc-01" / "config" / "ioc.yaml").write_text(
        "ioc_name: bl01b-ea-ioc-01\n# v2\n")
    git(root, "commit", "-q", "-am", "second")
    git(root, "tag", "2026.1.2")
    (services / "bl01b-ea-ioc-01" / "config" / "ioc.yaml").write_text(
        "ioc_name: bl01b-ea-ioc-01\n# working copy\n")
    return root


def make_deployment_repo(tmp_path: Path, services: Path) -> Path:
    """An ArgoCD deployment repository (the recorded apps/values.yaml, its source.repoURL the
    services repository `services`): a clone of a bare remote, so pushes are real."""
    remote = tmp_path / "deployment.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "deployment"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    (work / "apps").mkdir()
    text = (DATA / "deployment-values.yaml").read_text().replace("REPLACE_ME", str(services))
    (work / "apps" / "values.yaml").write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    git(work, "push", "-q", "-u", "origin", "main")
    return work
