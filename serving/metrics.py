"""Prometheus metrics: turns, latency by node, fallbacks, handoffs, intents, LLM calls, tokens and endpoints.

Each app has its own registry (several apps in one test process must not share counters);
``/metrics`` serves it in the text exposition format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_TURN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_NODE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)


class _LlmUsage(Collector):
    """Reads the gateway's running totals at scrape time."""

    def __init__(self, totals: Callable[[], tuple[int, int, int, int]]) -> None:
        self._totals = totals

    def collect(self) -> Iterable[CounterMetricFamily]:
        calls, prompt, completion, blocked = self._totals()
        yield CounterMetricFamily("kefu_llm_calls", "Successful LLM calls (warm-ups excluded)", value=calls)
        tokens = CounterMetricFamily("kefu_llm_tokens", "LLM tokens the backend reported", labels=["kind"])
        tokens.add_metric(["prompt"], prompt)
        tokens.add_metric(["completion"], completion)
        yield tokens
        yield CounterMetricFamily(
            "kefu_llm_pii_blocked",
            "Personal-data spans masked at the LLM boundary (each is a bug upstream)",
            value=blocked,
        )


class _LlmEndpoints(Collector):
    """Reads the LLM endpoints' health at scrape time."""

    def __init__(self, states: Callable[[], list[tuple[str, bool]]]) -> None:
        self._states = states

    def collect(self) -> Iterable[GaugeMetricFamily]:
        states = self._states()
        yield GaugeMetricFamily(
            "kefu_llm_endpoints_healthy", "LLM endpoints taking calls now", value=sum(up for _url, up in states)
        )
        each = GaugeMetricFamily("kefu_llm_endpoint_up", "1 while an LLM endpoint takes calls", labels=["endpoint"])
        for url, up in states:
            each.add_metric([url], float(up))
        yield each


class Metrics:
    """The app's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.turns = Counter("kefu_turns", "Customer turns answered", ["channel", "route"], registry=r)
        self.turn_seconds = Histogram(
            "kefu_turn_seconds", "Time to answer a customer turn", ["channel"], buckets=_TURN_BUCKETS, registry=r
        )
        self.node_seconds = Histogram(
            "kefu_node_seconds", "Time spent in each graph node", ["node"], buckets=_NODE_BUCKETS, registry=r
        )
        self.intents = Counter("kefu_intents", "Turns by decided intent", ["intent", "stage"], registry=r)
        self.fallbacks = Counter(
            "kefu_fallbacks", "Turns answered by a rule or template instead of the model, by kind", ["kind"], registry=r
        )
        self.handoffs = Counter("kefu_handoffs", "Conversations handed to the human desk", registry=r)
        self.rejected = Counter(
            "kefu_rejected_requests", "Requests refused with 4xx, by status", ["status"], registry=r
        )
        self.websockets = Gauge("kefu_websockets", "Open WebSocket connections", ["kind"], registry=r)

    def watch_llm(self, totals: Callable[[], tuple[int, int, int, int]]) -> None:
        """Export the LLM gateway's counters (calls, prompt and completion tokens, PII blocked)."""
        self.registry.register(_LlmUsage(totals))

    def watch_endpoints(self, states: Callable[[], list[tuple[str, bool]]]) -> None:
        """Export how many LLM endpoints are healthy, and each one's state (``states`` gives URL and up)."""
        self.registry.register(_LlmEndpoints(states))

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
