"""WeChat's customer-service message API (late replies, human agents' replies) and its access token."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from typing import Any

import httpx

from core.errors import BackendError

__all__ = ["HIDE_SECRETS", "CustomerServiceApi", "ref"]

log = logging.getLogger(__name__)

_EXPIRED_TOKEN = {40001, 40014, 42001}


def ref(openid: str) -> str:
    """What logs say instead of an openid."""
    return hashlib.sha256(openid.encode()).hexdigest()[:12]


class _HideSecrets(logging.Filter):
    """httpx logs request URLs at INFO; the token call carries the app secret in its query."""

    _PARAM = re.compile(r"((?:secret|access_token)=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._PARAM.sub(r"\1***", str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


HIDE_SECRETS = _HideSecrets()


class CustomerServiceApi:
    """WeChat's customer-service message API, with a cached, thread-safe access token."""

    def __init__(self, http: httpx.Client, base: str, app_id: str, secret: str) -> None:
        self._http = http
        self._base = base.rstrip("/")
        self._credentials = {"grant_type": "client_credential", "appid": app_id, "secret": secret}
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def _call(self, method: str, path: str, params: dict[str, str], body: bytes | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else None
        try:
            response = self._http.request(method, self._base + path, params=params, content=body, headers=headers)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(f"WeChat API {path} failed: {type(exc).__name__}") from exc
        if not isinstance(data, dict):
            raise BackendError(f"WeChat API {path} answered something other than a JSON object")
        return data

    def _access_token(self, stale: str | None = None) -> str:
        with self._lock:
            if self._token is not None and self._token != stale and time.monotonic() < self._expires_at:
                return self._token
            data = self._call("GET", "/cgi-bin/token", self._credentials)
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise BackendError(f"WeChat issued no access token (errcode {data.get('errcode')})")
            expires_in = data.get("expires_in")
            lifetime = expires_in if isinstance(expires_in, int) else 7200
            self._token = token
            self._expires_at = time.monotonic() + max(lifetime - 300, 0)
            return token

    def send_text(self, openid: str, text: str) -> None:
        """Send one text message; an expired token is refreshed and the send retried once.

        Raises:
            BackendError: WeChat could not be reached or refused the message.
        """
        body = json.dumps({"touser": openid, "msgtype": "text", "text": {"content": text}}, ensure_ascii=False).encode()
        token = self._access_token()
        data = self._call("POST", "/cgi-bin/message/custom/send", {"access_token": token}, body)
        if data.get("errcode") in _EXPIRED_TOKEN:
            data = self._call("POST", "/cgi-bin/message/custom/send", {"access_token": self._access_token(token)}, body)
        if data.get("errcode", 0) != 0:
            log.warning("WeChat refused a message", extra={"errcode": data.get("errcode"), "openid_ref": ref(openid)})
            raise BackendError(f"WeChat refused the message (errcode {data.get('errcode')})")
