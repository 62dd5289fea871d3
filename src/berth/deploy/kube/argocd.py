"""ArgoCD backend (`-b argocd`): GitOps through a deployment repository.

deploy/start/stop/delete/rollback/up/down edit `apps/values.yaml` of the deployment repository
round-trip, commit and push; ArgoCD does the rest. `ps` asks `argocd app list -o json`. Verbs on
a running pod (restart, logs, attach, exec) go to kubectl like the k8s backend.

The repository given with -r/--repo (or BERTH_DEPLOYMENT, or the current directory) is the
deployment repository (it holds apps/values.yaml);
the target (-t) is the namespace of the Applications, by default the destination namespace.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from berth.deploy import InstanceStatus, Release
from berth.deploy.kube.argocd_repo import DeploymentRepo
from berth.deploy.kube.k8s import K8sBackend
from berth.deploy.logs import LogQuery
from berth.errors import BerthError, Location, Problem
from berth.tools import iso, run, run_json

# ArgoCD health -> berth state
HEALTH_STATES = {"Healthy": "running", "Progressing": "starting", "Degraded": "crashed",
                 "Suspended": "stopped", "Missing": "not deployed"}


def create(repo: Path | None, target: str | None) -> ArgoCDBackend:
    return ArgoCDBackend(repo, target)


class ArgoCDBackend:
    name = "argocd"

    def __init__(self, repo: Path | None, namespace: str | None):
        # -r/--repo, else BERTH_DEPLOYMENT, else the current directory
        self.root = Path(repo or os.environ.get("BERTH_DEPLOYMENT") or Path.cwd())
        self._namespace = namespace

    def deployment(self) -> DeploymentRepo:
        return DeploymentRepo(self.root)

    @property
    def namespace(self) -> str | None:
        return self._namespace or self.deployment().namespace

    def _kubectl(self) -> K8sBackend:
        return K8sBackend(None, self.namespace)

    def _change(self, message: str, edits: dict[str, dict[str, Any]]) -> bool:
        """Apply {service: fields} to apps/values.yaml, then commit and push if it changed."""
        repo = self.deployment()
        repo.pull()
        for service, fields in edits.items():
            repo.update(service, **fields)
        if not repo.save():
            return False
        repo.commit_and_push(message)
        return True

    def _tags(self, repo: DeploymentRepo, service: str) -> list[str]:
        """Tags of the service's source repository, oldest version first."""
        url = repo.source_url(service)
        out = run(["git", "ls-remote", "--tags", "--refs", "--sort=v:refname", url])
        return [line.split("refs/tags/", 1)[1] for line in out.splitlines() if "refs/tags/" in line]

    # --- verbs that edit the deployment repository --------------------------------------------

    def deploy(self, service: str, version: str | None = None) -> Release:
        repo = self.deployment()
        tags = self._tags(repo, service)
        if version is None:
            if not tags:
                raise BerthError(f"{repo.source_url(service)} has no tags: give a version")
            version = tags[-1]
        elif version not in tags:
            raise BerthError(f"'{version}' is not a tag of {repo.source_url(service)} "
                             f"(latest: {', '.join(tags[-5:]) or 'none'})")
        self._change(f"deploy {service} {version}",
                     {service: {"targetRevision": version, "enabled": True, "removed": None}})
        return Release(service, version, iso(datetime.now(UTC)), current=True)

    def deploy_local(self, folder: Path) -> Release:
        raise BerthError("the argocd backend deploys tagged versions only; use `-b k8s "
                         "deploy-local` to try a working copy")

    def start(self, service: str) -> None:
        self._known(service)
        self._change(f"start {service}", {service: {"enabled": True}})

    def stop(self, service: str) -> None:
        self._known(service)
        self._change(f"stop {service}", {service: {"enabled": False}})

    def delete(self, service: str) -> None:
        self._known(service)
        self._change(f"delete {service}", {service: {"removed": True}})

    def rollback(self, service: str, version: str | None = None) -> Release:
        versions = [r.version for r in self.history(service)]
        if version is None:
            earlier = [v for v in versions[:-1] if v != (versions[-1] if versions else None)]
            if not earlier:
                raise BerthError(f"'{service}' has no earlier version in the deployment history")
            version = earlier[-1]
        self._change(f"rollback {service} to {version}",
                     {service: {"targetRevision": version, "enabled": True, "removed": None}})
        return Release(service, version, iso(datetime.now(UTC)), current=True, note="rollback")

    def up(self) -> list[Release]:
        repo = self.deployment()
        names = [n for n, s in repo.services.items() if not s.get("removed")]
        self._change("start all services", {name: {"enabled": True} for name in names})
        now = iso(datetime.now(UTC))
        return [Release(name, DeploymentRepo(self.root).revision(name), now, True)
                for name in names]

    def down(self) -> None:
        repo = self.deployment()
        self._change("stop all services",
                     {name: {"enabled": False} for name in repo.services})

    def _known(self, service: str) -> None:
        repo = self.deployment()
        if service not in repo.services:
            raise BerthError(Problem(
                f"'{service}' is not in the deployment (services: "
                f"{', '.join(repo.services) or 'none'})", Location(repo.values_path),
                field="services"))

    # --- verbs that read ------------------------------------------------------------------------

    def history(self, service: str) -> list[Release]:
        """Each change of the service's version, from the git log of apps/values.yaml."""
        releases: list[Release] = []
        previous: tuple[str, bool] | None = None
        for _commit, date, subject, values in self.deployment().history():
            entry = (values.get("services") or {})
            if service not in entry:
                previous = None
                continue
            own = entry[service] or {}
            if own.get("removed"):
                previous = None
                continue
            revision = str(own.get("targetRevision") or
                           (values.get("source") or {}).get("targetRevision") or "main")
            state = (revision, own.get("enabled", True) is not False)
            if previous is None or state[0] != previous[0]:
                releases.append(Release(service, revision, date, note=subject))
            previous = state
        if releases:
            releases[-1].current = True
        return releases

    def ps(self) -> list[InstanceStatus]:
        repo = self.deployment()
        argv = ["argocd", "app", "list", "-o", "json", "-l", "ec_service=true"]
        if self.namespace:
            argv += ["--app-namespace", self.namespace]
        apps = run_json(argv) or []
        rows: dict[str, InstanceStatus] = {}
        for app in apps:
            name = str(app.get("metadata", {}).get("name", ""))
            status = app.get("status", {})
            health = str(status.get("health", {}).get("status", "Unknown"))
            sync = str(status.get("sync", {}).get("status", "Unknown"))
            row = InstanceStatus(name, HEALTH_STATES.get(health, "starting"),
                                 app.get("spec", {}).get("source", {}).get("targetRevision"))
            row.extra = {"health": health, "sync": sync}
            wanted = repo.services.get(name, {})
            if wanted.get("enabled") is False:
                row.state = "stopped"
            if sync != "Synced":
                row.reason = f"ArgoCD: {sync}"
            if health not in HEALTH_STATES:
                row.reason = f"ArgoCD health {health}"
            rows[name] = row
        for name, wanted in repo.services.items():
            if name not in rows and not wanted.get("removed"):
                rows[name] = InstanceStatus(name, "not deployed", repo.revision(name),
                                            reason="no ArgoCD Application yet")
        return [rows[name] for name in sorted(rows)]

    def template(self, service: str, version: str | None = None) -> str:
        """The ArgoCD Application that the deployment repository makes for this service."""
        self._known(service)
        argv = ["helm", "template", "apps", str(self.root / "apps")]
        if self.namespace:
            argv += ["-n", self.namespace]
        if version:
            argv += ["--set-string", f"services.{service}.targetRevision={version}"]
        docs = [d for d in yaml.safe_load_all(run(argv)) if d]
        chosen = [d for d in docs if d.get("metadata", {}).get("name") == service]
        return yaml.safe_dump_all(chosen, sort_keys=False)

    # --- verbs on the running pod: kubectl ------------------------------------------------------

    def restart(self, service: str) -> None:
        self._kubectl().restart(service)

    def logs(self, service: str, query: LogQuery = LogQuery()) -> int:
        return self._kubectl().logs(service, query)

    def attach(self, service: str) -> int:
        return self._kubectl().attach(service)

    def exec(self, service: str, command: Sequence[str]) -> int:
        return self._kubectl().exec(service, command)


