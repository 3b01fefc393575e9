"""A recording, OpenAI-compatible fake LLM endpoint served over real HTTP on 127.0.0.1.

Kefu's client (``agent.llm``) talks to it exactly as to llama-server or vLLM, so everything up to
the socket is the production path. Every request body is recorded, which is what the PII leak
test inspects; with ``latency_s`` it also serves as the instant endpoint for benchmarks.

It answers deterministically, from hashes of what it was sent:

- ``POST /v1/chat/completions`` with a ``json_schema`` response format (the intent stage): a JSON
  object whose one field takes a value of the schema's enum, with token log-probabilities of 0.0
  (probability 1), so the choice counts as sure.
- any other chat completion (the reply stage): a short answer that repeats the facts it was given
  and echoes every ``<TYPE_N>`` placeholder of the latest customer or tool messages, so placeholders
  must be restored for the customer; about one reply in ``foreign_every`` also invents personal data
  that is nobody's (``FOREIGN_PII``), which the output guard must mask; and about one request in
  ``tool_every`` that offers tools gets a native tool call instead, with a placeholder from the
  conversation as a string argument.
- ``GET /v1/models`` and ``GET /health``, as llama-server answers them.

``python -m evals.fake_llm --port P`` runs it as a process of its own (until it is killed), so a
reliability eval can SIGKILL the LLM backend and start it again on the same port.

Example:
    >>> with FakeLlm() as fake:
    ...     fake.base_url.endswith("/v1")
    True

"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

__all__ = ["FOREIGN_PII", "FakeLlm", "RecordedRequest"]

FOREIGN_PII: Final[tuple[str, ...]] = ("13900001111", "refunds.desk@kefu-fake.example")
"""Personal data the fake invents in some replies: it belongs to no customer, so it must never reach one."""

_PLACEHOLDER: Final = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_CJK: Final = re.compile(r"[\u3400-\u9fff]")
_TOKEN: Final = re.compile(r"\w+|\W")
_FACT_HEADINGS: Final = ("Facts:", "事实:")


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received."""

    method: str
    path: str
    body: Any
    """The decoded JSON body; None for a request without one."""


class FakeLlm:
    """An OpenAI-compatible chat endpoint on a free loopback port that records what it is sent.

    Use it as a context manager; ``base_url`` (ending in ``/v1``) goes into
    ``Settings(llm_backend="openai", llm_base_url=...)``. Answers depend only on each request's
    content, never on timing or order, so concurrent clients get reproducible answers.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        model: str = "kefu-fake",
        tool_every: int = 4,
        foreign_every: int = 5,
        port: int = 0,
    ) -> None:
        """Configure the endpoint; nothing listens until ``start`` (or ``with``).

        Args:
            latency_s: Seconds to wait before answering each chat completion.
            model: The model name ``/v1/models`` lists and answers carry.
            tool_every: About one request in this many that offers tools gets a tool call; 0 never.
            foreign_every: About one text reply in this many invents foreign personal data; 0 never.
            port: The loopback port to listen on; 0 picks a free one.

        Raises:
            ValueError: If a number is negative.

        """
        if latency_s < 0 or tool_every < 0 or foreign_every < 0:
            raise ValueError("latency_s, tool_every and foreign_every must not be negative")
        self.latency_s = latency_s
        self.model = model
        self.tool_every = tool_every
        self.foreign_every = foreign_every
        self.port = port
        self._requests: list[RecordedRequest] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind the port (a free one if it is 0) on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kefu-fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``.

        Raises:
            RuntimeError: If the server is not running.

        """
        if self._server is None:
            raise RuntimeError("the fake LLM is not running; use it as a context manager or call start()")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- what it saw -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def counts(self) -> dict[str, int]:
        """How many answers of each kind it gave: ``choose``, ``reply``, ``tool_call``, ``foreign_pii``."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Forget the recorded requests and counts."""
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    def record(self, method: str, path: str, body: Any) -> None:
        """Keep one request (the HTTP handler calls this before answering)."""
        with self._lock:
            self._requests.append(RecordedRequest(method, path, body))

    def _count(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1

    # -- answers ---------------------------------------------------------------------------------
    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``chat.completion`` object answering ``body``: counted in ``counts``, not recorded, not delayed."""
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        schema = _enum_schema(body.get("response_format"))
        logprobs: dict[str, Any] | None = None
        tool_calls: list[dict[str, Any]] | None = None
        if schema is not None:
            field, options = schema
            content = json.dumps({field: options[_hash(_last_text(messages)) % len(options)]}, ensure_ascii=False)
            if body.get("logprobs"):
                logprobs = {"content": [_token(token) for token in _TOKEN.findall(content)], "refusal": None}
            self._count("choose")
            finish = "stop"
        else:
            tool_calls = self._tool_calls(body, messages)
            if tool_calls:
                content, finish = "", "tool_calls"
                self._count("tool_call")
            else:
                content, finish = self._reply_text(messages), "stop"
                self._count("reply")
        prompt_tokens = max(1, len(json.dumps(messages, ensure_ascii=False)) // 4)
        completion_tokens = max(1, len(content) // 4 + 10 * len(tool_calls or []))
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": f"chatcmpl-fake-{_hash(json.dumps(body, sort_keys=True, ensure_ascii=False)):08x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "system_fingerprint": "kefu-fake",
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def models(self) -> dict[str, Any]:
        """The ``GET /v1/models`` answer."""
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "kefu"}]}

    def _tool_calls(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        tools = [t["function"] for t in body.get("tools") or [] if isinstance(t, dict) and "function" in t]
        usable = [(tool, _string_params(tool)) for tool in tools]
        usable = [(tool, strings) for tool, strings in usable if strings]
        text = _last_text(messages)
        if not usable or self.tool_every <= 0 or _hash("tool:" + text) % self.tool_every:
            return None
        tool, strings = usable[_hash("which:" + text) % len(usable)]
        placeholders = _PLACEHOLDER.findall(_conversation_text(messages))
        value = placeholders[_hash("arg:" + text) % len(placeholders)] if placeholders else "KF999999"  # nobody's order
        args = _default_args(tool)
        args.update({name: value if name.endswith("_id") else f"customer mentioned {value}" for name in strings})
        call_id = f"call_{_hash(text + tool['name']):08x}"
        arguments = json.dumps(args, ensure_ascii=False)
        return [{"id": call_id, "type": "function", "function": {"name": tool["name"], "arguments": arguments}}]

    def _reply_text(self, messages: list[dict[str, Any]]) -> str:
        text = _last_text(messages)
        zh = bool(_CJK.search(text)) or any(_CJK.search(_content(m)) for m in messages if m.get("role") == "system")
        placeholders = list(dict.fromkeys(_PLACEHOLDER.findall(_recent_text(messages))))
        facts = _facts(text)
        if zh:
            parts = ["好的，已为您查询。", *facts]
            if placeholders:
                parts.append(f"我们已记下您提供的{'、'.join(placeholders)}。")
        else:
            parts = ["Thanks, here is what I found.", *facts]
            if placeholders:
                parts.append(f"We have noted {', '.join(placeholders)}.")
        if self.foreign_every > 0 and _hash("foreign:" + text) % self.foreign_every == 0:
            phone, email = FOREIGN_PII
            parts.append(
                f"如需帮助请拨打{phone}或发邮件至{email}。" if zh else f"You can also call {phone} or {email}."
            )
            self._count("foreign_pii")
        return "\n".join(parts)


def _handler_for(fake: FakeLlm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the OpenAI client expects

        def do_GET(self) -> None:
            fake.record("GET", self.path, None)
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(HTTPStatus.OK, fake.models())
            elif self.path.rstrip("/") == "/health":
                self._send(HTTPStatus.OK, {"status": "ok"})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                fake.record("POST", self.path, raw.decode("utf-8", "replace"))
                self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
                return
            fake.record("POST", self.path, body)
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}")
            elif not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                self._error(HTTPStatus.BAD_REQUEST, "expected a JSON object with 'messages'")
            elif body.get("stream"):
                self._error(HTTPStatus.BAD_REQUEST, "this fake does not stream")
            else:
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                self._send(HTTPStatus.OK, fake.complete(body))

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status.value}})

        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: the default handler writes every request to stderr."""

    return Handler


def _hash(text: str) -> int:
    return zlib.crc32(text.encode())


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _last_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content(message)
    return ""


def _recent_text(messages: list[dict[str, Any]]) -> str:
    """The latest customer message and the tool results after it."""
    recent: list[str] = []
    for message in reversed(messages):
        if message.get("role") in ("user", "tool"):
            recent.append(_content(message))
        if message.get("role") == "user":
            break
    return "\n".join(reversed(recent))


def _conversation_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(_content(m) for m in messages if m.get("role") in ("user", "tool", "assistant"))


def _facts(text: str) -> list[str]:
    """The lines under the "Facts:" heading Kefu appends to the customer's message."""
    for heading in _FACT_HEADINGS:
        if heading in text:
            lines = text.split(heading, 1)[1].strip().splitlines()
            return [line.strip().lstrip("- ").strip() for line in lines if line.strip() not in ("", "-")]
    return []


def _token(text: str) -> dict[str, Any]:
    return {"token": text, "logprob": 0.0, "bytes": list(text.encode()), "top_logprobs": []}


def _enum_schema(response_format: Any) -> tuple[str, list[str]] | None:
    """The field and options of a ``json_schema`` response format with one enum property."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    for field, spec in (schema.get("properties") or {}).items():
        if isinstance(spec, dict) and spec.get("enum"):
            return str(field), [str(option) for option in spec["enum"]]
    return None


def _string_params(tool: dict[str, Any]) -> list[str]:
    properties = (tool.get("parameters") or {}).get("properties") or {}
    return [
        name
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get("type") == "string" and not spec.get("enum")
    ]


def _default_args(tool: dict[str, Any]) -> dict[str, Any]:
    """Values for the required parameters that are not strings."""
    parameters = tool.get("parameters") or {}
    properties = parameters.get("properties") or {}
    args: dict[str, Any] = {}
    for name in parameters.get("required") or []:
        spec = properties.get(name) or {}
        if spec.get("enum"):
            args[name] = spec["enum"][0]
        elif spec.get("type") == "integer":
            args[name] = 1
        elif spec.get("type") == "number":
            args[name] = 1.0
        elif spec.get("type") == "boolean":
            args[name] = False
    return args


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on ``--port`` until SIGTERM or SIGINT (SIGKILL works too: it holds no state worth saving)."""
    parser = argparse.ArgumentParser(prog="python -m evals.fake_llm", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="loopback port; 0 picks a free one (printed)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="delay before each chat completion")
    parser.add_argument("--tool-every", type=int, default=4)
    parser.add_argument("--foreign-every", type=int, default=5)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fake = FakeLlm(
        latency_s=args.latency_s, tool_every=args.tool_every, foreign_every=args.foreign_every, port=args.port
    )
    with fake:
        print(fake.base_url, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
