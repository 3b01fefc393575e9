"""Two API replicas on one database and one real Redis behave as one: events, rate limits, turn locks,
retried messages, the handoff queue, and a Redis outage.

Each replica is a ``KefuService`` (or a whole app) of its own in this process, as separate uvicorn
processes would be; nothing but the database and Redis connects them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from agent.intents import IntentModel
from core.db import HandoffRow
from core.errors import NotFoundError, RateLimitError
from core.settings import Settings
from core.types import AgentAccount, Channel, CustomerId, HandoffStatus
from evals.localservers import RedisServer, missing
from serving.app import create_app
from serving.auth import hash_password
from serving.handoff_queue import BUILT_KEY, RedisHandoffQueue
from serving.hub import CONSOLE, conversation_topic
from serving.locks import RedisTurnLocks, TurnLockError, lock_key
from serving.redis_hub import RedisHub
from serving.redis_limits import RedisRateLimiter, limiter_factory
from serving.service import KefuService

Factory = Callable[..., KefuService]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the module's tests (each test starts on an empty database)."""
    assert "redis-server" not in missing(), "redis-server is missing: `make services` installs it"
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    """A client of the emptied test Redis."""
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def cluster_settings(settings: Settings, redis_server: RedisServer, redis: Redis) -> Settings:
    """The test's settings, shared through Redis."""
    return settings.model_copy(update={"redis_url": redis_server.url})


@pytest.fixture
def replicas(make_service: Factory, redis_server: RedisServer, redis: Redis) -> tuple[KefuService, KefuService]:
    """Two rules-only services on the same database and Redis."""
    return make_service(redis_url=redis_server.url), make_service(redis_url=redis_server.url)


def _app(settings: Settings, intent_model: IntentModel) -> Any:
    def factory(local: Settings) -> KefuService:
        return KefuService.start(local, use_llm=False, intent_model=intent_model)

    return create_app(settings, service_factory=factory)


def _session(client: TestClient, api_key: str, customer: str = "C0002") -> str:
    response = client.post(
        "/v1/sessions", json={"customer_id": customer}, headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _login(app: Any, user: str, password: str) -> TestClient:
    agent = TestClient(app)
    response = agent.post("/v1/console/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return agent


def _next(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(30):
        frame: dict[str, Any] = ws.receive_json()
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def _timed_runs(service: KefuService, log: list[tuple[str, float, float]], name: str, hold_s: float) -> None:
    """Record when each of the service's graph runs starts and ends, each held ``hold_s`` longer."""
    run = service._run

    def timed(*args: Any, **kwargs: Any) -> dict[str, Any]:
        start = time.monotonic()
        time.sleep(hold_s)  # widen the window in which an unlocked second turn would overlap
        state = run(*args, **kwargs)
        log.append((name, start, time.monotonic()))
        return state

    service._run = timed  # type: ignore[method-assign]


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results (or errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_an_event_published_on_one_replica_reaches_the_others_subscribers_in_order(
    replicas: tuple[KefuService, KefuService],
) -> None:
    a, b = replicas
    assert isinstance(a.hub, RedisHub) and isinstance(b.hub, RedisHub)

    async def scenario() -> tuple[list[Any], list[Any], int]:
        async with (
            b.hub.subscribe(CONSOLE) as on_b,
            a.hub.subscribe(CONSOLE) as on_a,
            b.hub.subscribe(conversation_topic("other")) as elsewhere,
        ):
            reached = await asyncio.to_thread(
                lambda: [a.hub.publish(CONSOLE, {"type": "note", "n": n, "text": "客户说：你好"}) for n in range(50)]
            )
            got_b = [(await asyncio.wait_for(on_b.get(), 10))["n"] for _ in range(50)]
            got_a = [(await asyncio.wait_for(on_a.get(), 10))["n"] for _ in range(50)]
            assert elsewhere.queue.empty(), "only the topic's subscribers get its events"
            assert b.hub.count(CONSOLE) == 1
            return got_a, got_b, reached[0]

    got_a, got_b, reached = asyncio.run(scenario())
    assert got_b == list(range(50)) and got_a == list(range(50))
    assert reached == 2, "PUBLISH reports the replicas listening"


def test_a_customer_socket_on_one_replica_gets_what_an_agent_does_on_another(
    cluster_settings: Settings, intent_model: IntentModel, api_key: str
) -> None:
    app_a, app_b = _app(cluster_settings, intent_model), _app(cluster_settings, intent_model)
    with TestClient(app_a), TestClient(app_b) as client_b:
        assert isinstance(app_a.state.key_limiter, RedisRateLimiter)
        app_a.state.service.desk.add_agent("lin", "Lin", "agent", hash_password("lin-password"))
        token = _session(client_b, api_key)
        headers = {"Authorization": f"Bearer {token}"}
        for text in ("Where is my order?", "This is useless, I want to talk to a human agent"):
            said = client_b.post("/v1/conversations/x1/messages", json={"text": text}, headers=headers)
            assert said.status_code == 200, said.text
        assert said.json()["state"] == "handoff"

        lin = _login(app_a, "lin", "lin-password")
        with (
            client_b.websocket_connect(f"/v1/conversations/x1/ws?token={token}") as customer_ws,
            lin.websocket_connect("/v1/console/ws") as console_ws,
        ):
            waiting = _next(console_ws, "queue")["items"]
            assert [item["conversation_id"] for item in waiting] == ["x1"]
            taken = lin.post("/v1/console/handoffs/next")
            assert taken.status_code == 200 and taken.json()["conversation_id"] == "x1"
            assert _next(customer_ws, "human_joined")["agent"] == "Lin"

            console_ws.send_json({"type": "reply", "handoff_id": taken.json()["id"], "text": "Hi, Lin here."})
            said = _next(customer_ws, "human_message")
            assert said == {"type": "human_message", "agent": "Lin", "text": "Hi, Lin here."}

            # The customer writes through replica B; the console on replica A sees it.
            customer_ws.send_json({"type": "message", "id": "c-1", "text": "Thanks!"})
            assert _next(console_ws, "customer_message")["text"] == "Thanks!"

            assert lin.post(f"/v1/console/handoffs/{taken.json()['id']}/release").status_code == 200
            assert _next(customer_ws, "human_left")["text"]


def test_the_rate_limit_counts_hits_on_every_replica(cluster_settings: Settings) -> None:
    on_a = limiter_factory(cluster_settings)(3, "credential")
    on_b = limiter_factory(cluster_settings)(3, "credential")
    on_a.hit("key-1")
    on_b.hit("key-1")
    on_a.hit("key-1")
    with pytest.raises(RateLimitError, match=r"credential \(limit 3/min\)") as refused:
        on_b.hit("key-1")
    assert 0 < refused.value.retry_after_s <= 20
    on_b.hit("key-2")  # another key has its own bucket


def test_turns_of_one_conversation_on_two_replicas_run_one_at_a_time_in_order(
    replicas: tuple[KefuService, KefuService],
) -> None:
    a, b = replicas
    runs: list[tuple[str, float, float]] = []
    _timed_runs(a, runs, "a", 0.3)
    _timed_runs(b, runs, "b", 0.3)
    texts = {"a": "Where is my order?", "b": "Do you ship to Hangzhou?"}
    results = _together(
        lambda: a.chat("lock-1", "C0002", texts["a"], message_id="m-a"),
        lambda: b.chat("lock-1", "C0002", texts["b"], message_id="m-b"),
    )
    assert not any(isinstance(r, Exception) for r in results), results
    first, second = sorted(runs, key=lambda run: run[1])
    assert first[2] <= second[1], f"turns overlapped: {runs}"
    _, history = a.history("lock-1", "C0002")
    customer = [entry.text for entry in history if entry.role == "customer"]
    assert customer == [texts[first[0]], texts[second[0]]]
    assert [entry.role for entry in history] == ["customer", "agent", "customer", "agent"]


def test_a_lock_left_by_a_dead_replica_expires_and_the_next_turn_proceeds(
    make_service: Factory, redis_server: RedisServer, redis: Redis
) -> None:
    service = make_service(redis_url=redis_server.url, turn_lock_ttl_s=1.0)
    redis.set(lock_key("dead-1"), "dead-replica:token", px=1000)  # what a killed replica leaves behind
    owners: list[bytes | None] = []
    run = service._run

    def watched(*args: Any, **kwargs: Any) -> dict[str, Any]:
        owners.append(redis.get(lock_key("dead-1")))
        return run(*args, **kwargs)

    service._run = watched  # type: ignore[method-assign]
    result = service.chat("dead-1", "C0002", "Where is my order?", message_id="m-1")
    assert result.reply and not result.replayed
    assert owners and owners[0] is not None and not owners[0].startswith(b"dead-replica:")
    assert redis.get(lock_key("dead-1")) is None, "the owner released its lock"


def test_a_held_lock_is_renewed_past_its_ttl_and_only_its_owner_releases_it(redis: Redis) -> None:
    holder = RedisTurnLocks(redis, ttl_s=0.5, wait_s=5, owner="holder")
    waiter = RedisTurnLocks(redis, ttl_s=0.5, wait_s=0.3, owner="waiter")
    try:
        with holder.hold("busy-1"):
            time.sleep(1.2)  # more than twice the TTL: only the renewals keep it
            token = redis.get(lock_key("busy-1"))
            assert token is not None and token.startswith(b"holder:")
            with pytest.raises(TurnLockError, match="still being answered") as busy, waiter.hold("busy-1"):
                pass
            assert busy.value.retry_after_s >= 0.5
            waiter._release(keys=[lock_key("busy-1")], args=["waiter:not-the-owner"])
            assert redis.get(lock_key("busy-1")) == token, "a non-owner cannot release it"
        assert redis.get(lock_key("busy-1")) is None
        with waiter.hold("busy-1"):
            pass
    finally:
        holder.close()
        waiter.close()


def test_the_same_message_id_sent_to_both_replicas_is_answered_by_one_turn(
    replicas: tuple[KefuService, KefuService],
) -> None:
    a, b = replicas
    runs: list[tuple[str, float, float]] = []
    _timed_runs(a, runs, "a", 0.2)
    _timed_runs(b, runs, "b", 0.2)
    results = _together(
        lambda: a.chat("retry-1", "C0002", "Where is my order?", message_id="same"),
        lambda: b.chat("retry-1", "C0002", "Where is my order?", message_id="same"),
    )
    assert not any(isinstance(r, Exception) for r in results), results
    assert len(runs) == 1, "one turn ran"
    assert sorted(r.replayed for r in results) == [False, True]
    assert results[0].reply == results[1].reply
    _, history = b.history("retry-1", "C0002")
    assert [entry.role for entry in history] == ["customer", "agent"]


def _open_handoffs(service: KefuService) -> list[int]:
    """Six waiting handoffs of different urgency; some waited longer (the queue's waiting points)."""
    cases = [
        ("C0005", "calm"),  # standard: 0
        ("C0001", "calm"),  # vip: 40
        ("C0003", "angry"),  # silver 10 + angry 30 = 40, a tie broken by id
        ("C0006", "dissatisfied"),  # 15, waited 30 min: 45
        ("C0002", "confused"),  # gold 25 + 5 = 30
        ("C0007", "calm"),  # 0, waited 2 h: capped at 60
    ]
    ids = []
    for n, (customer_id, emotion) in enumerate(cases):
        customer = service.store.get_customer(CustomerId(customer_id))
        assert customer is not None
        values = {"messages": [], "emotion": emotion, "escalate_reason": "the customer asked for a human"}
        ids.append(service.human_desk.escalated(f"queue-{n}", customer, Channel.WEB, values).id)
    now = datetime.now(UTC).replace(tzinfo=None)
    with Session(service.store.engine) as session, session.begin():
        for index, waited in ((3, timedelta(minutes=30)), (5, timedelta(hours=2))):
            session.execute(update(HandoffRow).where(HandoffRow.id == ids[index]).values(created_at=now - waited))
    return ids


def _agents(service: KefuService, *names: str) -> list[AgentAccount]:
    return [service.desk.add_agent(name, name.title(), "agent", hash_password(f"{name}-password")) for name in names]


def test_two_agents_on_two_replicas_take_distinct_handoffs_in_priority_order(
    replicas: tuple[KefuService, KefuService], redis: Redis
) -> None:
    a, b = replicas
    _open_handoffs(a)
    redis.delete(BUILT_KEY)  # the waiting times changed in the database: Redis rebuilds its copy
    expected = [item["id"] for item in a.human_desk.queue() if item["status"] == "waiting"]
    assert len(expected) == 6
    lin, wu = _agents(a, "lin", "wu")

    def take_all(service: KefuService, agent: AgentAccount) -> list[int]:
        taken = []
        while True:
            try:
                taken.append(service.cluster.handoffs.take_next(service.human_desk, agent).id)
            except NotFoundError:
                return taken

    by_lin, by_wu = _together(lambda: take_all(a, lin), lambda: take_all(b, wu))
    assert sorted(by_lin + by_wu) == sorted(expected) and not set(by_lin) & set(by_wu)
    for taken in (by_lin, by_wu):
        assert taken == sorted(taken, key=expected.index), "each agent got them most urgent first"
    owners = {h.id: h.agent_id for h in a.desk.list_handoffs((HandoffStatus.ACTIVE.value,))}
    assert all(owners[i] == "lin" for i in by_lin) and all(owners[i] == "wu" for i in by_wu)


def test_next_handoff_is_the_same_with_and_without_redis(
    make_service: Factory, redis_server: RedisServer, redis: Redis
) -> None:
    alone = make_service()
    _open_handoffs(alone)
    expected = [item["id"] for item in alone.human_desk.queue() if item["status"] == "waiting"]
    (lin,) = _agents(alone, "lin")
    assert [alone.cluster.handoffs.take_next(alone.human_desk, lin).id for _ in range(3)] == expected[:3]

    shared = make_service(redis_url=redis_server.url)
    assert isinstance(shared.cluster.handoffs, RedisHandoffQueue)
    assert [shared.cluster.handoffs.take_next(shared.human_desk, lin).id for _ in range(3)] == expected[3:]
    with pytest.raises(NotFoundError, match="no handoff is waiting"):
        shared.cluster.handoffs.take_next(shared.human_desk, lin)


def test_next_handoff_route(settings: Settings, intent_model: IntentModel) -> None:
    app = _app(settings, intent_model)
    with TestClient(app) as client:
        service: KefuService = app.state.service
        _open_handoffs(service)
        expected = [item["id"] for item in service.human_desk.queue() if item["status"] == "waiting"]
        _agents(service, "lin")
        assert client.post("/v1/console/handoffs/next").status_code == 401
        lin = _login(app, "lin", "lin-password")
        taken = lin.post("/v1/console/handoffs/next")
        assert taken.status_code == 200, taken.text
        assert taken.json()["id"] == expected[0] and taken.json()["status"] == "active"
        for _ in expected[1:]:
            assert lin.post("/v1/console/handoffs/next").status_code == 200
        empty = lin.post("/v1/console/handoffs/next")
        assert empty.status_code == 404 and "no handoff is waiting" in empty.json()["detail"]


def test_with_redis_down_turns_are_refused_with_503_and_go_on_when_it_is_back(
    settings: Settings, intent_model: IntentModel, api_key: str
) -> None:
    with RedisServer() as server:
        app = _app(settings.model_copy(update={"redis_url": server.url}), intent_model)
        with TestClient(app) as client:
            service: KefuService = app.state.service
            assert isinstance(service.hub, RedisHub)
            headers = {"Authorization": f"Bearer {_session(client, api_key)}"}

            def say(message_id: str) -> Any:
                body = {"text": "Where is my order?", "message_id": message_id}
                return client.post("/v1/conversations/down-1/messages", json=body, headers=headers)

            assert say("m-1").status_code == 200

            async def outage() -> list[dict[str, Any]]:
                async with service.hub.subscribe(conversation_topic("down-1")) as subscription:
                    await asyncio.to_thread(server.kill)
                    refused = await asyncio.to_thread(say, "m-2")
                    assert refused.status_code == 503, refused.text
                    assert "Redis" in refused.json()["detail"] and int(refused.headers["Retry-After"]) >= 1
                    # This replica's own sockets still get its events while Redis is away.
                    await asyncio.to_thread(service.hub.publish, conversation_topic("down-1"), {"type": "local"})
                    events = [await asyncio.wait_for(subscription.get(), 10)]
                    await asyncio.to_thread(server.start)
                    # Events from other replicas were lost meanwhile: the socket is told to reload.
                    events.append(await asyncio.wait_for(subscription.get(), 20))
                    return events

            assert asyncio.run(outage()) == [{"type": "local"}, {"type": "dropped"}]
            assert service.cluster.health() == "ok"
            again = say("m-2")
            assert again.status_code == 200, again.text
            history = client.get("/v1/conversations/down-1", headers=headers).json()["messages"]
            assert [m["role"] for m in history] == ["customer", "agent", "customer", "agent"]
