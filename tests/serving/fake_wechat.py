"""A real local stand-in for WeChat's API server: access tokens and customer-service messages.

It listens on a free loopback port and speaks the two calls the channel makes, with WeChat's
error codes: ``GET /cgi-bin/token`` and ``POST /cgi-bin/message/custom/send``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Sent:
    """One customer-service message the fake accepted."""

    touser: str
    content: str
    token: str


class FakeWeChat:
    """WeChat's API for one app; use as a context manager."""

    def __init__(self, app_id: str = "wx-test-app", secret: str = "test-secret") -> None:
        self.app_id = app_id
        self.secret = secret
        self.sent: list[Sent] = []
        self.token_requests = 0
        self.raw_bodies: list[bytes] = []
        self._valid: set[str] = set()
        self._expire_next = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-wechat", daemon=True)

    @property
    def base_url(self) -> str:
        """What ``KEFU_WECHAT_API_BASE`` should be."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeWeChat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def expire_token_once(self) -> None:
        """The next message sent with a valid token is refused with 42001 and that token stops working."""
        with self._lock:
            self._expire_next = True

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Sent]:
        """The messages sent so far, once there are at least ``count`` (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.sent) >= count:
                    return list(self.sent)
            time.sleep(0.02)
        with self._lock:
            return list(self.sent)

    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self._lock:
            self.token_requests += 1
            token = f"TOKEN-{self.token_requests}"
            self._valid.add(token)
        return {"access_token": token, "expires_in": 7200}

    def _send(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        token = query.get("access_token", "")
        with self._lock:
            if token not in self._valid:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
            if self._expire_next:
                self._expire_next = False
                self._valid.discard(token)
                return {"errcode": 42001, "errmsg": "access_token expired"}
        payload = json.loads(body.decode("utf-8"))
        if payload.get("msgtype") != "text" or not payload.get("touser"):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        with self._lock:
            self.raw_bodies.append(body)
            self.sent.append(Sent(payload["touser"], payload["text"]["content"], token))
        return {"errcode": 0, "errmsg": "ok"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _query(self) -> tuple[str, dict[str, str]]:
                parts = urlsplit(self.path)
                return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

            def _answer(self, data: dict[str, Any], status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, query = self._query()
                if path == "/cgi-bin/token":
                    self._answer(fake._token(query))
                else:
                    self._answer({"errcode": 404, "errmsg": "not found"}, 404)

            def do_POST(self) -> None:
                path, query = self._query()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if path == "/cgi-bin/message/custom/send":
                    self._answer(fake._send(query, body))
                else:
                    self._answer({"errcode": 404, "errmsg": "not found"}, 404)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
