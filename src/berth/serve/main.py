"""Start the dashboard under uvicorn."""

from __future__ import annotations

from pathlib import Path

from berth.errors import BerthError, Problem
from berth.serve.alerts import AlertRules, Alerts, Webhook
from berth.serve.fleet import Fleet, log
from berth.serve.security import Guard, load_users


def run_server(repos: list[Path], backend: str, target: str | None, all_repos: bool,
               host: str, port: int, token: str | None, users: Path | None,
               webhooks: list[str], settle: float, grace: float) -> None:
    try:
        import uvicorn

        from berth.serve.app import Server, create_app
    except ImportError as exc:
        raise BerthError(Problem(f"berth serve needs the serve extra ({exc.name} is missing): "
                                 "pip install 'berth[serve]'")) from None
    guard = Guard(host, token, load_users(users) if users is not None else None)
    hooks = [Webhook.parse(w) for w in webhooks]
    fleet = Fleet(backend, repos, target, all_repos)
    alerts = Alerts(hooks, AlertRules(settle=settle, grace=grace),
                    source=f"berth {backend}{f' {target}' if target else ''}")
    server = Server(fleet, guard, alerts)
    log(f"http://{host}:{port}/ ({backend} backend"
        f"{', ' + str(len(repos)) + ' repositories' if len(repos) > 1 else ''}"
        f"{', ' + str(len(hooks)) + ' webhook(s)' if hooks else ''})")
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=2)
