"""What supervisord runs for each instance: `python -m berth.deploy.local.launcher INSTANCE_DIR`.

It reads `launch.json` (argv, env, cwd) written by berth at deploy time, counts the run (so
`berth ps` can show restarts without an event listener), prints a marker line separating this
run's output from the previous one in the log, and exec's the IOC: same PID, so supervisord
tracks the IOC itself.

Before that it decides how the previous run ended. A run that reached iocInit (the runner's
`status.json` for that PID says so) and then ran `reset_after` seconds (default 600, Kubernetes'
10 minutes) was healthy: the count of failures starts afresh, as it does when the previous run
ended with its supervisor (a restore after a supervisor crash). Any shorter run is one more in a
streak. The first of a streak after a run that reached iocInit restarts at once (a healthy IOC
that crashed once); after that, and after every start that never reached iocInit, the launcher
waits like Kubernetes does (initial delay, doubling up to a maximum; values
`berth.restart_backoff`), asleep and using no CPU, with `starts.json` saying so for `berth ps`
(`crash-looping`). So an IOC that comes up and dies a little later also ends in a slow loop.

It also refuses to start a second copy: every IOC process carries its identity (BERTH_STATE,
BERTH_INSTANCE) in its environment, and a process of the same identity still running (a leftover
of a killed supervisor that is shutting down, or one started by hand) is waited for, then
reported. The supervisord config therefore never changes with a deployment, only this file does.
Imports are kept to the standard library's small modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
IDENTITY = ("BERTH_STATE", "BERTH_INSTANCE")  # in every IOC process's environment
STARTS = "starts.json"  # the launcher's record of the current start and failed ones before
BACKOFF = {"initial": 10.0, "max": 300.0, "reset_after": 600.0}  # seconds, as Kubernetes
DUPLICATE_WAIT = 20.0  # seconds a leftover copy has to exit (IOCs get stopwaitsecs=15)


def identity_processes(state_root: str, name: str | None = None) -> dict[int, str]:
    """PID → instance name of the processes whose environment says they belong to an instance
    of the state folder `state_root` (only `name`'s, when given)."""
    want_state = f"BERTH_STATE={state_root}".encode()
    want_name = f"BERTH_INSTANCE={name}".encode() if name is not None else b"BERTH_INSTANCE="
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue
        if want_state not in items:
            continue
        for item in items:
            if item.startswith(want_name) and (name is None or item == want_name):
                found[int(entry)] = item.split(b"=", 1)[1].decode(errors="replace")
    return found


def _read_json(path: str) -> dict:  # type: ignore[type-arg]
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: str, data: dict) -> None:  # type: ignore[type-arg]
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a full disk must not keep the IOC from starting


def _failures(instance_dir: str, runtime_dir: str, reset_after: float) -> tuple[int, bool]:
    """(runs in the current streak of short ones, whether the last of them reached iocInit).
    The streak ends with a run that reached iocInit (or runs unprobed) and lasted
    `reset_after` seconds."""
    previous = _read_json(os.path.join(instance_dir, STARTS))
    failures = previous.get("failures", 0) if previous else 0
    failures = failures if isinstance(failures, int) and failures >= 0 else 0
    if previous.get("supervisor") != os.getppid():
        return 0, False  # the previous run ended with its supervisor: no fault of the IOC's
    if not previous.get("started"):
        return failures, False  # killed while waiting out its back-off: the same streak
    status = _read_json(os.path.join(runtime_dir, "status.json"))
    reached = status.get("pid") == previous.get("pid") and bool(
        status.get("ioc_init") or status.get("phase") == "unprobed")
    if reached and time.time() - float(previous["started"]) >= reset_after:
        return 0, True
    return failures + 1, reached


def _back_off(instance_dir: str, spec: dict) -> None:  # type: ignore[type-arg]
    settings = {**BACKOFF, **(spec.get("backoff") or {})}
    initial, most = float(settings["initial"]), float(settings["max"])
    runtime = spec.get("env", {}).get("RUNTIME_DIR", os.path.join(instance_dir, "runtime"))
    failures, reached = _failures(instance_dir, runtime, float(settings["reset_after"]))
    path = os.path.join(instance_dir, STARTS)
    if failures and not (failures == 1 and reached):
        delay = min(initial * 2 ** (failures - 1), most)
        _write_json(path, {"pid": os.getpid(), "supervisor": os.getppid(),
                           "failures": failures, "delay": delay, "until": time.time() + delay})
        time.sleep(delay)
    _write_json(path, {"pid": os.getpid(), "supervisor": os.getppid(), "failures": failures,
                       "started": time.time()})


def _refuse_duplicate(instance_dir: str) -> None:
    """Wait for another process of this instance to finish; exit when it does not."""
    state_root = os.path.dirname(os.path.dirname(os.path.abspath(instance_dir)))
    name = os.path.basename(os.path.abspath(instance_dir))
    deadline = time.monotonic() + DUPLICATE_WAIT
    while True:
        others = sorted(set(identity_processes(state_root, name)) - {os.getpid()})
        if not others:
            break
        if time.monotonic() > deadline:
            print(f"berth: instance {name} already runs outside its supervisor (pid "
                  f"{', '.join(map(str, others))}): not starting a second copy",
                  flush=True)
            sys.exit(1)
        time.sleep(0.1)
    os.environ.update({"BERTH_STATE": state_root, "BERTH_INSTANCE": name})


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
    _die_with_supervisor()
    runs = _count_run(instance_dir)  # a start, from the moment supervisord asks for it
    _back_off(instance_dir, spec)
    _refuse_duplicate(instance_dir)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{spec['marker']} run {runs} started {stamp} version {spec['version']}", flush=True)
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
