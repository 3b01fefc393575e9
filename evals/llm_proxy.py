"""A recording proxy in front of any OpenAI-compatible endpoint: what was sent, how many tokens, how long.

Kefu and the ReAct baseline are pointed at the proxy instead of the LLM server, so both are
counted the same way, from the endpoint's own ``usage`` figures: calls, prompt and completion
tokens, seconds per call, and for streamed calls the time to the first content token. It also
keeps every request body, for checks on what reached the model (no raw personal data).

Streaming requests are passed through chunk by chunk; the proxy asks for the usage chunk
(``stream_options.include_usage``, which llama-server and vLLM both support) when the client
did not.

Example:
    with LlmProxy(llm.base_url) as proxy:
        mark = proxy.mark()
        ...  # run turns against an agent whose LLM base URL is proxy.base_url
        calls = proxy.since(mark)
        print(len(calls), sum(c.prompt_tokens for c in calls))
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import httpx

__all__ = ["LlmCall", "LlmProxy"]


@dataclass(frozen=True)
class LlmCall:
    """One chat completion that went through the proxy."""

    started: float
    """``time.monotonic()`` when the request arrived."""
    seconds: float
    """Until the last byte of the response was passed on."""
    ttft_s: float | None
    """Streamed calls: until the first chunk with content or a tool call; None otherwise."""
    prompt_tokens: int
    completion_tokens: int
    stream: bool
    status: int
    """The upstream's HTTP status (502 when it could not be reached)."""


class LlmProxy:
    """Forward ``/v1/*`` to ``upstream`` (a base URL ending in ``/v1``) and record every chat completion."""

    def __init__(self, upstream: str, *, timeout_s: float = 600) -> None:
        """Describe the proxy; ``start`` (or ``with``) serves it on a free port of 127.0.0.1."""
        self.upstream = upstream.rstrip("/")
        self._client = httpx.Client(timeout=timeout_s)
        self._lock = threading.Lock()
        self._calls: list[LlmCall] = []
        self._requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve in a background thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-proxy", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._client.close()

    def __enter__(self) -> Self:
        """Start the proxy."""
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Stop the proxy."""
        self.close()

    @property
    def base_url(self) -> str:
        """The proxy's OpenAI-compatible base URL (``http://127.0.0.1:<port>/v1``)."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- records -----------------------------------------------------------------------------------

    @property
    def calls(self) -> list[LlmCall]:
        """Every chat completion so far, in arrival order of their ends."""
        with self._lock:
            return list(self._calls)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat-completion request body so far."""
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position in the record, for ``since``."""
        with self._lock:
            return len(self._calls)

    def since(self, mark: int) -> list[LlmCall]:
        """The calls that ended after ``mark`` was taken."""
        with self._lock:
            return self._calls[mark:]

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self._calls.clear()
            self._requests.clear()

    def _record(self, call: LlmCall) -> None:
        with self._lock:
            self._calls.append(call)

    # -- forwarding --------------------------------------------------------------------------------

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """Pass one request on to the upstream and its answer back, recording chat completions."""
        path = handler.path
        if not path.startswith("/v1/"):  # /health and the like: the upstream's root
            target = self.upstream.removesuffix("/v1") + path
        else:
            target = self.upstream + path.removeprefix("/v1")
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) if method == "POST" else b""
        body: dict[str, Any] | None = None
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        if body is None:
            self._plain(handler, method, target, raw)
            return
        with self._lock:
            self._requests.append(body)
        stream = bool(body.get("stream"))
        if stream and not (body.get("stream_options") or {}).get("include_usage"):
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        started = time.monotonic()
        try:
            if stream:
                self._stream(handler, target, body, started)
            else:
                self._complete(handler, target, body, started)
        except httpx.HTTPError as exc:
            self._record(LlmCall(started, time.monotonic() - started, None, 0, 0, stream, 502))
            _send(handler, HTTPStatus.BAD_GATEWAY, json.dumps({"error": {"message": f"upstream: {exc}"}}).encode())

    def _plain(self, handler: BaseHTTPRequestHandler, method: str, target: str, raw: bytes) -> None:
        try:
            response = self._client.request(method, target, content=raw or None, headers=_forwarded(handler))
        except httpx.HTTPError as exc:
            _send(handler, HTTPStatus.BAD_GATEWAY, json.dumps({"error": {"message": f"upstream: {exc}"}}).encode())
            return
        _send(handler, response.status_code, response.content, response.headers.get("content-type"))

    def _complete(self, handler: BaseHTTPRequestHandler, target: str, body: dict[str, Any], started: float) -> None:
        response = self._client.post(target, json=body, headers=_forwarded(handler))
        usage: dict[str, Any] = {}
        if response.status_code == 200:
            try:
                usage = response.json().get("usage") or {}
            except ValueError:
                usage = {}
        self._record(  # before answering: whoever got the answer finds the call recorded
            LlmCall(
                started,
                time.monotonic() - started,
                None,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                False,
                response.status_code,
            )
        )
        _send(handler, response.status_code, response.content, response.headers.get("content-type"))

    def _stream(self, handler: BaseHTTPRequestHandler, target: str, body: dict[str, Any], started: float) -> None:
        ttft: float | None = None
        usage: dict[str, Any] = {}
        chunks = 0
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or chunks)
                self._record(LlmCall(started, time.monotonic() - started, ttft, prompt, completion, True, status))

        with self._client.stream("POST", target, json=body, headers=_forwarded(handler)) as response:
            handler.send_response(response.status_code)
            handler.send_header("Content-Type", response.headers.get("content-type", "text/event-stream"))
            handler.send_header("Cache-Control", "no-cache")
            handler.end_headers()
            for line in response.iter_lines():
                if line.strip() == "data: [DONE]":
                    record(response.status_code)  # before the client can see the end of the stream
                handler.wfile.write(line.encode() + b"\n")
                if not line:
                    handler.wfile.flush()
                if not line.startswith("data:"):
                    continue
                try:
                    chunk = json.loads(line.removeprefix("data:").strip())
                except ValueError:
                    continue
                usage = chunk.get("usage") or usage
                delta = ((chunk.get("choices") or [{}])[0] or {}).get("delta") or {}
                if delta.get("content") or delta.get("tool_calls"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.monotonic() - started
            record(response.status_code)
            handler.wfile.flush()


def _forwarded(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    auth = handler.headers.get("Authorization")
    return {"Authorization": auth} if auth else {}


def _send(handler: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type or "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _handler_for(proxy: LlmProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: streams end when the socket closes

        def do_GET(self) -> None:
            proxy.forward(self, "GET")

        def do_POST(self) -> None:
            proxy.forward(self, "POST")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the proxy is part of a measurement."""

    return Handler
