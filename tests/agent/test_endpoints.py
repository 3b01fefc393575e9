"""``agent.endpoints.EndpointPool``: load spreading, failover and health checks over several LLM endpoints.

The first tests script the endpoints' models (``ScriptedChatModel``); the rest run real HTTP against
``evals.fake_llm.FakeLlm`` servers on loopback, stopped and started again on the same port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import SecretStr

from agent.endpoints import EndpointPool, EndpointsDown
from agent.llm import LlmGateway, LlmUnavailable
from core.errors import ConfigError
from core.settings import Settings
from evals.fake_llm import FakeLlm
from tests.fakes import ScriptedChatModel, reply

MESSAGES = [HumanMessage("Where is my order?")]


def _pool(*models: ScriptedChatModel) -> EndpointPool:
    return EndpointPool([(f"http://endpoint-{i}/v1", model) for i, model in enumerate(models)])


def _bad_request() -> openai.BadRequestError:
    request = httpx.Request("POST", "http://endpoint/v1/chat/completions")
    return openai.BadRequestError("bad request", response=httpx.Response(400, request=request), body=None)


def _server_error() -> openai.InternalServerError:
    request = httpx.Request("POST", "http://endpoint/v1/chat/completions")
    return openai.InternalServerError("overloaded", response=httpx.Response(503, request=request), body=None)


# ------------------------------------------------------------------------------------ scripted endpoints


def test_sequential_calls_rotate_over_every_endpoint() -> None:
    models = [ScriptedChatModel([reply(f"from {i}")] * 2) for i in range(3)]
    pool = _pool(*models)
    answers = [pool.invoke(MESSAGES).text for _ in range(6)]
    assert answers == ["from 0", "from 1", "from 2"] * 2
    for model in models:
        model.assert_complete()


def test_a_call_goes_to_the_endpoint_with_the_fewest_calls_in_flight() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(_messages: list[BaseMessage], _kwargs: dict[str, Any]) -> AIMessage:
        entered.set()
        release.wait(10)
        return AIMessage("slow")

    busy = ScriptedChatModel([slow])
    free = ScriptedChatModel([reply("free 1"), reply("free 2")])
    pool = _pool(busy, free)
    worker = threading.Thread(target=pool.invoke, args=(MESSAGES,))
    worker.start()
    assert entered.wait(10)
    # Endpoint 0 is answering: both calls go to endpoint 1, though the second one's turn would be endpoint 0's.
    assert [pool.invoke(MESSAGES).text for _ in range(2)] == ["free 1", "free 2"]
    release.set()
    worker.join(10)
    busy.assert_complete()
    free.assert_complete()
    assert [state.calls for state in pool.states()] == [1, 2]


@pytest.mark.parametrize("failure", [ConnectionError("connection refused"), TimeoutError("read timed out")])
def test_a_failing_endpoint_is_marked_down_and_the_call_retried_once_on_the_next(failure: Exception) -> None:
    dead = ScriptedChatModel([failure])
    alive = ScriptedChatModel([reply("answer")] * 4)
    pool = _pool(dead, alive)

    assert pool.invoke(MESSAGES).text == "answer"
    assert [state.up for state in pool.states()] == [False, True]
    assert pool.states()[0].failures == 1
    assert type(failure).__name__ in (pool.states()[0].last_error or "")
    # Marked down, it is not tried again: the scripted dead endpoint would fail the test on a second call.
    assert [pool.invoke(MESSAGES).text for _ in range(3)] == ["answer"] * 3
    dead.assert_complete()
    alive.assert_complete()


def test_a_5xx_answer_counts_as_an_endpoint_failure() -> None:
    pool = _pool(ScriptedChatModel([_server_error()]), ScriptedChatModel([reply("answer")]))
    assert pool.invoke(MESSAGES).text == "answer"
    assert pool.healthy == 1


def test_a_bad_request_is_raised_as_is_and_marks_nothing_down() -> None:
    first = ScriptedChatModel([_bad_request()])
    second = ScriptedChatModel()
    pool = _pool(first, second)
    with pytest.raises(openai.BadRequestError):
        pool.invoke(MESSAGES)
    assert pool.healthy == 2
    assert second.calls == []  # the same request would be refused everywhere: not retried


def test_a_call_is_retried_once_only() -> None:
    models = [ScriptedChatModel([ConnectionError(f"refused {i}")]) for i in range(3)]
    pool = _pool(*models)
    with pytest.raises(ConnectionError, match="refused 1"):
        pool.invoke(MESSAGES)
    assert [state.up for state in pool.states()] == [False, False, True]
    assert models[2].calls == []


def test_with_every_endpoint_down_the_gateway_answers_llm_unavailable_at_once() -> None:
    models = [ScriptedChatModel([ConnectionError("refused")]) for _ in range(2)]
    gateway = LlmGateway(_pool(*models), cooldown_s=0.0)
    with pytest.raises(LlmUnavailable, match="refused"):
        gateway.reply(MESSAGES)
    with pytest.raises(LlmUnavailable, match="every LLM endpoint is down") as caught:
        gateway.reply(MESSAGES)
    assert isinstance(caught.value.__cause__, EndpointsDown)
    assert [len(model.calls) for model in models] == [1, 1]


def test_the_gateway_passes_its_arguments_through_the_pool() -> None:
    model = ScriptedChatModel([reply("hi")])
    LlmGateway(_pool(model)).reply(MESSAGES, max_tokens=17)
    assert model.calls[0].kwargs["max_completion_tokens"] == 17


def test_a_pool_needs_distinct_endpoints() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        EndpointPool([])
    with pytest.raises(ConfigError, match="listed twice"):
        EndpointPool([("http://a/v1", ScriptedChatModel()), ("http://a/v1/", ScriptedChatModel())])


# ------------------------------------------------------------------------------------ over real HTTP


@pytest.fixture
def fakes(loopback_llm: None) -> Iterator[list[FakeLlm]]:
    """Three fake LLM endpoints on loopback, reachable by ChatOpenAI in this test (and nothing else is)."""
    servers = [FakeLlm(tool_every=0, foreign_every=0).start() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


def _settings(fakes: list[FakeLlm]) -> Settings:
    return Settings(  # type: ignore[call-arg]
        llm_backend="openai",
        llm_base_urls=[fake.base_url for fake in fakes],
        llm_timeout_s=5.0,
        vault_key=SecretStr("x" * 44),
        _env_file=None,
    )


def _chat_posts(fake: FakeLlm) -> int:
    return sum(1 for request in fake.requests if request.method == "POST")


def test_calls_spread_over_every_http_endpoint(fakes: list[FakeLlm]) -> None:
    pool = EndpointPool.from_settings(_settings(fakes))
    for index in range(6):
        assert pool.invoke([HumanMessage(f"question {index}")]).text
    assert [_chat_posts(fake) for fake in fakes] == [2, 2, 2]


def test_a_stopped_endpoint_costs_one_failed_attempt_then_comes_back_after_a_health_check(
    fakes: list[FakeLlm],
) -> None:
    pool = EndpointPool.from_settings(_settings(fakes))
    stopped = fakes[0]
    port = int(stopped.base_url.rsplit(":", 1)[1].split("/")[0])
    stopped.close()

    for index in range(6):  # the first call tries the stopped endpoint, fails, and is answered by the next
        assert pool.invoke([HumanMessage(f"question {index}")]).text
    states = pool.states()
    assert [state.up for state in states] == [False, True, True]
    assert states[0].failures == 1  # skipped after its one failed attempt
    assert "ConnectionError" in (states[0].last_error or "")
    assert [_chat_posts(fake) for fake in fakes[1:]] == [3, 3]

    assert pool.check_health() == 2  # still down: the health check fails too
    fakes[0] = FakeLlm(port=port, tool_every=0, foreign_every=0).start()
    assert pool.check_health() == 3
    for index in range(3):
        pool.invoke([HumanMessage(f"again {index}")])
    assert _chat_posts(fakes[0]) == 1


def test_the_health_check_marks_a_dead_endpoint_down_before_any_call_fails(fakes: list[FakeLlm]) -> None:
    pool = EndpointPool.from_settings(_settings(fakes))
    fakes[1].close()
    assert pool.check_health() == 2
    for index in range(4):
        pool.invoke([HumanMessage(f"question {index}")])
    assert [state.failures for state in pool.states()] == [0, 1, 0]  # the health check's failure only
    assert [_chat_posts(fakes[i]) for i in (0, 2)] == [2, 2]


def test_background_health_checks_bring_an_endpoint_back(fakes: list[FakeLlm]) -> None:
    settings = _settings(fakes).model_copy(update={"llm_health_interval_s": 0.05})
    pool = EndpointPool.from_settings(settings)
    port = int(fakes[2].base_url.rsplit(":", 1)[1].split("/")[0])
    fakes[2].close()
    pool.start_health_checks()
    try:
        _wait_for(lambda: pool.healthy == 2)
        fakes[2] = FakeLlm(port=port).start()
        _wait_for(lambda: pool.healthy == 3)
    finally:
        pool.close()
    health = [request for request in fakes[0].requests if request.method == "GET"]
    assert health and all(request.path == "/v1/models" for request in health)


def test_health_checks_send_the_api_key(fakes: list[FakeLlm], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"object": "list", "data": []})

    settings = _settings(fakes).model_copy(update={"llm_api_key": SecretStr("sk-kefu")})
    pool = EndpointPool.from_settings(settings)
    transport = httpx.MockTransport(handler)
    original = httpx.Client.__init__

    def with_transport(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "transport": transport})

    monkeypatch.setattr(httpx.Client, "__init__", with_transport)
    assert pool.check_health() == 3
    assert seen == ["Bearer sk-kefu"] * 3


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.02)
