"""The service: conversations survive a restart; bad input is refused before it reaches the graph."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.errors import InvalidInputError, NotFoundError
from core.store import SqlStore
from core.types import CustomerId, OrderStatus
from serving.service import KefuService
from tests.fakes import ScriptedIntents, lost, sure

Factory = Callable[..., KefuService]


def test_a_conversation_resumes_after_a_restart(make_service: Factory, store: SqlStore) -> None:
    order_id = next(o.id for o in store.list_orders(CustomerId("C0002"), 20) if o.status is OrderStatus.SHIPPED)
    first = make_service()
    first.chat("resume-1", "C0002", "hello")
    before = first.chat("resume-1", "C0002", f"where is my order {order_id}?")
    state_before, history_before = first.history("resume-1", "C0002")
    first.close()

    second = make_service()  # a new process would build exactly this from the same files
    state_after, history_after = second.history("resume-1", "C0002")
    assert state_after == state_before == before.state == "answer"
    assert history_after == history_before
    assert [entry.role for entry in history_after] == ["customer", "agent", "customer", "agent"]
    follow_up = second.chat("resume-1", "C0002", "when will it arrive?")
    assert follow_up.tools == ["lookup_order"]  # the order number was remembered across the restart
    assert order_id in follow_up.reply


def test_unsure_streak_survives_a_restart(make_service: Factory) -> None:
    intents = ScriptedIntents({}, default=lost())
    make_service(intents=intents).chat("resume-2", "C0001", "嗯")
    make_service(intents=intents).chat("resume-2", "C0001", "嗯嗯")
    third = make_service(intents=intents).chat("resume-2", "C0001", "嗯嗯嗯")
    assert third.state == "handoff"


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "empty"), ("   ", "empty"), ("x" * 100_000, "longer than")],
)
def test_bad_text_is_refused(make_service: Factory, text: str, error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        make_service().chat("bad-1", "C0001", text)


def test_unknown_customer_is_refused(make_service: Factory) -> None:
    with pytest.raises(NotFoundError, match="unknown customer"):
        make_service().chat("bad-2", "C9999", "hello")


def test_bad_conversation_id_is_refused(make_service: Factory) -> None:
    with pytest.raises(InvalidInputError, match="conversation_id"):
        make_service().chat("../../etc/passwd", "C0001", "hello")


def test_another_customer_cannot_continue_or_read_a_conversation(make_service: Factory) -> None:
    service = make_service()
    service.chat("mine", "C0001", "你好")
    with pytest.raises(NotFoundError):
        service.chat("mine", "C0002", "hello")
    with pytest.raises(NotFoundError):
        service.history("mine", "C0002")
    assert len(service.history("mine", "C0001")[1]) == 2


def test_raw_personal_data_is_not_stored_in_the_transcript(make_service: Factory) -> None:
    service = make_service()
    service.chat("pii-1", "C0002", "my email is jane.doe@example.org, where is my order?")
    values = service.graph.get_state({"configurable": {"thread_id": "pii-1"}}).values
    assert all("jane.doe@example.org" not in m.text for m in values["messages"])
    assert values["inbound"] == ""
    # The customer still sees their own words when the chat window reloads.
    assert "jane.doe@example.org" in service.history("pii-1", "C0002")[1][0].text


def test_every_turn_is_audited(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({"hello": sure("greeting")}, default=lost()))
    service.chat("audit-1", "C0002", "hello")
    service.chat("audit-1", "C0002", "hmm")
    entries = service.audit("audit-1", "C0002")
    assert [e.intent for e in entries] == ["greeting", "chitchat"]
    assert entries[0].stage == "classifier" and entries[0].fallback is None
    assert "accept=0.8" in entries[0].thresholds and ">= accept" in entries[0].decision
    assert entries[1].fallback == "unsure: clarifying question" and "unsure" in entries[1].decision
    with pytest.raises(NotFoundError):
        service.audit("audit-1", "C0001")


def test_handoff_tickets_and_audit_carry_no_raw_personal_data(make_service: Factory, store: SqlStore) -> None:
    service = make_service()
    result = service.chat("pii-2", "C0001", "我要人工客服，电话13812345678，邮箱wang.fang@example.cn")
    assert result.state == "handoff"
    ticket = next(t for t in store.handoff_queue() if t.conversation_id == "pii-2")
    assert "13812345678" not in ticket.subject and "wang.fang@example.cn" not in ticket.subject
    assert "<CN_MOBILE_1>" in ticket.subject
    assert all("13812345678" not in (entry.decision + str(entry.fallback)) for entry in service.audit("pii-2", "C0001"))
