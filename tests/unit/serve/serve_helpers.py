"""A real beamline (the example, under the local backend in a temp state folder) with a real
`berth serve` in front of it, and a local webhook receiver — shared by the serve tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from test_local import Beamline, make_history, wait_until

SCREEN_IOC = "bl01b-mo-sim-01"  # hand-written screens in its config folder
GENERATED_IOC = "bl01b-di-scr-01"  # screens generated from a PVI device at each start
MARKUP_COMMENT = "# <script>alert('not escaped')</script>"  # must show as text, never run
GENERATE_DATA = Path(__file__).parents[2] / "data" / "generate"
INDEX_BOB = """<?xml version="1.0" encoding="UTF-8"?>
<display version="2.0.0">
  <name>{name}</name>
  <widget type="action_button" version="3.0.0">
    <name>motor</name><x>10</x><y>10</y><width>120</width><height>30</height>
    <text>Motor X</text>
    <actions><action type="open_display"><file>motor.bob</file>
      <macros><M>X</M></macros><target>tab</target><description>Motor X</description>
    </action></actions>
  </widget>
</display>
"""
MOTOR_BOB = """<?xml version="1.0" encoding="UTF-8"?>
<display version="2.0.0">
  <name>motor $(M)</name><width>300</width><height>80</height>
  <widget type="textupdate" version="2.0.0">
    <name>rbv</name><pv_name>{prefix}$(M):RBV</pv_name>
    <x>10</x><y>10</y><width>200</width><height>20</height>
  </widget>
</display>
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A webhook receiver on loopback: every POSTed JSON body, in order."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def start(self) -> ThreadingHTTPServer:
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class Dashboard:
    line: Beamline
    url: str
    process: subprocess.Popen[str]
    receiver: Receiver
    log_file: Path

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=20, **kw)

    def csrf(self, name: str) -> str:
        page = self.get(f"/i/{name}").text
        found = re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page)
        assert found, page[:500]
        return found.group(1)

    def act(self, name: str, verb: str, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/i/{name}/{verb}", data={"csrf": self.csrf(name)},
                          headers={"Origin": self.url, **headers}, timeout=60,
                          follow_redirects=True)


def make_beamline(root: Path) -> Beamline:
    line = Beamline.of_example(root)
    repo, tag = line.repo, line.tag
    config = repo / "services" / SCREEN_IOC / "config"
    (config / "index.bob").write_text(INDEX_BOB.format(name=SCREEN_IOC))
    (config / "motor.bob").write_text(MOTOR_BOB.format(prefix=f"BL01B{tag}-MO-SIM-01:"))
    add_generated_screens(repo, f"BL01B{tag}-DI-SCR-01")
    sum_yaml = repo / "services" / "bl01b-ea-sum-01" / "config" / "ioc.yaml"
    sum_yaml.write_text(sum_yaml.read_text() + f"{MARKUP_COMMENT}\n")
    make_history(repo)
    line.ok("up", "--wait", "--timeout", "90")
    return line


def add_generated_screens(repo: Path, prefix: str) -> None:
    """An instance whose support (beside it in its config folder) has a PVI screen, so each
    start generates runtime/opi/index.bob and the device's screen."""
    folder = repo / "services" / GENERATED_IOC
    (folder / "config").mkdir(parents=True)
    (folder / "values.yaml").write_text(
        "ioc-instance:\n  image: ghcr.io/berth/softioc:0.1.0\n  env:\n"
        f"    - name: IOC_PREFIX\n      value: {prefix}\n")
    for name in ("demo.ibek.support.yaml", "demo.pvi.device.yaml"):
        (folder / "config" / name).write_text((GENERATE_DATA / name).read_text())
    (folder / "config" / "ioc.yaml").write_text(
        'ioc_name: "{{ _global.get_env(\'IOC_NAME\') }}"\nentities:\n'
        f'  - {{type: demo.Screen, P: "{prefix}:"}}\n')


def beamline_dashboard(root: Path) -> Iterator[Dashboard]:
    """The example beamline up under `root`, `berth serve` over it; everything stopped after."""
    from berth.deploy.local import backend as local

    line = make_beamline(root)
    try:
        yield from start_dashboard(line, root)
    finally:
        local.shutdown(line.state)


def start_dashboard(line: Beamline, root: Path, *extra: str) -> Iterator[Dashboard]:
    receiver = Receiver()
    hook_server = receiver.start()
    port = free_port()
    log_file = root / "serve.log"
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "berth", "serve", "--port", str(port), "--webhook",
             receiver.url, "--alert-settle", "4", "--alert-grace", "3", *extra],
            env={**os.environ, **line.env}, stdout=log, stderr=subprocess.STDOUT, text=True)
    dash = Dashboard(line, f"http://127.0.0.1:{port}", process, receiver, log_file)
    try:
        wait_until(lambda: dash.get("/healthz").status_code == 200, "berth serve to answer")
        yield dash
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        hook_server.shutdown()


def wait_rows(dash: Dashboard, check: Any, what: str, timeout: float = 40) -> Any:
    def rows() -> Any:
        page = dash.get("/metrics").text
        return check(page)

    return wait_until(rows, what, timeout)


def now() -> float:
    return time.monotonic()
