"""`deploy NAME` and `start NAME` on the compose backend bring up what NAME depends on first, as
`docker compose up NAME` does: transitively, waiting for each condition. Real containers."""

from __future__ import annotations

import uuid
from pathlib import Path

from berth.tools.engine import Engine
from conftest import run_berth
from containers import (  # noqa: F401 - fixtures too
    berth_env,
    engine_fixture,
    inspect,
    loopback_epics_fixture,
    remove_containers,
    softioc_image_fixture,
)


def _compose(root: Path, image: str, tag: str) -> list[str]:
    names = [f"web-{tag}", f"api-{tag}", f"db-{tag}", f"alone-{tag}"]
    web, api, db, alone = names
    sleeper = f"    image: {image}\n    command: [sleep, '300']\n"
    root.mkdir()
    (root / "compose.yaml").write_text(
        f"services:\n  {web}:\n{sleeper}    depends_on: [{api}]\n"
        f"  {api}:\n{sleeper}    depends_on:\n      {db}:\n"
        "        condition: service_healthy\n"
        f"  {db}:\n{sleeper}    healthcheck:\n      test: [CMD, 'true']\n"
        "      interval: 1s\n"
        f"  {alone}:\n{sleeper}")
    return names


def _running(engine: Engine, name: str) -> bool:
    return bool((inspect(engine, name).get("State") or {}).get("Running"))


def test_deploy_and_start_bring_up_the_dependencies_first(
        tmp_path: Path, engine: Engine, softioc_image: str) -> None:
    tag = uuid.uuid4().hex[:6]
    repo = tmp_path / "repo"
    web, api, db, alone = _compose(repo, softioc_image, tag)
    env = berth_env(tmp_path / "state")
    try:
        result = run_berth("deploy", web, "-b", "compose", "-r", repo, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert all(_running(engine, name) for name in (web, api, db))
        health = (inspect(engine, db).get("State") or {}).get("Health") or {}
        assert health.get("Status") == "healthy"  # api waited for db's condition
        assert not inspect(engine, alone)  # what web does not need stays down

        for name in (web, api, db):
            assert run_berth("stop", name, "-b", "compose", "-r", repo,
                             env=env).returncode == 0
        assert not _running(engine, db)
        result = run_berth("start", web, "-b", "compose", "-r", repo, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        assert all(_running(engine, name) for name in (web, api, db))
    finally:
        remove_containers(engine, [web, api, db, alone])
