"""Personal data through the whole graph: placeholders for the model and the records, real values for tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from sqlalchemy import inspect, text

from core.context import SupportContext
from core.db import make_engine
from core.errors import ConfigError
from core.settings import Settings
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId
from serving.service import KefuService
from tests.fakes import ScriptedChatModel, ScriptedIntents, reply, sure

Factory = Callable[..., KefuService]

NEW_PHONE = "13912345678"


def _stored_bytes(settings: Settings) -> bytes:
    """Every byte Kefu keeps on disk for this test: databases, checkpoints, WAL files."""
    return b"".join(path.read_bytes() for path in Path(settings.data_dir).rglob("*") if path.is_file())


def test_the_tool_gets_the_real_value_while_the_model_and_the_records_see_placeholders(
    make_service: Factory, store: SqlStore, settings: Settings
) -> None:
    call = ToolCall(name="update_contact", args={"phone": "<CN_MOBILE_1>"}, id="call_1")
    model = ScriptedChatModel(
        [
            reply("", tool_calls=[call]),
            reply("Done: your phone number is now <CN_MOBILE_1>."),
        ]
    )
    intents = ScriptedIntents({"number": sure("account_profile")})
    service = make_service(model, intents)
    result = service.chat("p1", "C0002", f"Please put {NEW_PHONE} on my account as my number")
    assert "update_contact" in result.tools
    # The tool acted on the real number ...
    customer = store.get_customer(CustomerId("C0002"))
    assert customer is not None and customer.phone == NEW_PHONE
    # ... the model saw only placeholders, the seeded e-mail included (the tool result was redacted) ...
    assert model.calls and all(NEW_PHONE not in c.text and "@" not in c.text for c in model.calls)
    # ... and the customer sees the real number.
    assert f"your phone number is now {NEW_PHONE}" in result.reply
    state = service.graph.get_state({"configurable": {"thread_id": "p1"}}).values
    assert "vault" not in state
    texts = [str(m.content) for m in state["messages"]] + [str(getattr(m, "tool_calls", "")) for m in state["messages"]]
    assert all(NEW_PHONE not in text and customer.email not in text for text in texts)
    tool_message = next(m for m in state["messages"] if isinstance(m, ToolMessage) and m.name == "update_contact")
    assert tool_message.artifact["phone"] == "<CN_MOBILE_1>"
    assert tool_message.artifact["email"].startswith("<EMAIL_ADDRESS_")
    if not settings.on_postgres:
        assert NEW_PHONE.encode() in _stored_bytes(settings)  # the CRM keeps the number by design ...
    _assert_only_in_crm(settings)  # ... and nothing else does


def _assert_only_in_crm(settings: Settings) -> None:
    """The number is in the customers table (where the CRM keeps it) and nowhere else."""
    import sqlite3

    if settings.on_postgres:  # one database holds the store and the checkpoints
        engine = make_engine(settings.resolved_database_url, migrate=False)
        with engine.connect() as db:
            tables = inspect(db).get_table_names()
            holders = [
                t for t in tables if any(NEW_PHONE in str(row) for row in db.execute(text(f"select * from {t}")))
            ]
        engine.dispose()
        assert holders == ["customers"]
        return
    checkpoints = Path(settings.checkpoint_path)
    assert NEW_PHONE.encode() not in b"".join(p.read_bytes() for p in checkpoints.parent.glob(checkpoints.name + "*"))
    with sqlite3.connect(settings.data_dir / "kefu.db") as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type='table'")]
        holders = [
            table for table in tables if any(NEW_PHONE in str(row) for row in db.execute(f"select * from {table}"))
        ]
    assert holders == ["customers"]


def test_rules_alone_change_the_contact_with_the_real_value(make_service: Factory, store: SqlStore) -> None:
    service = make_service(intents=ScriptedIntents({"邮箱": sure("account_profile")}))
    result = service.chat("p2", "C0001", "请把我的邮箱改成 wangfang.new@example.cn")
    assert result.tools == ["update_contact"]
    assert "您的邮箱已更新为wangfang.new@example.cn" in result.reply
    customer = store.get_customer(CustomerId("C0001"))
    assert customer is not None and customer.email == "wangfang.new@example.cn"
    _, history = service.history("p2", "C0001")
    assert history[0].text == "请把我的邮箱改成 wangfang.new@example.cn"  # restored for the customer's own view


def test_a_placeholder_the_model_invents_never_reaches_the_tool_as_a_value(
    make_service: Factory, store: SqlStore
) -> None:
    before = store.get_customer(CustomerId("C0002"))
    call = ToolCall(name="update_contact", args={"phone": "<CN_MOBILE_7>"}, id="call_1")
    model = ScriptedChatModel([reply("", tool_calls=[call]), reply("Sorry, could you write the number again?")])
    service = make_service(model, ScriptedIntents({"number": sure("account_profile")}))
    result = service.chat("p3", "C0002", "update my number please")
    assert store.get_customer(CustomerId("C0002")) == before
    assert result.tools == ["get_customer_profile", "update_contact"]


def test_transcripts_and_handoff_tickets_hold_placeholders_only(make_service: Factory, store: SqlStore) -> None:
    service = make_service(intents=ScriptedIntents({}, default=[("human_agent", 0.97), ("chitchat", 0.03)]))
    text = "转人工！我的身份证号是11010519491231002X，手机13812345678，邮箱 li.lei@example.cn"
    result = service.chat("p4", "C0001", text)
    assert result.state == "handoff"
    ticket = store.handoff_queue()[0]
    for secret in ("11010519491231002X", "13812345678", "li.lei@example.cn"):
        assert secret not in ticket.subject
        assert all(secret not in (entry.decision + (entry.fallback or "")) for entry in service.audit("p4", "C0001"))
    assert "<CN_RESIDENT_ID_1>" in ticket.subject or "<CN_MOBILE_1>" in ticket.subject
    _, history = service.history("p4", "C0001")
    assert history[0].text == text


def test_the_graph_refuses_to_run_without_a_vault(make_service: Factory, store: SqlStore) -> None:
    service = make_service()
    context = SupportContext(CustomerId("C0002"), ConversationId("p5"), Channel.WEB, store)
    with pytest.raises(ConfigError, match="needs a PII vault"):
        service.graph.invoke(
            {"inbound": "hello", "customer_id": "C0002"}, {"configurable": {"thread_id": "p5"}}, context=context
        )


def test_an_expired_vault_leaves_placeholders_in_the_history(
    make_service: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from core import vault as vault_module

    service = make_service()
    service.chat("p6", "C0002", "my number is 13812345678")
    later = vault_module._now() + timedelta(days=31)
    monkeypatch.setattr(vault_module, "_now", lambda: later)
    _, history = service.history("p6", "C0002")
    assert history[0].text == "my number is <CN_MOBILE_1>"
    assert isinstance(service.graph.get_state({"configurable": {"thread_id": "p6"}}).values["messages"][-1], AIMessage)
