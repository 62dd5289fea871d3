"""What supervisord runs for each instance: `python -m berth.deploy.local.launcher INSTANCE_DIR`.

It reads `launch.json` (argv, env, cwd) written by berth at deploy time, counts the run (so
`berth ps` can show restarts without an event listener), prints a marker line separating this
run's output from the previous one in the log, and exec's the IOC: same PID, so supervisord
tracks the IOC itself. The supervisord config therefore never changes with a deployment, only
this file does. Imports are kept to the standard library's small modules.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1


def _count_run(instance_dir: str) -> int:
    path = os.path.join(instance_dir, "runs")
    try:
        with open(path) as f:
            runs = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        runs = 0
    runs += 1
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{runs}\n")
    os.replace(tmp, path)
    return runs


def _die_with_supervisor() -> None:
    # If supervisord dies, its IOCs go too: the next berth command (or systemd) starts a new
    # supervisord, which starts them again; no unsupervised duplicate keeps serving the PVs.
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor died before the request took effect
        sys.exit(1)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m berth.deploy.local.launcher INSTANCE_DIR", file=sys.stderr)
        return 2
    instance_dir = argv[0]
    with open(os.path.join(instance_dir, "launch.json")) as f:
        spec = json.load(f)
    runs = _count_run(instance_dir)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{spec['marker']} run {runs} started {stamp} version {spec['version']}", flush=True)
    _die_with_supervisor()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
    argv = spec["argv"]
    if argv[:4] == [sys.executable, "-m", "berth", "run"]:
        # `berth run` in this very process: one interpreter start-up less per IOC (it exec's
        # the IOC runner itself, keeping this PID). None: arguments for the full command line.
        sys.argv = ["berth", *argv[3:]]
        from berth.run.launch import main as run_main

        code = run_main(argv[4:])
        if code is not None:
            return code
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
