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
    python = sys.executable
    return f"""# berth local backend: runs the beamline's IOCs at boot.
# Install: berth systemd-unit > /etc/systemd/system/berth-local.service
#          systemctl daemon-reload && systemctl enable --now berth-local.service
[Unit]
Description=berth local IOC supervisor (state {state})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
Environment=BERTH_STATE_DIR={state}
ExecStart={python} -m berth supervise
Restart=always
RestartSec=2
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


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
