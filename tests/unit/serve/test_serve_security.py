"""Who may look and act: beyond localhost only with a token or a user file (scrypt hashes), the
read-only role cannot act, the operator can only with the page's CSRF token from its own
origin; a bad user file is one clear error. Over a stand-in backend (the roles, not the IOCs,
are under test here; test_serve.py acts on real IOCs)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin import StandIn, statuses
from starlette.testclient import TestClient

from berth.errors import BerthError
from berth.serve.app import Server, create_app
from berth.serve.fleet import Fleet
from berth.serve.security import Guard, check_password, hash_password, load_users
from conftest import run_berth

NAME = "bl00-ea-ioc-000"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(f'alice: {{role: operator, password: "{hash_password("wonder")}"}}\n'
                    f'bob: {{role: read-only, password: "{hash_password("builder")}"}}\n')
    return path


@pytest.fixture
def client(users_file: Path, tmp_path: Path) -> Iterator[tuple[TestClient, StandIn]]:
    backend = StandIn(statuses(3))
    fleet = Fleet("local", None, str(tmp_path), backend=backend)  # (its audit log: tmp_path)
    server = Server(fleet, Guard("0.0.0.0", token="s3cret", users=load_users(users_file)))
    with TestClient(create_app(server), base_url="http://dash.example:8800") as test_client:
        yield test_client, backend


def csrf(client: TestClient, headers: dict[str, str]) -> str:
    page = client.get(f"/i/{NAME}", headers=headers).text
    found = re.search(r'name="csrf" content="([0-9a-f]+)"', page)
    assert found
    return found.group(1)


def test_password_hashes_are_scrypt_and_check() -> None:
    stored = hash_password("pw")
    assert stored.startswith("scrypt$16384$8$1$")
    assert check_password("pw", stored) and not check_password("other", stored)
    assert hash_password("pw") != stored  # salted


def test_beyond_localhost_needs_authentication() -> None:
    with pytest.raises(BerthError, match="needs authentication"):
        Guard("0.0.0.0")
    Guard("127.0.0.1")
    Guard("::1")


def test_pages_need_credentials(client: tuple[TestClient, StandIn]) -> None:
    test_client, _ = client
    refused = test_client.get("/")
    assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
    assert test_client.get("/", headers=basic("alice", "wrong")).status_code == 401
    assert test_client.get("/", headers=basic("bob", "builder")).status_code == 200
    assert test_client.get("/metrics", headers={"Authorization": "Bearer s3cret"}
                           ).status_code == 200
    assert test_client.get("/healthz").status_code == 200  # for probes, says only ok


def test_read_only_cannot_act_operator_can(client: tuple[TestClient, StandIn]) -> None:
    test_client, backend = client
    bob = basic("bob", "builder")
    origin = {"Origin": "http://dash.example:8800"}
    refused = test_client.post(f"/i/{NAME}/stop", data={"csrf": csrf(test_client, bob)},
                               headers={**bob, **origin})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert "do-stop" not in test_client.get(f"/i/{NAME}", headers=bob).text  # no buttons
    alice = basic("alice", "wonder")
    done = test_client.post(f"/i/{NAME}/stop", data={"csrf": csrf(test_client, alice)},
                            headers={**alice, **origin}, follow_redirects=False)
    assert done.status_code == 303
    assert backend.calls == [("stop", NAME)]
    wrong_token = test_client.post(f"/i/{NAME}/stop", data={"csrf": csrf(test_client, bob)},
                                   headers={**alice, **origin})
    assert wrong_token.status_code == 403  # another user's token is not alice's
    evil = test_client.post(f"/i/{NAME}/stop", data={"csrf": csrf(test_client, alice)},
                            headers={**alice, "Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert backend.calls == [("stop", NAME)]


def test_user_file_mistakes_are_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("alice: {role: admin, password: x}\n")
    result = run_berth("serve", "--users", path, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert f"{path}:1" in result.stderr and "alice" in result.stderr and "role" in result.stderr
    assert "Traceback" not in result.stderr
    path.write_text("alice: {role: operator, password: plaintext}\n")
    result = run_berth("serve", "--users", path, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "scrypt hash" in result.stderr


def test_open_host_without_auth_is_refused() -> None:
    result = run_berth("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "needs authentication" in result.stderr


def test_other_commands_never_import_the_web_stack() -> None:
    from conftest import REPO_ROOT

    for args in (["--help"], ["list", "-r", str(REPO_ROOT / "examples" / "bl01b")],
                 ["pv", "--help"]):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "berth", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-500:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
        assert not {"starlette", "uvicorn", "berth.serve.app"} & imported, args


def test_hash_password_prints_a_hash_the_user_file_accepts(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "berth", "serve", "--hash-password"],
                            input="wonder\nwonder\n", capture_output=True, text=True,
                            timeout=60, start_new_session=True)  # (no terminal: reads stdin)
    assert result.returncode == 0, result.stderr
    stored = result.stdout.strip().splitlines()[-1]
    assert check_password("wonder", stored) and not check_password("wander", stored)
    path = tmp_path / "users.yaml"
    path.write_text(f'carol: {{role: read-only, password: "{stored}"}}\n')
    assert load_users(path)["carol"].role == "read-only"
