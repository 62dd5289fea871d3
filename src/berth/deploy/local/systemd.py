"""Restore the local beamline after a reboot: a systemd unit running the supervisor.

The unit runs `berth supervise` (hidden command): it regenerates supervisord's config from the
desired state, then exec's `supervisord -n` (under the guard holding the supervisor lock), so
systemd watches supervisord itself and restarts it if it dies. supervisord then starts every
instance whose desired state is `started`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from berth.deploy.local import supervisor as local_supervisor
from berth.deploy.state import StateDir, default_state_dir
from berth.errors import BerthError
from berth.fsutil import atomic_write


def unit_text(state_dir: Path | None = None) -> str:
    state = (state_dir or default_state_dir()).resolve()
    return service_unit(
        "berth local backend: runs the beamline's IOCs at boot.\n"
        "Install: berth systemd-unit > /etc/systemd/system/berth-local.service\n"
        "         systemctl daemon-reload && systemctl enable --now berth-local.service",
        f"berth local IOC supervisor (state {state})", [sys.executable, "-m", "berth",
                                                       "supervise"],
        {"BERTH_STATE_DIR": str(state)}, after="network-online.target",
        service_extra=["KillMode=mixed", "TimeoutStopSec=30"])


def service_unit(header: str, description: str, argv: list[str], env: dict[str, str], *,
                 after: str | None = None, wanted_by: str = "multi-user.target",
                 service_extra: list[str] | None = None) -> str:
    """A systemd unit running `argv` (restarted whenever it ends), with `header` as comments."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += ["[Unit]", f"Description={description}"]
    if after:
        lines += [f"Wants={after}", f"After={after}"]
    lines += ["", "[Service]", "Type=simple"]
    lines += [f"Environment={_quoted(f'{k}={v}')}" for k, v in env.items()]
    lines += [f"ExecStart={' '.join(_quoted(a) for a in argv)}", "Restart=always",
              "RestartSec=2", *(service_extra or []), "", "[Install]", f"WantedBy={wanted_by}"]
    return "\n".join(lines) + "\n"


def _quoted(word: str) -> str:
    """One word of a unit's command line or Environment= (systemd's quoting, not a shell's)."""
    if word and not any(c in word for c in " \t\"'\\;$%"):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return '"' + escaped.replace("%", "%%") + '"'


def run_foreground(state_dir: Path | None = None) -> None:
    state = StateDir((state_dir or default_state_dir()).resolve())
    if local_supervisor.reach(state) is not None:
        raise BerthError(f"a supervisor already runs for {state.root}")
    with state.locked():
        instances = state.load()
        state.programs_dir.mkdir(parents=True, exist_ok=True)
        state.make_socket_dir()
        (state.root / "logs").mkdir(parents=True, exist_ok=True)
        for st in instances.values():
            local_supervisor.write_program(state, st.name, st.started)
        atomic_write(state.supervisor_conf, local_supervisor.main_config(state))
    # Under the guard, as when berth starts it: one supervisor per state folder, provably.
    # Leftovers of a previous supervisor are waited for by each instance's launcher.
    argv = local_supervisor.supervisord_argv(state, foreground=True)
    os.execve(argv[0], argv, local_supervisor.clean_environment())
