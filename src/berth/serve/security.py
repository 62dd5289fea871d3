"""Who may look and who may act: a token or a user file with scrypt-hashed passwords, two roles
(read-only, operator), and the CSRF token and Origin check every action needs.

The user file is YAML, one entry per user:

    alice: {role: operator, password: "scrypt$16384$8$1$<salt hex>$<hash hex>"}
    bob: {role: read-only, password: "scrypt$..."}

(`berth serve --hash-password` prints such a hash). Served on 127.0.0.1 without either, every
local user of the machine is an operator, as on the command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from berth.errors import BerthError, Location, Problem

ROLES = ("read-only", "operator")
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT, dklen=32)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(bytes.fromhex(digest)))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class UserEntry:
    role: str
    password: str


def load_users(path: Path) -> dict[str, UserEntry]:
    """The user file; an error naming file, line and user for anything wrong in it."""
    from berth.yamlio import YDict, load_yaml

    doc = load_yaml(path)
    if not isinstance(doc, YDict):
        raise BerthError(Problem("user file: expected a mapping of user name to "
                                 "{role, password}", Location(path)))
    users: dict[str, UserEntry] = {}
    for name, entry in doc.items():
        where = doc.loc(name)
        if not isinstance(entry, dict):
            raise BerthError(Problem("expected {role: ..., password: ...}", where, str(name)))
        role, password = entry.get("role"), entry.get("password")
        if role not in ROLES:
            raise BerthError(Problem(f"role {role!r}: expected one of {', '.join(ROLES)}",
                                     where, str(name), "role"))
        if not isinstance(password, str) or not password.startswith("scrypt$") or \
                password.count("$") != 5:
            raise BerthError(Problem("password: expected a scrypt hash (berth serve "
                                     "--hash-password prints one), never the password itself",
                                     where, str(name), "password"))
        users[str(name)] = UserEntry(role, password)
    return users


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """Authentication, roles and CSRF tokens of one server."""

    def __init__(self, host: str, token: str | None = None,
                 users: dict[str, UserEntry] | None = None):
        self.token = token
        self.users = users or {}
        self.open = token is None and not self.users  # loopback only: checked by the caller
        if self.open and not is_loopback(host):
            raise BerthError(Problem(
                f"serving on {host} (beyond this machine) needs authentication: give --token "
                "or --users FILE", field="host"))
        self._secret = secrets.token_bytes(32)

    def user(self, authorization: str | None, cookie_token: str | None = None) -> User | None:
        """The user a request's credentials name; None when they name nobody."""
        if self.open:
            return User("local", "operator")
        if self.token is not None and cookie_token is not None and \
                hmac.compare_digest(cookie_token, self.token):
            return User("token", "operator")
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.token is not None:
            return User("token", "operator") if hmac.compare_digest(value.strip(), self.token) \
                else None
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if self.token is not None and hmac.compare_digest(password, self.token):
            return User(name or "token", "operator")
        entry = self.users.get(name)
        if entry is not None and check_password(password, entry.password):
            return User(name, entry.role)
        return None

    def csrf(self, user: User) -> str:
        return hmac.new(self._secret, user.name.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, user: User, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf(user), token)


def same_origin(origin: str | None, referer: str | None, host: str | None,
                fetch_site: str | None) -> bool:
    """Whether an action comes from the dashboard's own pages (Origin, else Referer, must name
    this host; a browser saying cross-site is refused)."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    source = origin or referer
    if source is None or source == "null":
        return origin is None and referer is None and fetch_site is None  # not a browser
    from urllib.parse import urlsplit

    return urlsplit(source).netloc == host
