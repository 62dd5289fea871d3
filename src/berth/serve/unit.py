"""`berth serve --install-unit`: the dashboard as a systemd user service, written by the unit
writer of the local backend's supervisor. The token never goes into the unit: it is kept in
~/.config/berth/serve.env (mode 0600), which the unit reads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from berth.deploy.local.systemd import service_unit
from berth.deploy.state import default_state_dir
from berth.fsutil import atomic_write

UNIT_NAME = "berth-serve.service"


def config_home() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".config"


def serve_argv(repos: list[Path], backend: str, target: str | None, all_repos: bool,
               host: str, port: int, users: Path | None, webhooks: list[str],
               settle: float, grace: float) -> list[str]:
    """The `berth serve` command line the unit runs: the options given now, paths absolute."""
    argv = [sys.executable, "-m", "berth", "serve", "-b", backend, "--host", host,
            "--port", str(port), "--alert-settle", f"{settle:g}", "--alert-grace", f"{grace:g}"]
    for repo in repos:
        argv += ["-r", str(repo.resolve())]
    if target:
        argv += ["-t", str(Path(target).expanduser().resolve()) if backend == "local"
                 else target]
    if all_repos:
        argv.append("--all")
    if users is not None:
        argv += ["--users", str(users.resolve())]
    for hook in webhooks:
        argv += ["--webhook", hook]
    return argv


def unit_text(argv: list[str], env_file: Path) -> str:
    state = default_state_dir()
    return service_unit(
        "berth serve: the operator's dashboard, as a systemd user service.\n"
        "Written by: berth serve --install-unit (its other options are the server's)\n"
        f"Start:      systemctl --user daemon-reload && systemctl --user enable --now "
        f"{UNIT_NAME}\n"
        "At boot without a login: loginctl enable-linger",
        "berth serve (operator dashboard)", argv, {"BERTH_STATE_DIR": str(state)},
        after="network-online.target", wanted_by="default.target",
        service_extra=[f"EnvironmentFile=-{env_file}"])


def install(argv: list[str], token: str | None) -> list[Path]:
    """Write the unit (and the token's environment file when a token is given)."""
    env_file = config_home() / "berth" / "serve.env"
    unit = config_home() / "systemd" / "user" / UNIT_NAME
    written = []
    if token is not None:
        env_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(env_file, f"BERTH_SERVE_TOKEN={token}\n", mode=0o600)
        written.append(env_file)
    unit.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(unit, unit_text(argv, env_file))
    return [unit, *written]
