"""The local backend's settings of an instance: `berth:` in Helm values, `x-berth:` in a compose
service; defaults, and located errors for values of the wrong kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.deploy.local.settings import local_settings
from berth.deploy.services import ServicesRepo
from berth.errors import BerthError
from conftest import run_berth


def _compose(root: Path, extra: str) -> ServicesRepo:
    root.mkdir()
    (root / "compose.yaml").write_text(
        "services:\n  ioc-a:\n    image: ghcr.io/berth/softioc:1\n"
        f"    labels: {{is_ioc: \"true\"}}\n{extra}")
    return ServicesRepo.load(root)


def test_compose_services_carry_them_under_x_berth(tmp_path: Path) -> None:
    repo = _compose(tmp_path / "r", "    x-berth:\n      restart_backoff: {initial: 2, "
                    "reset_after: 30}\n      log: {max_bytes: 1MB}\n")
    settings = local_settings(repo.service("ioc-a"))
    assert settings["restart_backoff"] == {"initial": 2.0, "max": 300.0, "reset_after": 30.0}
    assert settings["log"] == {"max_bytes": 1024 ** 2, "backups": 1}
    assert local_settings(_compose(tmp_path / "plain", "").service("ioc-a")) == {
        "restart_backoff": {"initial": 10.0, "max": 300.0, "reset_after": 600.0},
        "log": {"max_bytes": 20 * 1024 ** 2, "backups": 1}}


@pytest.mark.parametrize(("extra", "field"), [
    ("    x-berth: 3\n", "x-berth"),
    ("    x-berth: {restart_backoff: {reset_after: 0}}\n", "x-berth.restart_backoff.reset_after"),
    ("    x-berth: {restart_backoff: {later: 1}}\n", "x-berth.restart_backoff.later"),
])
def test_a_wrong_x_berth_value_is_located(tmp_path: Path, extra: str, field: str) -> None:
    repo = _compose(tmp_path / "r", extra)
    with pytest.raises(BerthError) as caught:
        local_settings(repo.service("ioc-a"))
    text = str(caught.value)
    assert str(tmp_path / "r" / "compose.yaml") in text and field in text and "ioc-a" in text


def test_reset_after_from_helm_values_reaches_the_launcher(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ioc = repo / "services" / "bl99-ea-ioc-01"
    (ioc / "config").mkdir(parents=True)
    (repo / "services" / "values.yaml").write_text("global:\n  domain: bl99\n")
    (ioc / "values.yaml").write_text(
        "ioc-instance:\n  image: ghcr.io/berth/softioc:1\n"
        "berth:\n  restart_backoff: {reset_after: 120}\n")
    (ioc / "config" / "ioc.yaml").write_text("ioc_name: x\nentities: []\n")
    result = run_berth("template", "bl99-ea-ioc-01", "-r", repo,
                       env={"BERTH_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout[result.stdout.index("{"):])
    assert spec["backoff"] == {"initial": 10.0, "max": 300.0, "reset_after": 120.0}
