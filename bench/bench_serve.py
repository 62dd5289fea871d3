"""`berth serve`: time to first byte and weight of the overview page, memory of the server, and
how soon a state change reaches an open page (server-sent events).

    .venv/bin/python bench/bench_serve.py [--sizes 50,300] [--rounds 20] [--local]
        [--local-count 50]

Each size runs a real server (uvicorn, the real application) in its own process over a stand-in
backend answering `ps` with that many rows (a k8s-like fleet no machine here can hold); with
--local also the real `berth serve` over the example beamline on the local backend (6 real
IOCs, network-isolated by the caller: run it under `unshare -n`), and with --local-count N the
real `berth serve` over a generated repository of N small soft IOCs (the instance `berth new
ioc` makes), all up under the local backend. A state change is made by the
stand-in flipping one row when a trigger file appears. Targets: TTFB ≤ 0.3 s for 300 instances,
RSS ≤ 80 MB, a change pushed within 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "unit" / "serve"), str(REPO / "tests"),
                str(REPO / "tests" / "unit" / "deploy")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child(count: int, port: int, trigger: str) -> None:
    """The server process of a stand-in fleet of `count` instances."""
    import uvicorn
    from standin import StandIn, statuses

    from berth.serve.app import Server, create_app
    from berth.serve.fleet import Fleet
    from berth.serve.security import Guard

    class Flipping(StandIn):
        def ps(self) -> Any:
            rows = super().ps()
            if os.path.exists(trigger):
                rows[0].state, rows[0].ready, rows[0].health = "backoff", False, ""
            return rows

    state = tempfile.mkdtemp(prefix="bench-serve-")
    fleet = Fleet("local", None, state, backend=Flipping(statuses(count)))
    uvicorn.run(create_app(Server(fleet, Guard("127.0.0.1"))), host="127.0.0.1", port=port,
                log_level="warning", access_log=False)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ttfb(url: str) -> tuple[float, int]:
    """Seconds to the first byte of the body, and the page's bytes."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    start = time.perf_counter()
    conn.request("GET", parts.path or "/")
    response = conn.getresponse()
    first = response.read(1)
    elapsed = time.perf_counter() - start
    size = len(first) + len(response.read())
    conn.close()
    return elapsed, size


def push_latency(url: str, flip: Any, name: str) -> float:
    """Seconds from a state change in the backend to its row arriving at an open page."""
    import httpx

    got = threading.Event()
    opened = threading.Event()

    def read() -> None:
        kind = ""
        with httpx.stream("GET", url + "/events", timeout=None) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "rows":
                    data = json.loads(line[6:])
                    if data.get("full"):
                        opened.set()
                    elif any(r["name"] == name for r in data["changed"]):
                        got.set()
                        return

    threading.Thread(target=read, daemon=True).start()
    opened.wait(30)
    start = time.perf_counter()
    flip()
    got.wait(30)
    return time.perf_counter() - start


def measure(url: str, pid: int, rounds: int) -> dict[str, float]:
    for _ in range(3):
        ttfb(url + "/")  # warm up (the first poll, templates compiled)
    times, size = [], 0
    for _ in range(rounds):
        elapsed, size = ttfb(url + "/")
        times.append(elapsed)
    return {"ttfb_median": statistics.median(times), "ttfb_max": max(times),
            "bytes": size, "rss_mb": rss_mb(pid)}


def wait_healthy(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def standin_case(count: int, rounds: int) -> dict[str, Any]:
    port = free_port()
    trigger = Path(tempfile.mkdtemp()) / "flip"
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(count), str(port),
                             str(trigger)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        result = measure(url, proc.pid, rounds)
        result["push_s"] = push_latency(url, trigger.touch, "bl00-ea-ioc-000")
        result["rss_mb"] = max(result["rss_mb"], rss_mb(proc.pid))
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def fleet_repo(root: Path, count: int) -> tuple[Path, list[str]]:
    """A services repository of `count` soft IOCs (berth new ioc's instance), with the example's
    shared values (loopback-only EPICS server settings)."""
    import shutil

    from test_local import copy_example

    from berth.fsutil import atomic_write_all
    from berth.scaffold import _ioc_files

    repo = copy_example(root / "bl50", "BENCH")
    for folder in (repo / "services").iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
    names = [f"bl50b-ea-ioc-{i:02d}" for i in range(count)]
    files: dict[Path, str] = {}
    for name in names:
        files.update(_ioc_files(repo, name, "helm"))
    atomic_write_all(files)
    return repo, names


def local_case(rounds: int, count: int | None = None) -> dict[str, Any]:
    from test_local import LOOPBACK, copy_example

    from berth.deploy.local import backend as local

    root = Path(tempfile.mkdtemp(prefix="bench-serve-local-"))
    if count is None:
        repo, name = copy_example(root / "bl01b", "BENCH"), "bl01b-ea-cnt-01"
    else:
        repo, names = fleet_repo(root, count)
        name = names[0]
    env = {**os.environ, **LOOPBACK, "BERTH_STATE_DIR": str(root / "state"),
           "BERTH_REPO": str(repo)}
    berth = [sys.executable, "-m", "berth"]
    started = time.perf_counter()
    subprocess.run([*berth, "up", "--wait", "--timeout", "600"], env=env, check=True,
                   capture_output=True)
    up_s = time.perf_counter() - started
    port = free_port()
    proc = subprocess.Popen([*berth, "serve", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        rows = json.loads(subprocess.run([*berth, "ps", "--json"], env=env, check=True,
                                         capture_output=True, text=True).stdout)
        ready = sum(1 for r in rows if r["ready"])
        print(f"local backend: {len(rows)} instances, {ready} ready (berth up took "
              f"{up_s:.1f} s)", file=sys.stderr)
        result = measure(url, proc.pid, rounds)
        result["ready"] = ready
        pid = next(r["pid"] for r in rows if r["name"] == name)
        result["push_s"] = push_latency(url, lambda: os.kill(pid, signal.SIGKILL), name)
        result["rss_mb"] = max(result["rss_mb"], rss_mb(proc.pid))
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        local.shutdown(root / "state")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,300", help="Stand-in sizes ('' for none).")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--local-count", type=int, default=0,
                        help="Also a generated local fleet of this many real soft IOCs.")
    args = parser.parse_args()
    cases: list[tuple[str, dict[str, Any]]] = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        cases.append((f"stand-in, {size} instances", standin_case(size, args.rounds)))
    if args.local:
        cases.append(("local backend, example (6 IOCs)", local_case(args.rounds)))
    if args.local_count:
        cases.append((f"local backend, {args.local_count} soft IOCs",
                      local_case(args.rounds, args.local_count)))
    print(f"{'case':34} {'TTFB median':>12} {'TTFB max':>9} {'page KB':>8} {'RSS MB':>7} "
          f"{'push s':>7}")
    for label, r in cases:
        print(f"{label:34} {r['ttfb_median']:12.4f} {r['ttfb_max']:9.4f} "
              f"{r['bytes'] / 1024:8.1f} {r['rss_mb']:7.1f} {r['push_s']:7.3f}")


if __name__ == "__main__":
    main()
