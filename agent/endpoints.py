"""Several OpenAI-compatible LLM endpoints (vLLM replicas) behind one chat model, with failover and health checks.

``EndpointPool`` is a ``BaseChatModel``, so ``LlmGateway`` and everything above it use it exactly as
they use one endpoint's client. Each call goes to the healthy endpoint with the fewest calls in
flight; ties go round the list, so sequential calls rotate over every endpoint.

A call that fails for a reason the endpoint owns (connection refused or reset, timeout, HTTP 5xx)
marks that endpoint down and is retried once on another healthy one: a dead endpoint costs a turn at
most one failed attempt, and none once it is marked. Any other failure (a 4xx, a malformed request)
would fail on every endpoint alike and is raised as is. A background thread asks every endpoint for
``GET {base}/models`` every ``health_interval_s`` seconds: an answer brings an endpoint back, no
answer marks it down before a customer's call has to find out. With every endpoint down a call
raises ``EndpointsDown`` at once, and ``LlmGateway`` answers with rules, as for one dead server.

Only what llama-server and vLLM both serve is used: ``POST /v1/chat/completions`` (through
``make_chat_model``) and ``GET /v1/models``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from pydantic import PrivateAttr

from agent.llm import make_chat_model
from core.errors import ConfigError
from core.settings import Settings

__all__ = ["EndpointPool", "EndpointState", "EndpointsDown"]

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 3.0
"""How long a health check waits for ``/models``; both servers answer it at once even under load."""


class EndpointsDown(ConnectionError):
    """Every endpoint is marked down; the health checks bring them back when they answer again."""


@dataclass(frozen=True)
class EndpointState:
    """One endpoint as the pool sees it now."""

    url: str
    """The OpenAI-compatible base URL (``http://vllm-0:8000/v1``)."""
    up: bool
    """Whether calls go to it."""
    in_flight: int
    """Calls it is answering now."""
    calls: int
    """Calls it answered since start-up."""
    failures: int
    """Calls and health checks it failed since start-up."""
    last_error: str | None
    """Why it was last marked down."""


class _Endpoint:
    """An endpoint's client and counters; the pool's lock guards the counters."""

    def __init__(self, url: str, model: BaseChatModel) -> None:
        self.url = url
        self.model = model
        self.up = True
        self.in_flight = 0
        self.calls = 0
        self.failures = 0
        self.last_error: str | None = None


class EndpointPool(BaseChatModel):
    """Chat models of several OpenAI-compatible endpoints serving the same model, used as one.

    Thread-safe. ``start_health_checks`` starts the background checker and ``close`` stops it; without
    them an endpoint marked down stays down until ``check_health`` is called.
    """

    _endpoints: list[_Endpoint] = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _next: int = PrivateAttr(default=0)
    _interval_s: float = PrivateAttr()
    _timeout_s: float = PrivateAttr()
    _headers: dict[str, str] = PrivateAttr()
    _stop: threading.Event = PrivateAttr(default_factory=threading.Event)
    _checker: threading.Thread | None = PrivateAttr(default=None)

    def __init__(
        self,
        endpoints: Sequence[tuple[str, BaseChatModel]],
        *,
        health_interval_s: float = 10.0,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        api_key: str | None = None,
    ) -> None:
        """Spread calls over ``endpoints``, each a base URL (``.../v1``) and the chat model that calls it.

        Args:
            endpoints: The endpoints, in the order ties are broken.
            health_interval_s: Seconds between two health checks of every endpoint.
            health_timeout_s: How long one health check waits for an answer.
            api_key: Sent as a bearer token with health checks (vLLM started with ``--api-key`` wants it).

        Raises:
            ConfigError: no endpoint, the same URL twice, or an interval or timeout that is not positive.
        """
        super().__init__()
        urls = [url.rstrip("/") for url, _model in endpoints]
        if not urls:
            raise ConfigError("an LLM endpoint pool needs at least one endpoint")
        if len(set(urls)) != len(urls):
            raise ConfigError(f"an LLM endpoint is listed twice: {urls}")
        if health_interval_s <= 0 or health_timeout_s <= 0:
            raise ConfigError("the health-check interval and timeout must be positive")
        self._endpoints = [_Endpoint(url, model) for url, (_url, model) in zip(urls, endpoints, strict=True)]
        self._interval_s = health_interval_s
        self._timeout_s = health_timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @classmethod
    def from_settings(cls, settings: Settings, urls: Sequence[str] | None = None) -> EndpointPool:
        """A ``make_chat_model`` client per URL (default ``settings.endpoints``), health-checked as set.

        Raises:
            ConfigError: no URL is configured, or one is listed twice.
        """
        chosen = list(settings.endpoints if urls is None else urls)
        return cls(
            [(url, make_chat_model(settings, url)) for url in chosen],
            health_interval_s=settings.llm_health_interval_s,
            health_timeout_s=min(HEALTH_TIMEOUT_S, settings.llm_timeout_s),
            api_key=settings.llm_api_key.get_secret_value(),
        )

    @property
    def _llm_type(self) -> str:
        return "kefu-endpoint-pool"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"endpoints": self.urls}

    # ----------------------------------------------------------------------------------- state

    @property
    def urls(self) -> list[str]:
        """Every endpoint's base URL, in the configured order."""
        return [endpoint.url for endpoint in self._endpoints]

    @property
    def healthy(self) -> int:
        """How many endpoints take calls now."""
        with self._lock:
            return sum(endpoint.up for endpoint in self._endpoints)

    def states(self) -> list[EndpointState]:
        """Every endpoint's state, in the configured order."""
        with self._lock:
            return [EndpointState(e.url, e.up, e.in_flight, e.calls, e.failures, e.last_error) for e in self._endpoints]

    # ----------------------------------------------------------------------------------- calls

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Call the best healthy endpoint; on an endpoint failure mark it down and try one other once.

        Raises:
            EndpointsDown: no endpoint was up to call.
            Exception: what the last endpoint tried raised.
        """
        tried: set[int] = set()
        failure: Exception | None = None
        for _attempt in range(2):
            chosen = self._acquire(tried)
            if chosen is None:
                break
            index, endpoint = chosen
            tried.add(index)
            try:
                # The pool's own run already reports this call to callbacks; the endpoint's would repeat it.
                message = endpoint.model.invoke(messages, RunnableConfig(callbacks=[]), stop=stop, **kwargs)
            except Exception as exc:
                self._release(endpoint)
                if not _endpoint_failed(exc):
                    raise
                self._mark_down(endpoint, f"{type(exc).__name__}: {exc}")
                failure = exc
                continue
            self._release(endpoint, answered=True)
            return ChatResult(generations=[ChatGeneration(message=message)])
        if failure is not None:
            raise failure
        raise EndpointsDown(f"every LLM endpoint is down ({', '.join(self.urls)})")

    def _acquire(self, tried: set[int]) -> tuple[int, _Endpoint] | None:
        """The healthy, untried endpoint with the fewest calls in flight, counted as busy by one more call."""
        with self._lock:
            count = len(self._endpoints)
            order = [(self._next + offset) % count for offset in range(count)]
            candidates = [i for i in order if self._endpoints[i].up and i not in tried]
            if not candidates:
                return None
            index = min(candidates, key=lambda i: self._endpoints[i].in_flight)  # the first of equals: rotation
            self._next = (index + 1) % count
            endpoint = self._endpoints[index]
            endpoint.in_flight += 1
            return index, endpoint

    def _release(self, endpoint: _Endpoint, *, answered: bool = False) -> None:
        with self._lock:
            endpoint.in_flight -= 1
            endpoint.calls += answered

    def _mark_down(self, endpoint: _Endpoint, reason: str) -> None:
        with self._lock:
            was_up, endpoint.up = endpoint.up, False
            endpoint.failures += 1
            endpoint.last_error = reason[:300]
        if was_up:
            log.warning("LLM endpoint %s is down, skipping it until a health check passes: %s", endpoint.url, reason)

    def _mark_up(self, endpoint: _Endpoint) -> None:
        with self._lock:
            was_up, endpoint.up = endpoint.up, True
        if not was_up:
            log.warning("LLM endpoint %s answers its health check again; calls go to it", endpoint.url)

    # ----------------------------------------------------------------------------------- health

    def check_health(self) -> int:
        """Ask every endpoint for ``GET {base}/models`` now; mark each up or down by the answer.

        Returns:
            How many endpoints are up afterwards.
        """
        with httpx.Client(timeout=self._timeout_s, headers=self._headers) as client:
            for endpoint in self._endpoints:
                try:
                    response = client.get(f"{endpoint.url}/models")
                except httpx.HTTPError as exc:
                    self._mark_down(endpoint, f"health check: {type(exc).__name__}: {exc}")
                    continue
                if response.status_code == httpx.codes.OK:
                    self._mark_up(endpoint)
                else:
                    self._mark_down(endpoint, f"health check: HTTP {response.status_code}")
        return self.healthy

    def start_health_checks(self) -> None:
        """Check every endpoint now and then every ``health_interval_s`` seconds, from a daemon thread."""
        if self._checker is not None:
            return
        self._stop.clear()
        self._checker = threading.Thread(target=self._check_periodically, name="kefu-llm-health", daemon=True)
        self._checker.start()

    def _check_periodically(self) -> None:
        while True:
            try:
                self.check_health()
            except Exception:  # a checker that dies would leave dead endpoints marked forever
                log.exception("LLM endpoint health check failed")
            if self._stop.wait(self._interval_s):
                return

    def close(self) -> None:
        """Stop the health checks (the endpoints keep their last state)."""
        self._stop.set()
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.join(self._timeout_s * len(self._endpoints) + 1)


def _endpoint_failed(exc: Exception) -> bool:
    """Whether ``exc`` says the endpoint is unreachable, too slow or broken, rather than the request bad."""
    if isinstance(exc, openai.APIConnectionError):  # refused, reset, and timeouts (APITimeoutError)
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    return isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError)
