"""Credentials: channel API keys, customer session tokens, agent passwords and console logins.

- API keys are ``kf_<id>_<secret>``; only the SHA-256 of the whole key is stored, so a leaked
  database leaks no usable key. The id is public and names the key in listings and revocations.
- Session tokens are ``ks1.<payload>.<signature>``: base64url JSON ``{"c": customer, "e": expiry}``
  signed with HMAC-SHA256 under the app's secret. They bind a browser or app to one customer.
- Console logins are the same construction with ``{"a": agent, "e": expiry}`` under a different
  prefix, so neither kind of token passes for the other.
- Passwords are hashed with scrypt (n=2^14, r=8, p=1) and a random salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from core.desk import DeskStore
from core.errors import AuthError, ConfigError
from core.settings import Settings
from core.types import AgentAccount, ApiKey, Channel, CustomerId

__all__ = [
    "Principal",
    "TokenSigner",
    "check_password",
    "create_api_key",
    "hash_password",
    "load_secret",
    "verify_api_key",
]

_SESSION = "ks1"
_CONSOLE = "ka1"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Principal:
    """Who is calling the conversation API."""

    kind: str
    """``key`` (a channel API key: any customer), ``session`` (one customer) or ``open`` (auth off)."""
    subject: str
    """The API key id, the session's customer id, or ``open``."""
    customer_id: CustomerId | None = None
    """The only customer a session may act for; None for keys and open access."""
    channel: Channel | None = None

    def customer(self, requested: str | None) -> CustomerId:
        """The customer this request acts for.

        Raises:
            AuthError: a session token used for another customer, or no customer named.
        """
        if self.customer_id is not None:
            if requested not in (None, self.customer_id):
                raise AuthError("this session token belongs to another customer")
            return self.customer_id
        if not requested:
            raise AuthError("customer_id is required with an API key")
        return CustomerId(requested)


def load_secret(settings: Settings) -> bytes:
    """The signing secret: ``KEFU_SECRET_KEY``, else the key file, created (mode 600) on first use.

    Raises:
        ConfigError: the configured secret is shorter than 32 characters.
    """
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value().encode()
        if len(value) < 32:
            raise ConfigError("KEFU_SECRET_KEY must be at least 32 characters")
        return value
    path: Path = settings.secret_key_path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks session tokens and console logins."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, prefix: str, claims: dict[str, object]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._secret, f"{prefix}.{payload}".encode(), hashlib.sha256).digest()
        return f"{prefix}.{payload}.{_b64(mac)}"

    def _open(self, prefix: str, token: str) -> dict[str, object]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != prefix:
            raise AuthError("malformed token")
        expected = hmac.new(self._secret, f"{prefix}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            valid = hmac.compare_digest(_unb64(parts[2]), expected)
            claims = json.loads(_unb64(parts[1])) if valid else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuthError("malformed token") from exc
        if not isinstance(claims, dict):
            raise AuthError("invalid token signature")
        expiry = claims.get("e")
        if not isinstance(expiry, int) or expiry < time.time():
            raise AuthError("token expired; ask for a new one")
        return claims

    def session(self, customer_id: str) -> tuple[str, int]:
        """A session token for a customer and its expiry (Unix seconds)."""
        expiry = int(time.time()) + self.ttl_s
        return self._sign(_SESSION, {"c": customer_id, "e": expiry}), expiry

    def session_customer(self, token: str) -> CustomerId:
        """The customer a session token was issued for.

        Raises:
            AuthError: malformed, forged or expired.
        """
        customer = self._open(_SESSION, token).get("c")
        if not isinstance(customer, str):
            raise AuthError("malformed token")
        return CustomerId(customer)

    def console(self, agent_id: str) -> str:
        """A console login token for an agent."""
        return self._sign(_CONSOLE, {"a": agent_id, "e": int(time.time()) + self.ttl_s})

    def console_agent(self, token: str) -> str:
        """The agent a console login belongs to.

        Raises:
            AuthError: malformed, forged or expired.
        """
        agent = self._open(_CONSOLE, token).get("a")
        if not isinstance(agent, str):
            raise AuthError("malformed token")
        return agent


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(desk: DeskStore, name: str, channel: Channel) -> tuple[str, ApiKey]:
    """Make a key, store its digest and return the key (shown once) with its listing."""
    key_id = secrets.token_hex(6)
    key = f"kf_{key_id}_{secrets.token_urlsafe(32)}"
    return key, desk.add_api_key(key_id, name, channel, _digest(key))


def verify_api_key(desk: DeskStore, key: str) -> ApiKey:
    """The live key this is.

    Raises:
        AuthError: unknown or revoked.
    """
    found = desk.api_key_by_digest(_digest(key)) if key.startswith("kf_") else None
    if found is None:
        raise AuthError("unknown or revoked API key")
    return found


def hash_password(password: str) -> str:
    """A salted scrypt hash of a password, self-describing (``scrypt$n$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def check_password(desk: DeskStore, agent_id: str, password: str) -> AgentAccount:
    """The agent, if the password is theirs and the account is active.

    Raises:
        AuthError: unknown agent, wrong password or disabled account (one message for all three).
    """
    found = desk.agent_credentials(agent_id)
    stored = found[1] if found is not None else hash_password("a dummy, so unknown names take as long")
    try:
        _, n, r, p, salt, digest = stored.split("$")
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), dklen=32, n=int(n), r=int(r), p=int(p))
        ok = hmac.compare_digest(actual, _unb64(digest))
    except ValueError:
        ok = False
    if found is None or not ok or not found[0].active:
        raise AuthError("wrong user name or password")
    return found[0]
