"""Kubernetes backend (`-b k8s`): one Helm release per service.

A service folder with a Chart.yaml is its own chart, rendered as `ec` renders it (see
`service_chart`), IOC or not; a folder with only an `ioc-instance:` block in its values gets
berth's bundled chart. Every verb is a few `helm`/`kubectl` calls with argv lists; answers are
read as JSON. `ps` makes two calls for the whole namespace however many services run in it.
Start/stop of a bundled-chart release go through its `enabled` value (replicas 1/0) so Helm
stays the owner of the desired state; other releases are scaled with kubectl, as `ec` does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berth.deploy import InstanceStatus, Release
from berth.deploy.kube.chart import (
    CHART_NAME,
    bundled_chart_label,
    chart_copy,
    service_values,
    values_file,
)
from berth.deploy.kube.checkout import checkout, commit_of
from berth.deploy.kube.service_chart import has_own_chart, prepared_chart
from berth.deploy.logs import LogQuery, relay
from berth.deploy.services import Service, ServicesRepo
from berth.errors import BerthError, Problem
from berth.tools import iso, parse_time, run, run_interactive, run_json

LOCAL_VERSION = "local"  # app version of a release made from a working copy
WORKLOADS = "statefulsets,deployments,daemonsets,pods"
HELM_LIST_MAX = "10000"  # helm list returns 256 releases unless told otherwise


def create(repo: Path | None, target: str | None) -> K8sBackend:
    return K8sBackend(repo, target)


class K8sBackend:
    name = "k8s"

    def __init__(self, repo: Path | None, namespace: str | None):
        self.repo_path = Path(repo) if repo else None
        self.namespace = namespace

    # --- helpers -----------------------------------------------------------------------------

    @property
    def ns(self) -> list[str]:
        return ["-n", self.namespace] if self.namespace else []

    def repo(self) -> ServicesRepo:
        """The services repository: -r/--repo, else the current directory."""
        return ServicesRepo.load(self.repo_path or Path.cwd())

    @staticmethod
    def pod(service: str) -> str:
        return f"{service}-0"  # the StatefulSet's only pod

    def _helm_argv(self, stack: ExitStack, verb: list[str], repo: ServicesRepo, service: str,
                   version: str, commit: str | None) -> list[str]:
        """`helm VERB NAME CHART …` for one service, its own chart or berth's bundled one,
        prepared in temporary folders that live as long as `stack`."""
        found = _service_at(repo, service, version)
        if has_own_chart(found):
            app_version = None if version == LOCAL_VERSION and verb == ["template"] else version
            commit_args = ["--set-string", f"global.commitHash={commit}"] if commit else []
            chart = stack.enter_context(prepared_chart(found, repo.root, app_version))
            return ["helm", *verb, service, str(chart.path), *self.ns, *chart.values,
                    *commit_args]
        values = service_values(found, commit)
        copy = stack.enter_context(chart_copy(version))
        file = stack.enter_context(values_file(values))
        return ["helm", *verb, service, str(copy), *self.ns, "--values", str(file)]

    def _helm(self, verb: list[str], repo: ServicesRepo, service: str, version: str,
              commit: str | None) -> str:
        with ExitStack() as stack:
            return run(self._helm_argv(stack, verb, repo, service, version, commit))

    def _helm_upgrade(self, repo: ServicesRepo, service: str, version: str,
                      commit: str | None) -> None:
        self._helm(["upgrade", "--install"], repo, service, version, commit)

    def _render(self, repo: ServicesRepo, service: str, version: str) -> str:
        return self._helm(["template"], repo, service, version, None)

    def _latest(self, repo: ServicesRepo, service: str) -> str:
        versions = repo.versions(service)
        if not versions:
            raise BerthError(
                f"service '{service}' has no tagged version in {repo.root}: tag the repository "
                "or deploy the working copy with deploy-local")
        return versions[-1]

    def _releases(self) -> list[dict[str, Any]]:
        answer = run_json(["helm", "list", *self.ns, "--all", "--max", HELM_LIST_MAX,
                           "-o", "json"])
        return list(answer or [])

    def _helm_history(self, service: str) -> list[dict[str, Any]]:
        answer = run_json(["helm", "history", service, *self.ns, "-o", "json"])
        return sorted(answer or [], key=lambda entry: int(entry.get("revision", 0)))

    def _set_enabled(self, service: str, enabled: bool) -> None:
        history = self._helm_history(service)
        version = str(history[-1].get("app_version") or LOCAL_VERSION) if history else None
        if version is None:
            raise BerthError(f"'{service}' is not deployed in {self._where()}")
        if history[-1].get("chart") != bundled_chart_label():
            # a chart berth does not know the values of: scale its workloads, as ec does
            run(["kubectl", "scale", "statefulset,deployment", *self.ns, "-l", f"app={service}",
                 f"--replicas={int(enabled)}"])
            return
        with chart_copy(version) as chart:
            run(["helm", "upgrade", service, str(chart), *self.ns, "--reuse-values",
                 "--set", f"enabled={str(enabled).lower()}"])

    def _where(self) -> str:
        return f"namespace '{self.namespace}'" if self.namespace else "the current namespace"

    # --- verbs -------------------------------------------------------------------------------

    def deploy(self, service: str, version: str | None = None) -> Release:
        repo = self.repo()
        version = version or self._latest(repo, service)
        repo.service(service)  # a clear error for an unknown name before any git work
        with checkout(repo, version) as tagged:
            self._helm_upgrade(tagged, service, version, commit_of(repo, version))
        return Release(service, version, iso(datetime.now(UTC)), current=True)

    def deploy_local(self, folder: Path) -> Release:
        folder = Path(folder).resolve()
        repo = ServicesRepo.load(folder.parent.parent)
        self._helm_upgrade(repo, folder.name, LOCAL_VERSION, None)
        return Release(folder.name, LOCAL_VERSION, iso(datetime.now(UTC)), current=True,
                       note="local working copy")

    def start(self, service: str) -> None:
        self._set_enabled(service, True)

    def stop(self, service: str) -> None:
        self._set_enabled(service, False)

    def restart(self, service: str) -> None:
        run(["kubectl", "rollout", "restart", f"statefulset/{service}", *self.ns])

    def delete(self, service: str) -> None:
        run(["helm", "uninstall", service, *self.ns])

    def logs(self, service: str, query: LogQuery = LogQuery()) -> int:
        argv = ["kubectl", "logs", self.pod(service), *self.ns, "-c", service]
        argv += ["--follow"] * query.follow + ["--previous"] * query.previous
        return relay(argv + query.engine_flags())

    def _terminal(self) -> list[str]:
        return ["-i", "-t"] if sys.stdin.isatty() else ["-i"]

    def attach(self, service: str) -> int:
        return run_interactive(["kubectl", "attach", self.pod(service), *self.ns, "-c",
                                service, *self._terminal()])

    def exec(self, service: str, command: Sequence[str]) -> int:
        return run_interactive(["kubectl", "exec", self.pod(service), *self.ns, "-c", service,
                                *self._terminal(), "--", *(list(command) or ["bash"])])

    def history(self, service: str) -> list[Release]:
        releases = []
        for entry in self._helm_history(service):
            releases.append(Release(
                service=service,
                version=str(entry.get("app_version") or ""),
                deployed_at=iso(parse_time(entry.get("updated"))),
                current=entry.get("status") == "deployed",
                note=f"revision {entry.get('revision')}: {entry.get('description', '')}".strip(),
            ))
        return releases

    def rollback(self, service: str, version: str | None = None) -> Release:
        history = self._helm_history(service)
        current = next((e for e in reversed(history) if e.get("status") == "deployed"), None)
        earlier = [e for e in history if current is None or e["revision"] < current["revision"]]
        if version is None:
            candidates = [e for e in earlier
                          if current is None or e.get("app_version") != current.get("app_version")]
        else:
            candidates = [e for e in history
                          if e.get("app_version") == version and e is not current]
        if not candidates:
            wanted = f"version {version}" if version else "an earlier version"
            raise BerthError(f"no earlier revision of '{service}' holds {wanted} (helm history: "
                             f"{', '.join(str(e.get('app_version')) for e in history) or 'none'})")
        chosen = candidates[-1]
        run(["helm", "rollback", service, str(chosen["revision"]), *self.ns])
        return Release(service, str(chosen.get("app_version") or ""), iso(datetime.now(UTC)),
                       current=True, note=f"rollback to revision {chosen['revision']}")

    def template(self, service: str, version: str | None = None) -> str:
        return self.templates([service], version)

    def templates(self, services: Sequence[str], version: str | None = None) -> str:
        """What `template` prints for each service, one after the other in the order given.
        Each service's chart is prepared and rendered by its own `helm template`, several at
        once; a problem with any service is reported, with all the others, and nothing is
        printed."""
        repo = self.repo()
        with ExitStack() as stack:
            if version is not None:
                repo = stack.enter_context(checkout(repo, version))
            wanted = version or LOCAL_VERSION
            workers = min(len(services), (os.cpu_count() or 1) + 1) or 1
            with ThreadPoolExecutor(max_workers=workers) as pool:
                answers = list(pool.map(lambda s: self._try_render(repo, s, wanted), services))
        problems = [p for answer in answers if isinstance(answer, BerthError)
                    for p in answer.problems]
        if problems:
            raise BerthError(problems)
        return "".join(a for a in answers if isinstance(a, str))

    def _try_render(self, repo: ServicesRepo, service: str, version: str) -> str | BerthError:
        try:
            return self._render(repo, service, version)
        except BerthError as exc:
            return exc

    def up(self) -> list[Release]:
        """Deploy every service of the repository at its latest version (working copy if
        untagged). Every chart is prepared first: a chart missing for any service is
        reported, with all the others, before anything is installed."""
        repo = self.repo()
        planned: list[tuple[list[str], Release]] = []
        problems: list[Problem] = []
        with ExitStack() as stack:
            trees: dict[str, ServicesRepo] = {}
            for name in repo.services:
                versions = repo.versions(name)
                tag = versions[-1] if versions else None
                try:
                    if tag is None:
                        argv = self._helm_argv(stack, ["upgrade", "--install"], repo, name,
                                               LOCAL_VERSION, None)
                    else:
                        if tag not in trees:  # one extraction per tag, shared by its services
                            trees[tag] = stack.enter_context(checkout(repo, tag))
                        argv = self._helm_argv(stack, ["upgrade", "--install"], trees[tag],
                                               name, tag, commit_of(repo, tag))
                except BerthError as exc:
                    problems += exc.problems
                    continue
                note = "" if tag else "local working copy"
                planned.append((argv, Release(name, tag or LOCAL_VERSION, "", True, note)))
            if problems:
                raise BerthError([*problems, Problem(
                    f"nothing deployed: {len(problems)} problem(s) in the services' charts")])
            for argv, release in planned:
                run(argv)
                release.deployed_at = iso(datetime.now(UTC))
        return [release for _, release in planned]

    def down(self) -> None:
        """Uninstall, in one helm call, every release of the namespace that is a service of the
        repository (with -r) or made from berth's bundled chart."""
        services = set(self.repo().services) if self.repo_path is not None else set()
        names = [r["name"] for r in self._releases()
                 if r["name"] in services or r.get("chart") == bundled_chart_label()]
        if names:
            run(["helm", "uninstall", *names, *self.ns])

    def ps(self) -> list[InstanceStatus]:
        """Every release of the namespace (and, with -r, every service of the repository):
        IOCs with their pod's state, other services with their workloads' state."""
        objects = run_json(["kubectl", "get", WORKLOADS, *self.ns, "-o", "json"]) or {}
        releases = {r["name"]: r for r in self._releases()}
        iocs: dict[str, dict[str, Any]] = {}
        pods: dict[str, dict[str, Any]] = {}
        workloads: dict[str, list[dict[str, Any]]] = {}
        for item in objects.get("items", []):
            meta = item.get("metadata", {})
            labels = meta.get("labels") or {}
            if item.get("kind") == "Pod":
                if labels.get("ioc") == "true":
                    pods[str(labels.get("app", ""))] = item
                continue
            if item.get("kind") == "StatefulSet" and labels.get("ioc") == "true":
                iocs[str(labels.get("app") or meta.get("name", ""))] = item
                continue
            owner = (meta.get("annotations") or {}).get("meta.helm.sh/release-name") or \
                labels.get("app.kubernetes.io/instance") or labels.get("app") or meta.get("name")
            workloads.setdefault(str(owner), []).append(item)
        now = time.time()
        rows = {name: _status(name, sts, pods.get(name), releases.get(name), now)
                for name, sts in iocs.items()}
        for name, release in releases.items():
            if name in rows:
                continue
            if name in workloads or not str(release.get("chart", "")).startswith(
                    f"{CHART_NAME}-"):
                rows[name] = _service_status(name, workloads.get(name, []), release)
            else:  # an IOC release without its StatefulSet
                rows[name] = InstanceStatus(name, "not deployed", _version(release, None),
                                            reason=f"helm release is {release.get('status')}")
        if self.repo_path is not None:
            for name in self.repo().services:
                rows.setdefault(name, InstanceStatus(name, "not deployed"))
        return [rows[name] for name in sorted(rows)]


def _service_at(repo: ServicesRepo, service: str, version: str) -> Service:
    """The service in a checkout; a name missing at that tag is said so (not a temp path)."""
    if version != LOCAL_VERSION and service not in repo.services:
        raise BerthError(f"service '{service}' does not exist at version {version}")
    return repo.service(service)


def _version(release: dict[str, Any] | None, sts: dict[str, Any] | None) -> str | None:
    if release and release.get("app_version"):
        return str(release["app_version"])
    if sts:
        version = sts.get("metadata", {}).get("annotations", {}).get("berth/version")
        return str(version) if version is not None else None
    return None


def _status(name: str, sts: dict[str, Any], pod: dict[str, Any] | None,
            release: dict[str, Any] | None, now: float) -> InstanceStatus:
    """One `ps` row from a StatefulSet, its pod and its Helm release."""
    row = InstanceStatus(name, "starting", _version(release, sts))
    if release and release.get("status") not in (None, "deployed"):
        row.reason = f"helm release is {release['status']}"
    if int(sts.get("spec", {}).get("replicas", 1)) == 0:
        row.state = "stopped"
        return row
    if pod is None:
        row.reason = row.reason or "no pod yet"
        return row
    row.extra["node"] = pod.get("spec", {}).get("nodeName")
    statuses = pod.get("status", {}).get("containerStatuses") or []
    first = statuses[0] if statuses else None
    ioc = next((c for c in statuses if c.get("name") in (name, "ioc")), first)
    if ioc is None:
        row.reason = row.reason or str(pod.get("status", {}).get("phase", "Pending"))
        return row
    row.restarts = int(ioc.get("restartCount", 0))
    row.extra["ready"] = bool(ioc.get("ready"))
    state = ioc.get("state", {})
    if "running" in state:
        started = parse_time(state["running"].get("startedAt"))
        row.uptime = round(now - started.timestamp(), 1) if started else None
        row.state = "running" if ioc.get("ready") else "starting"
        row.ready = bool(ioc.get("ready"))
        row.health = "ready" if row.ready else "starting"
        if not ioc.get("ready"):
            row.reason = row.reason or "not ready"
    elif "waiting" in state:
        reason = str(state["waiting"].get("reason", ""))
        row.state = "backoff" if "BackOff" in reason or reason == "ErrImagePull" else "starting"
        row.reason = ": ".join(filter(None, [reason, state["waiting"].get("message")]))
    elif "terminated" in state:
        row.state = "crashed"
        term = state["terminated"]
        row.reason = f"{term.get('reason', 'terminated')} (exit {term.get('exitCode')})"
    return row


def _ready(item: dict[str, Any]) -> tuple[int, int]:
    """(ready, wanted) pods of a Deployment, StatefulSet or DaemonSet."""
    status = item.get("status") or {}
    if item.get("kind") == "DaemonSet":
        return int(status.get("numberReady", 0)), int(status.get("desiredNumberScheduled", 0))
    return int(status.get("readyReplicas", 0)), int((item.get("spec") or {}).get("replicas", 1))


def _service_status(name: str, items: list[dict[str, Any]],
                    release: dict[str, Any] | None) -> InstanceStatus:
    """One `ps` row for a service that is not an IOC: the state of its workloads together."""
    row = InstanceStatus(name, "running", _version(release, None))
    if release and release.get("status") not in (None, "deployed"):
        row.state, row.reason = "crashed", f"helm release is {release['status']}"
    counts = {f"{i.get('kind')}/{i.get('metadata', {}).get('name')}": _ready(i) for i in items}
    row.extra["workloads"] = {k: f"{ready}/{wanted}" for k, (ready, wanted) in counts.items()}
    if release:
        row.extra["chart"] = release.get("chart")
    if not counts:
        row.reason = row.reason or "no workloads (only other resources)"
    elif all(wanted == 0 for _, wanted in counts.values()):
        row.state = "stopped"
    elif row.state == "running" and any(ready < wanted for ready, wanted in counts.values()):
        row.state, row.reason = "starting", "not all pods ready"
    return row
