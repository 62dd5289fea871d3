"""What `ec` users expect of a command line: options before or after the verb, ec's environment
names, --version, shell completion, confirmation before destructive verbs, --dry-run.

Backend calls are observed through the stand-in helm/kubectl (tests/fakebin) or, for the local
backend, through its real state folder."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import berth
from fakebin.fakes import FakeTools, make_services_repo

NS = "bl99"
IOC = "bl01b-ea-ioc-01"
RESTART = ["kubectl", "rollout", "restart", f"statefulset/{IOC}", "-n", NS]


def no_berth_env() -> dict[str, str]:
    """The environment without any BERTH_* or EC_* setting a developer's shell may carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "EC_"))}


def run_clean(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
              input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "berth", *map(str, args)], cwd=cwd,
                          env={**no_berth_env(), **(env or {})}, capture_output=True, text=True,
                          timeout=120, input=input)


# --- options before or after the verb ------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["restart", IOC, "-b", "k8s", "-t", NS],
    ["-b", "k8s", "-t", NS, "restart", IOC],
    ["--backend=k8s", "--target", NS, "restart", IOC],
    ["-b", "k8s", "restart", IOC, "-t", NS],
])
def test_global_options_before_or_after_the_verb(fakes: FakeTools, argv: list[str]) -> None:
    result = run_clean(*argv, env=fakes.env)
    assert result.returncode == 0, result.stderr
    assert fakes.argvs() == [RESTART]


def test_repo_and_json_before_the_verb(tmp_path: Path) -> None:
    repo = make_services_repo(tmp_path / "bl01b-services")
    after = run_clean("list", "-r", repo, "--json")
    before = run_clean("-r", repo, "--json", "list")
    assert after.returncode == before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert [row["name"] for row in json.loads(before.stdout)] == [
        "bl01b-ea-ioc-01", "bl01b-mo-ioc-01"]


def test_an_option_before_a_verb_that_does_not_take_it_is_refused(fakes: FakeTools) -> None:
    # `-t` of `image build` is --tag: a global -t must not turn into an image name
    result = run_clean("-t", NS, "image", "build", env=fakes.env)
    assert result.returncode == 2
    assert "--target does not apply to `berth image build`" in result.stderr
    listed = run_clean("-b", "k8s", "list")
    assert listed.returncode == 2 and "--backend does not apply to `berth list`" in listed.stderr
    assert "Traceback" not in result.stderr + listed.stderr


# --- ec's environment names --------------------------------------------------------------

def test_ec_environment_variables_stand_in_for_berth_ones(fakes: FakeTools) -> None:
    result = run_clean("restart", IOC, env={**fakes.env, "EC_CLI_BACKEND": "K8S",
                                            "EC_TARGET": NS})
    assert result.returncode == 0, result.stderr
    assert fakes.argvs() == [RESTART]


def test_berth_variables_and_options_win_over_ec_ones(fakes: FakeTools) -> None:
    env = {**fakes.env, "EC_CLI_BACKEND": "argocd", "EC_TARGET": "elsewhere",
           "BERTH_BACKEND": "k8s"}
    assert run_clean("restart", IOC, "-t", NS, env=env).returncode == 0
    assert fakes.argvs() == [RESTART]


def test_ec_services_repo_names_the_repository(tmp_path: Path) -> None:
    repo = make_services_repo(tmp_path / "bl01b-services")
    result = run_clean("list", "--json", env={"EC_SERVICES_REPO": str(repo)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {row["name"] for row in json.loads(result.stdout)} == {IOC, "bl01b-mo-ioc-01"}


# --- version and help ----------------------------------------------------------------------

def test_version_option_and_command() -> None:
    for argv in (["--version"], ["version"]):
        result = run_clean(*argv)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == berth.__version__


# --- shell completion --------------------------------------------------------------------

def complete(words: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> list[str]:
    """What bash completion offers for the last word of `words` (Typer's protocol)."""
    parts = words.split(" ")
    result = run_clean(env={"_BERTH_COMPLETE": "complete_bash", "COMP_WORDS": words,
                            "COMP_CWORD": str(len(parts) - 1), **(env or {})}, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_of_verbs_instances_and_versions(tmp_path: Path) -> None:
    repo = make_services_repo(tmp_path / "bl01b-services")
    assert complete("berth dep") == ["deploy", "deploy-local"]
    assert complete("berth deploy bl01b-e", cwd=repo) == [IOC]
    assert complete(f"berth deploy -r {repo} bl01b-") == [IOC, "bl01b-mo-ioc-01"]
    assert complete(f"berth deploy {IOC} 2026", cwd=repo) == ["2026.1.1", "2026.1.2"]
    assert complete("berth deploy x", cwd=tmp_path) == []  # not a repository: no traceback


def test_completion_installs_with_one_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # typed in a bash (Typer detects the shell it runs in)
    script = '"$0" -m berth --install-completion; code=$?; exit $code'
    result = subprocess.run(["bash", "-c", script, sys.executable],
                            env={**no_berth_env(), "HOME": str(home), "SHELL": "/bin/bash"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "_BERTH_COMPLETE=complete_bash" in "".join(
        p.read_text() for p in home.rglob("*") if p.is_file())
    assert "source" in (home / ".bashrc").read_text()


# --- confirmation ------------------------------------------------------------------------

def test_delete_and_down_refuse_without_a_terminal_and_without_yes(fakes: FakeTools,
                                                                   tmp_path: Path) -> None:
    repo = make_services_repo(tmp_path / "bl01b-services")
    for argv in (["delete", IOC], ["down", "-r", str(repo)]):
        result = run_clean(*argv, "-b", "k8s", "-t", NS, env=fakes.env, input="y\n")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "not asking on a non-terminal" in result.stderr and "-y" in result.stderr
    assert fakes.argvs() == []  # nothing was asked of the cluster
    assert run_clean("delete", IOC, "-y", "-b", "k8s", "-t", NS, env=fakes.env).returncode == 0
    assert fakes.argvs() == [["helm", "uninstall", IOC, "-n", NS]]


def on_terminal(argv: list[str], answer: str, env: dict[str, str]) -> tuple[int, str]:
    """Run berth with a pty as its terminal; type `answer` once it asks; (exit code, output)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "berth", *argv], stdin=follower,
                            stdout=follower, stderr=follower, env={**no_berth_env(), **env},
                            close_fds=True)
    os.close(follower)
    output, answered = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"[y/N]" in output:
                os.write(leader, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode(errors="replace")


def test_delete_asks_on_a_terminal(fakes: FakeTools) -> None:
    argv = ["delete", IOC, "-b", "k8s", "-t", NS]
    code, output = on_terminal(argv, "n", fakes.env)
    assert code == 1, output
    assert f"Delete instance {IOC} from the k8s backend (target {NS})? [y/N]" in output
    assert fakes.argvs() == []
    code, output = on_terminal(argv, "y", fakes.env)
    assert code == 0, output
    assert fakes.argvs() == [["helm", "uninstall", IOC, "-n", NS]]


# --- dry runs ----------------------------------------------------------------------------

def test_dry_runs_ask_nothing_of_the_cluster(fakes: FakeTools, tmp_path: Path) -> None:
    repo = make_services_repo(tmp_path / "bl01b-services")
    k8s = ["-b", "k8s", "-t", NS, "-r", str(repo)]
    expected = {
        ("deploy", IOC): f"would deploy {IOC} at 2026.1.2 on the k8s backend (target {NS})",
        ("deploy", IOC, "2026.1.1"): f"would deploy {IOC} at 2026.1.1 on the k8s backend",
        ("stop", IOC): f"would stop {IOC} on the k8s backend",
        ("restart", IOC): f"would restart {IOC} on the k8s backend",
        ("rollback", IOC): f"would roll back {IOC} on the k8s backend",
        ("delete", IOC): f"would delete {IOC} on the k8s backend",
        ("down",): "would stop every instance on the k8s backend",
        ("up",): f"would start {IOC} on the k8s backend",
    }
    for argv, line in expected.items():
        result = run_clean(*argv, *k8s, "--dry-run", env=fakes.env)
        assert result.returncode == 0, (argv, result.stderr)
        assert line in result.stdout and "nothing was changed" in result.stdout
    assert fakes.argvs() == []
    unknown = run_clean("stop", "bl01b-ea-ioc-1", *k8s, "--dry-run", env=fakes.env)
    assert unknown.returncode == 2 and f"did you mean {IOC}" in unknown.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix not in (".log", ".sock") and "logs" not in p.parts}


def test_dry_runs_leave_the_local_state_untouched(tmp_path: Path) -> None:
    import uuid

    from test_local import LOOPBACK, ca_value, copy_example

    from berth.deploy.local import backend as local

    tag = uuid.uuid4().hex[:6].upper()
    repo = copy_example(tmp_path / "bl01b", tag)
    state = tmp_path / "state"
    env = {**LOOPBACK, "BERTH_STATE_DIR": str(state), "BERTH_REPO": str(repo)}
    name = "bl01b-ea-sum-01"
    first = run_clean("deploy", name, "--dry-run", env=env)
    assert first.returncode == 0, first.stderr
    assert f"would deploy {name} at the working copy on the local backend" in first.stdout
    assert not state.exists()  # not even the state folder was made

    os.environ.update(LOOPBACK)  # for this process's CA client
    try:
        deployed = run_clean("deploy", name, env=env)
        assert deployed.returncode == 0, deployed.stderr
        ca_value(f"BL01B{tag}-EA-SUM-01:SUM")
        before = snapshot(state)
        for argv in (["stop", name], ["delete", name], ["down"], ["up"],
                     ["deploy", name], ["restart", name], ["rollback", name]):
            result = run_clean(*argv, "--dry-run", env=env)
            assert result.returncode == 0, (argv, result.stderr)
            assert result.stdout.startswith("would "), result.stdout
        assert snapshot(state) == before
        rows = json.loads(run_clean("ps", "--json", env=env).stdout)
        states = {r["name"]: r["state"] for r in rows}
        assert states.pop(name) not in ("stopped", "not deployed")
        assert "stopped" not in states.values()  # `up` did not deploy the others
        ca_value(f"BL01B{tag}-EA-SUM-01:SUM")  # still answering
    finally:
        local.shutdown(state)
