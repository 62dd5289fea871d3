"""The web application: pages rendered on the server (Jinja2, escaped), server-sent events for
live rows and log tails, screens over HTTP, actions behind role, Origin and CSRF checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from berth.errors import BerthError
from berth.serve import metrics, pvs
from berth.serve.alerts import Alerts
from berth.serve.audit import AuditLog
from berth.serve.fleet import VERBS, Fleet
from berth.serve.overview import Overview, sse
from berth.serve.security import Guard, User, same_origin

HERE = Path(__file__).parent
CONTENT_TYPES = {".bob": "application/xml", ".opi": "application/xml",
                 ".adl": "text/plain; charset=utf-8", ".edl": "text/plain; charset=utf-8"}
LOG_LINES = 300
STATES = ("running", "starting", "backoff", "crashed", "stopped", "not deployed",
          "not runnable here")


@dataclass
class Server:
    fleet: Fleet
    guard: Guard
    alerts: Alerts = field(default_factory=lambda: Alerts([]))
    interval: float = 1.0
    overview: Overview = field(init=False)
    audit: AuditLog = field(init=False)
    _pv_cache: tuple[float, list[pvs.PvEntry]] | None = None

    def __post_init__(self) -> None:
        self.overview = Overview(self.fleet, self.interval, self.alerts.observe)
        self.audit = AuditLog(self.fleet.state_dir())

    def pv_index(self) -> list[pvs.PvEntry]:
        """The PV index, made again when the rows changed since (a deploy may add PVs)."""
        key = self.overview.polls and hash(json.dumps(
            sorted((r["name"], r.get("version"), r["state"]) for r in self.overview.rows.values()),
            default=str))
        if self._pv_cache is None or self._pv_cache[0] != key:
            self._pv_cache = (key, pvs.index(self.fleet))
        return self._pv_cache[1]


_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**values), status_code=status)


def _user(request: Request) -> User | None:
    server: Server = request.app.state.server
    return server.guard.user(request.headers.get("authorization"),
                             request.cookies.get("berth_token"))


def _refuse(status: int, why: str) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="berth"'} if status == 401 else None
    return PlainTextResponse(why + "\n", status_code=status, headers=headers)


def _common(request: Request, user: User, **values: Any) -> dict[str, Any]:
    server: Server = request.app.state.server
    return {"user": user, "csrf": server.guard.csrf(user), "backend": server.fleet.backend_name,
            "alerts": list(server.alerts.active.values()), **values}


async def overview_page(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    await server.overview.ready()
    rows = sorted(server.overview.rows.values(), key=lambda r: r["name"])
    repos = [m.label for m in server.fleet.members] if server.fleet.several else []
    repo = request.query_params.get("repo", "")
    if repo:  # (the page filters in the browser; this is the same filter without script)
        rows = [r for r in rows if r["repo_label"] == repo]
    return _page("overview.html", **_common(
        request, user, rows=rows, states=STATES, error=server.overview.error, repos=repos,
        repo=repo, q=request.query_params.get("q", ""),
        state=request.query_params.get("state", "")))


async def events(request: Request) -> Response:
    if _user(request) is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    return StreamingResponse(server.overview.stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _logs_argv(fleet: Fleet, key: str, *extra: str) -> list[str]:
    name, repo = fleet.where(key)
    argv = [sys.executable, "-m", "berth", "logs", name, "-b", fleet.backend_name, *extra]
    if repo is not None:
        argv += ["-r", str(repo)]
    if fleet.target:
        argv += ["-t", fleet.target]
    return argv


async def _run(argv: list[str], timeout: float = 20.0) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return "(timed out reading the log)"
    return out.decode(errors="replace")


async def instance_page(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    fleet = server.fleet
    name = request.path_params["name"]
    await server.overview.ready()
    row = server.overview.rows.get(name)
    if row is None:
        return _page("missing.html", 404, **_common(request, user, name=name))
    try:
        history = [r.to_json() for r in await asyncio.to_thread(fleet.history, name)]
    except BerthError:
        history = []
    current, previous = await asyncio.gather(
        _run(_logs_argv(fleet, name, "--tail", str(LOG_LINES))),
        _run(_logs_argv(fleet, name, "--previous", "--tail", str(LOG_LINES))))
    if previous.startswith("berth: ") and "no previous run" in previous:
        previous = ""
    config = await asyncio.to_thread(fleet.generated, name)
    found = pvs.find(await asyncio.to_thread(server.pv_index), "*", name)
    return _page("instance.html", **_common(
        request, user, row=row, history=history, log=current, previous=previous,
        config=config, pvs=found, screens=fleet.screens(name), verbs=VERBS,
        versions=fleet.versions(name), audit=server.audit.entries(name, 20),
        message=request.query_params.get("message", "")))


async def log_stream(request: Request) -> Response:
    if _user(request) is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    argv = _logs_argv(server.fleet, request.path_params["name"], "--follow", "--tail", "0")

    async def lines() -> AsyncIterator[str]:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL)
        assert process.stdout is not None
        try:
            yield "retry: 3000\n\n"
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    yield sse("end", "the log ended")
                    return
                yield sse("line", raw.decode(errors="replace").rstrip("\n"))
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); nothing for other bodies."""
    from urllib.parse import parse_qs

    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


async def action(request: Request) -> Response:
    server: Server = request.app.state.server
    if not same_origin(request.headers.get("origin"), request.headers.get("referer"),
                       request.headers.get("host"), request.headers.get("sec-fetch-site")):
        return _refuse(403, "refused: the request does not come from this dashboard's pages")
    user = _user(request)
    if user is None:
        return _refuse(401, "authentication needed")
    if not user.operator:
        return _refuse(403, f"refused: {user.name} is {user.role}; actions need the operator "
                       "role")
    form = await _form(request)
    if not server.guard.csrf_ok(user, form.get("csrf")):
        return _refuse(403, "refused: missing or wrong CSRF token (reload the page)")
    name, verb = request.path_params["name"], request.path_params["verb"]
    if verb not in VERBS:
        return _refuse(404, f"unknown action {verb}")
    version = (form.get("version") or "").strip() or None
    client = request.client.host if request.client else ""
    try:
        result = await asyncio.to_thread(server.fleet.act, verb, name, version)
        ok = True
    except BerthError as err:
        result, ok = "; ".join(str(p) for p in err.problems), False
    server.audit.record(user.name, verb, name, result, ok, client, version)
    await server.overview.poll()  # the table shows the change at once
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": ok, "result": result}, status_code=200 if ok else 409)
    from urllib.parse import quote

    return RedirectResponse(f"/i/{quote(name)}?message={quote(result)}", status_code=303)


async def screen(request: Request) -> Response:
    if _user(request) is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    name, file = request.path_params["name"], request.path_params["file"]
    path = await asyncio.to_thread(server.fleet.screen_file, name, file)
    if path is None:
        return _refuse(404, f"no screen {file} for instance {name}")
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix])


async def preview(request: Request) -> Response:
    if _user(request) is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    name, file = request.path_params["name"], request.path_params["file"]
    path = server.fleet.screen_file(name, file)
    if path is None or path.suffix != ".bob":
        return _refuse(404, f"no .bob screen {file} for instance {name}")
    from berth.screens.preview import render_html

    try:
        return HTMLResponse(render_html(path.read_text(errors="replace"), path,
                                        f"{name}: {file}"))
    except BerthError as err:
        return _refuse(422, "; ".join(str(p) for p in err.problems))


async def pv_search(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    pattern = request.query_params.get("q", "")
    error, found = "", []
    if pattern:
        try:
            found = pvs.find(await asyncio.to_thread(server.pv_index), pattern)
        except BerthError as err:
            error = "; ".join(str(p) for p in err.problems)
    if request.query_params.get("format") == "json":
        return JSONResponse({"pattern": pattern, "error": error,
                             "found": [e.to_json() for e in found]},
                            status_code=400 if error else 200)
    return _page("pv.html", **_common(request, user, q=pattern, found=found, error=error))


async def metrics_page(request: Request) -> Response:
    if _user(request) is None:
        return _refuse(401, "authentication needed")
    server: Server = request.app.state.server
    await server.overview.ready()
    text = metrics.render(sorted(server.overview.rows.values(), key=lambda r: r["name"]),
                          server.fleet.backend_name)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    server: Server = request.app.state.server
    ok = not server.overview.error and server.overview.polls > 0
    return JSONResponse({"ok": ok, "polls": server.overview.polls,
                         "instances": len(server.overview.rows),
                         "error": server.overview.error}, status_code=200 if ok else 503)


def create_app(server: Server) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.overview.start()
        yield
        await server.overview.stop()

    app = Starlette(routes=[
        Route("/", overview_page),
        Route("/events", events),
        Route("/i/{name}", instance_page),
        Route("/i/{name}/logs/stream", log_stream),
        Route("/i/{name}/{verb}", action, methods=["POST"]),
        Route("/opi/{name}/{file}", screen),
        Route("/preview/{name}/{file}", preview),
        Route("/pv", pv_search),
        Route("/metrics", metrics_page),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], lifespan=lifespan)
    app.state.server = server
    return app
