"""A service on several LLM endpoints (``llm_base_urls``): turns spread over them and survive losing them.

Three ``evals.fake_llm.FakeLlm`` servers on loopback play vLLM replicas over real HTTP; they are
stopped and started again on the same ports while the service answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from agent.intents import IntentModel
from core.settings import Settings
from evals.fake_llm import FakeLlm
from serving.service import KefuService, TurnResult


@pytest.fixture
def fakes(loopback_llm: None) -> Iterator[list[FakeLlm]]:
    """Three fake LLM endpoints on loopback, reachable by ChatOpenAI in this test (and nothing else is)."""
    servers = [FakeLlm(tool_every=0, foreign_every=0).start() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def service(settings: Settings, intent_model: IntentModel, fakes: list[FakeLlm]) -> Iterator[KefuService]:
    """The service on the three endpoints, health-checked every 50 ms, with a short breaker cooldown."""
    local = settings.model_copy(
        update={
            "llm_backend": "openai",
            "llm_base_urls": [fake.base_url for fake in fakes],
            "llm_health_interval_s": 0.05,
            "llm_cooldown_s": 0.2,
            "llm_timeout_s": 10.0,
        }
    )
    running = KefuService.start(local, intent_model=intent_model)
    yield running
    running.close()


def _port(fake: FakeLlm) -> int:
    return int(fake.base_url.rsplit(":", 1)[1].split("/")[0])


def _chat_posts(fake: FakeLlm) -> int:
    return sum(1 for request in fake.requests if request.method == "POST")


def _turn(service: KefuService, conversation: str) -> TurnResult:
    return service.chat(conversation, "C0002", "Where is my order?", lang=None)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.02)


@pytest.mark.sqlite_only  # about the LLM endpoints: the database plays no part
def test_turns_spread_over_the_endpoints_and_survive_losing_them(service: KefuService, fakes: list[FakeLlm]) -> None:
    assert service.llm_endpoints is not None
    assert service.readiness()["llm"] == "ok (3/3 endpoints up)"
    assert all(f"{fake.base_url} up" in service.readiness()["llm_endpoints"] for fake in fakes)
    assert b"kefu_llm_endpoints_healthy 3.0" in service.metrics.render()

    # Sequential calls rotate over the endpoints; a health check that times out on a loaded machine may
    # skip one for a moment, so allow a few more turns than three before every endpoint must have had calls.
    results = []
    for index in range(12):
        results.append(_turn(service, f"spread-{index}"))
        if index >= 5 and all(_chat_posts(fake) > 0 for fake in fakes):
            break
    assert [result.route for result in results] == ["llm"] * len(results)
    assert all(_chat_posts(fake) > 0 for fake in fakes)

    # One endpoint stops: turns are still answered by the LLM, on the two others.
    ports, urls = [_port(fake) for fake in fakes], [fake.base_url for fake in fakes]
    fakes[0].close()
    before = [_chat_posts(fake) for fake in fakes[1:]]
    results = [_turn(service, f"one-down-{index}") for index in range(4)]
    assert [result.route for result in results] == ["llm"] * 4
    assert all(_chat_posts(fake) > count for fake, count in zip(fakes[1:], before, strict=True))
    _wait_for(lambda: service.readiness()["llm"] == "ok (2/3 endpoints up)")
    assert service.readiness()["llm_endpoints"] == f"{urls[0]} down, {urls[1]} up, {urls[2]} up"
    assert b"kefu_llm_endpoints_healthy 2.0" in service.metrics.render()

    # All of them stop: rule-based replies, and readiness says why (the LLM is not required to be ready).
    for fake in fakes[1:]:
        fake.close()
    result = _turn(service, "all-down")
    assert result.route == "rules"
    assert result.fallback is not None and result.fallback.startswith("LLM")
    _wait_for(lambda: service.readiness()["llm"] == "down: 0/3 endpoints up (rule-based replies)")

    # They come back on the same ports: a health check brings them back, and the LLM answers again.
    stopped = list(fakes)
    posts_before = sum(_chat_posts(fake) for fake in stopped)
    fakes[:] = [FakeLlm(port=port, tool_every=0, foreign_every=0).start() for port in ports]
    _wait_for(lambda: service.readiness()["llm"] == "ok (3/3 endpoints up)")
    assert _turn(service, "back").route == "llm"
    # The client may reuse a kept-alive connection that the stopped fake's handler thread still serves.
    assert sum(_chat_posts(fake) for fake in [*fakes, *stopped]) > posts_before
