"""An ArgoCD deployment repository: `apps/values.yaml` says which version of each service runs
and whether it is enabled; an apps chart turns each entry into one ArgoCD Application.

Edits are round-trip (ruamel.yaml): comments, order, blank lines and quoting survive, so a
change to one service is a one- or two-line git diff. Changes are committed and pushed with git.
"""

from __future__ import annotations

import io
from functools import cached_property
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from berth.errors import BerthError, Location, Problem
from berth.fsutil import atomic_write
from berth.tools.git import Git
from berth.yamlio import loads_yaml

VALUES = Path("apps") / "values.yaml"


class DeploymentRepo:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.values_path = self.root / VALUES
        if not self.values_path.is_file():
            raise BerthError(Problem(
                "not an ArgoCD deployment repository: apps/values.yaml is missing (make one with "
                "`berth new deployment DIR`)", Location(self.root)))
        self._yaml, self.data = self._load()

    # --- reading -----------------------------------------------------------------------------

    def _load(self) -> tuple[YAML, Any]:
        text = self.values_path.read_text()
        try:
            _, indent, block_seq_indent = load_yaml_guess_indent(text)
            parser = YAML()  # round-trip mode
            parser.preserve_quotes = True
            parser.width = 4096  # never re-wrap long lines
            offset = block_seq_indent or 0
            parser.indent(mapping=indent or 2, sequence=(indent or 2) + offset, offset=offset)
            data = parser.load(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise BerthError(Problem(f"invalid YAML: {getattr(exc, 'problem', exc)}",
                                     Location(self.values_path, line, column))) from None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, dict):
            raise BerthError(Problem("expected a mapping at the top level",
                                     Location(self.values_path, 1, 1)))
        if data.get("services") is None:
            data["services"] = CommentedMap()
        if not isinstance(data["services"], dict):
            raise BerthError(Problem("'services' must be a mapping of service names",
                                     Location(self.values_path), field="services"))
        return parser, data

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        """Each service's settings (an entry with no settings gives {})."""
        return {str(k): dict(v or {}) for k, v in self.data["services"].items()}

    @property
    def namespace(self) -> str | None:
        destination = self.data.get("destination") or {}
        return str(destination["namespace"]) if destination.get("namespace") else None

    def source_url(self, service: str) -> str:
        own = self.services.get(service, {}).get("repoURL")
        url = own or (self.data.get("source") or {}).get("repoURL")
        if not url:
            raise BerthError(Problem("no source.repoURL: where is the services repository?",
                                     Location(self.values_path), field="source.repoURL"))
        return str(url)

    def revision(self, service: str) -> str:
        own = self.services.get(service, {}).get("targetRevision")
        return str(own or (self.data.get("source") or {}).get("targetRevision") or "main")

    # --- editing -----------------------------------------------------------------------------

    def update(self, service: str, **fields: Any) -> None:
        """Set fields of one service's entry (None removes a field); new services go last."""
        services = self.data["services"]
        entry = services.get(service)
        if entry is None:
            entry = CommentedMap()
            services[service] = entry
        for key, value in fields.items():
            if value is None:
                entry.pop(key, None)
            elif entry.get(key) != value:
                old = entry.get(key)
                if isinstance(old, ScalarString) and isinstance(value, str):
                    value = type(old)(value)  # keep the file's quoting style
                entry[key] = value

    def text(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()

    def save(self) -> bool:
        """Write the file if it changed; True when it did."""
        text = self.text()
        if text == self.values_path.read_text():
            return False
        atomic_write(self.values_path, text)
        return True

    # --- git ---------------------------------------------------------------------------------

    @cached_property
    def git(self) -> Git:
        return Git(self.root)

    def has_remote(self) -> bool:
        return self.git.has_remote()

    def pull(self) -> None:
        """Catch up with the remote before editing, so the push that follows is a fast-forward."""
        if self.has_remote() and self.git.upstream():
            self.git("pull", "--ff-only", "--quiet")
            self._yaml, self.data = self._load()

    def commit_and_push(self, message: str) -> str:
        """Commit apps/values.yaml (only) and push; returns the new commit."""
        commit = self.git.commit(message, str(VALUES))
        if self.has_remote():
            self.git.push()
        return commit

    def history(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(commit, ISO date, subject, parsed values) for each commit of apps/values.yaml,
        oldest first."""
        entries = []
        for line in reversed(self.git.log(str(VALUES), "%H%x09%cI%x09%s")):
            commit, date, subject = line.split("\t", 2)
            text = self.git.show(commit, VALUES.as_posix()) or ""
            try:  # YAML 1.2 like the round-trip reader above, so `yes` means the same
                values = loads_yaml(text, VALUES) or {}
            except BerthError:
                continue  # a broken commit in the past is skipped, not fatal
            entries.append((commit, date, subject, values if isinstance(values, dict) else {}))
        return entries
