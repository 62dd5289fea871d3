"""Compose semantics the backend works out before it runs anything: start order from
`depends_on`, its errors, environment pass-through and `.env` interpolation. No engine."""

from __future__ import annotations

from pathlib import Path

from berth.deploy.compose.order import start_order
from berth.deploy.compose.spec import compose_env, spec_from_compose
from berth.deploy.services import ServicesRepo
from conftest import run_berth


def compose_repo(root: Path, services: str, dotenv: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "compose.yaml").write_text(f"services:\n{services}")
    if dotenv:
        (root / ".env").write_text(dotenv)
    return root


def test_dependencies_start_first(tmp_path: Path) -> None:
    repo = ServicesRepo.load(compose_repo(tmp_path / "r", (
        "  web:\n    image: x\n    depends_on: [gateway, init]\n"
        "  gateway:\n    image: x\n    depends_on:\n      init:\n"
        "        condition: service_completed_successfully\n"
        "  init:\n    image: x\n  alone:\n    image: x\n")))
    order = start_order(repo.services, repo.services)
    assert order.index("init") < order.index("gateway") < order.index("web")
    assert set(order) == {"web", "gateway", "init", "alone"}


def test_a_missing_or_circular_dependency_is_a_clear_error(tmp_path: Path) -> None:
    env = {"BERTH_STATE_DIR": str(tmp_path / "state"), "BERTH_ENGINE": "docker"}
    repo = compose_repo(tmp_path / "missing", (
        "  web:\n    image: x\n    depends_on: [db]\n"
        "  db:\n    image: x\n    profiles: [debug]\n"))
    result = run_berth("up", "-b", "compose", "-r", repo, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(repo / "compose.yaml") in result.stderr
    assert "web" in result.stderr and "depends_on" in result.stderr
    assert "'db', which is not active in the chosen profiles" in result.stderr

    repo = compose_repo(tmp_path / "cycle", (
        "  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n"))
    result = run_berth("up", "-b", "compose", "-r", repo, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "depends_on makes a cycle: a -> b -> a" in result.stderr


def test_environment_names_without_values_take_the_dotenv_ones(tmp_path: Path) -> None:
    root = compose_repo(tmp_path / "r", (
        "  init:\n    image: x\n    user: ${UNSET_UIDGID}\n"
        "    environment:\n      - PORT\n      - NAME_SERVERS\n      - NOT_ANYWHERE\n"),
        dotenv="PORT=5105\nNAME_SERVERS=localhost:${PORT}\nQUOTED='${PORT}'\n")
    env = compose_env(root)
    assert env["NAME_SERVERS"] == "localhost:5105" and env["QUOTED"] == "${PORT}"
    service = ServicesRepo.load(root).service("init")
    spec = spec_from_compose(service, None, str(root), env)
    assert spec.environment == {"PORT": "5105", "NAME_SERVERS": "localhost:5105"}
    assert "--user" not in spec.extra  # `user: ${UNSET}` sets no user


def test_a_healthcheck_becomes_the_engine_health_check(tmp_path: Path) -> None:
    root = compose_repo(tmp_path / "r", (
        "  gw:\n    image: x\n    healthcheck:\n"
        "      test: [CMD, pvget, 'sts:clients']\n      interval: 5s\n      retries: 3\n"
        "  web:\n    image: x\n    healthcheck:\n      test: [CMD-SHELL, 'curl -f localhost']\n"
        "  off:\n    image: x\n    healthcheck:\n      disable: true\n"
        "  bad:\n    image: x\n    healthcheck:\n      test: [RUN, x]\n"))
    repo = ServicesRepo.load(root)

    def flags(name: str) -> list[str]:
        return spec_from_compose(repo.service(name), None, str(root), {}).extra

    assert flags("gw") == ["--health-cmd", "pvget sts:clients", "--health-interval", "5s",
                           "--health-retries", "3"]
    assert flags("web") == ["--health-cmd", "curl -f localhost"]
    assert flags("off") == ["--no-healthcheck"]
    result = run_berth("template", "bad", "-b", "compose", "-r", root,
                       env={"BERTH_STATE_DIR": str(tmp_path / "state"), "BERTH_ENGINE": "docker"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "healthcheck" in result.stderr and "bad" in result.stderr


def test_the_compose_file_can_name_its_project(tmp_path: Path) -> None:
    """Top-level `name:` (interpolated) names the project, so its networks; COMPOSE_PROJECT_NAME
    still wins, as in compose."""
    root = compose_repo(tmp_path / "repo-folder", "  web:\n    image: x\n")
    text = (root / "compose.yaml").read_text()
    (root / "compose.yaml").write_text("name: ${BL:-bl47p}-Services\n" + text)
    env = {"BERTH_STATE_DIR": str(tmp_path / "state"), "BERTH_ENGINE": "docker"}
    result = run_berth("template", "web", "-b", "compose", "-r", root, env=env)
    assert result.returncode == 0, result.stderr
    assert "--network bl47p-services_default" in result.stdout
    result = run_berth("template", "web", "-b", "compose", "-r", root,
                       env={**env, "COMPOSE_PROJECT_NAME": "other"})
    assert "--network other_default" in result.stdout
