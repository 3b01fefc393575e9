"""Turns through the whole graph with a scripted model at the model boundary."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from langchain_core.messages import ToolCall

from core.store import SqlStore
from core.types import CustomerId, OrderStatus
from serving.service import KefuService
from tests.fakes import ScriptedChatModel, ScriptedIntents, ambiguous, echo_facts, intent, lost, reply, sure

Factory = Callable[..., KefuService]


def shipped_order(store: SqlStore, customer: str) -> str:
    return next(o.id for o in store.list_orders(CustomerId(customer), limit=20) if o.status is OrderStatus.SHIPPED)


def test_order_question_is_answered_by_the_llm_from_the_tool_result(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    model = ScriptedChatModel([intent("order_status", 0.9), echo_facts])
    intents = ScriptedIntents({"where is": ambiguous("order_status", "shipping_delivery")})
    result = make_service(model, intents).chat("c1", "C0002", f"Where is my order {order_id}?")
    assert result.route == "llm"
    assert result.stage == "llm"
    assert result.tools == ["lookup_order"]
    assert result.state == "answer"
    assert result.events == ["customer_says", "asks"]
    # The LLM's 0.9 averaged with the classifier's 0.5 renormalised over the three candidates.
    assert result.confidence == pytest.approx((0.9 + 0.5) / 2, abs=0.01)
    assert result.llm_calls == 2
    assert order_id in result.reply and "shipped" in result.reply
    structured, free = model.calls
    enum = structured.kwargs["response_format"]["json_schema"]["schema"]["properties"]["intent"]["enum"]
    assert enum == ["order_status", "shipping_delivery", "chitchat"]
    assert structured.structured and not free.structured
    assert order_id in free.text and "shipped" in free.text  # the model saw the facts
    assert {t["function"]["name"] for t in free.kwargs["tools"]} >= {"lookup_order", "request_human"}
    model.assert_complete()


def test_unsure_turns_clarify_then_offer_a_human_then_hand_off(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({}, default=lost("order_status", "return_refund")))
    first = service.chat("c2", "C0002", "hmm the thing")
    second = service.chat("c2", "C0002", "the other one")
    third = service.chat("c2", "C0002", "you know")
    assert first.state == second.state == "need_confirm"
    assert "check an order's status" in first.reply and "return an item" in first.reply  # the top two, as choices
    assert "human colleague" in second.reply and second.fallback == "offered a human after repeated unsure turns"
    assert third.state == "handoff"
    assert third.tools == ["request_human"]
    assert "#" in third.reply
    assert third.fallback is not None and "still unclear" in third.fallback


def test_a_yes_to_the_offer_hands_off(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({"ok": sure("chitchat")}, default=lost()))
    service.chat("c2b", "C0001", "嗯")
    service.chat("c2b", "C0001", "嗯嗯")
    agreed = service.chat("c2b", "C0001", "ok")
    assert agreed.state == "handoff"
    assert "agreed" in (agreed.fallback or "")


def test_clarifying_questions_are_never_repeated(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({}, default=lost("order_status", "return_refund")))
    replies = []
    for turn in range(4):
        replies.append(service.chat(f"c2c-{turn // 2}", "C0002", "hmm").reply)
    # Two conversations, each: a clarifying question, then the offer of a human.
    assert replies[0] == replies[2] and replies[1] == replies[3]
    asked = service.graph.get_state({"configurable": {"thread_id": "c2c-0"}}).values["asked"]
    assert len(asked) == len(set(asked)) == 1


def test_a_sure_answer_after_the_offer_goes_on_normally(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    service = make_service(intents=ScriptedIntents({"KF": sure("order_status")}, default=lost()))
    service.chat("c2d", "C0002", "hmm")
    service.chat("c2d", "C0002", "hmm hmm")
    result = service.chat("c2d", "C0002", f"{order_id}")
    assert result.state == "answer" and result.tools == ["lookup_order"]


def test_llm_down_still_answers_with_the_real_order_status(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0001")
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    model = ScriptedChatModel([openai.APIConnectionError(request=request)])
    result = make_service(model).chat("c3", "C0001", f"我的订单{order_id}到哪了？")
    assert result.route == "rules"
    assert result.tools == ["lookup_order"]
    assert order_id in result.reply and "已发货" in result.reply
    # The circuit breaker keeps the dead backend from being called again this turn.
    assert len(model.calls) == 1


def test_slow_llm_reply_falls_back_to_a_template(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    model = ScriptedChatModel(
        [intent("order_status"), openai.APITimeoutError(request=httpx.Request("POST", "http://x"))]
    )
    result = make_service(model).chat("c4", "C0002", f"status of {order_id}")
    assert result.route == "rules"
    assert order_id in result.reply and "shipped" in result.reply


def test_ungrounded_llm_reply_is_replaced(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    model = ScriptedChatModel([intent("order_status"), reply(f"Your order {order_id} will arrive tomorrow by drone!")])
    result = make_service(model).chat("c5", "C0002", f"where is {order_id}")
    assert result.route == "rules"
    assert "drone" not in result.reply
    assert "shipped" in result.reply


def test_a_reply_that_names_an_internal_tool_is_replaced(make_service: Factory) -> None:
    model = ScriptedChatModel(
        [reply("To find your order, you can call the `lookup_order` function with the order number.")]
    )
    intents = ScriptedIntents({"where": sure("order_status")})
    result = make_service(model, intents).chat("c5b", "C0002", "Where is my order?")
    assert result.tools == ["list_recent_orders"]
    assert result.route == "rules" and "lookup_order" not in result.reply
    assert result.fallback is not None and "internal tool lookup_order" in result.fallback


def test_tool_call_written_as_json_text_is_executed(make_service: Factory) -> None:
    model = ScriptedChatModel(
        [
            reply('<tool_call>{"name": "get_customer_profile", "arguments": {}}</tool_call>'),
            reply("You are a GOLD member; I can help with the return of your order."),
        ]
    )
    intents = ScriptedIntents({"return": sure("return_refund")})
    result = make_service(model, intents).chat("c6", "C0002", "I want to return something")
    assert result.tools == ["list_recent_orders", "get_customer_profile"]
    assert result.route == "llm"
    assert result.llm_calls == 2
    model.assert_complete()


def test_model_cannot_use_tools_to_read_another_customers_order(make_service: Factory, store: SqlStore) -> None:
    foreign = shipped_order(store, "C0002")
    model = ScriptedChatModel(
        [
            intent("product_inquiry"),
            reply("", [ToolCall(name="lookup_order", args={"order_id": foreign}, id="x1", type="tool_call")]),
            reply("I could not find that order on your account."),
        ]
    )
    result = make_service(model).chat("c7", "C0001", f"Tell me about the headphones in order {foreign}, customer C0002")
    assert "lookup_order" in result.tools
    foreign_order = store.get_order(foreign)  # type: ignore[arg-type]
    assert foreign_order is not None and foreign_order.tracking_number
    assert foreign_order.tracking_number not in result.reply
    assert all(foreign_order.tracking_number not in call.text for call in model.calls)


def test_a_message_asking_for_another_customers_order_gets_nothing(make_service: Factory, store: SqlStore) -> None:
    foreign = shipped_order(store, "C0002")
    result = make_service().chat("c8", "C0001", f"Show me order {foreign} of customer C0002")
    assert result.tools == ["lookup_order"]
    order = store.get_order(foreign)  # type: ignore[arg-type]
    assert order is not None and order.tracking_number not in result.reply  # type: ignore[operator]
    assert "KF" in result.reply


def test_personal_data_never_reaches_the_model_and_comes_back_to_the_customer(make_service: Factory) -> None:
    model = ScriptedChatModel([intent("complaint"), reply("Noted, we will call <CN_MOBILE_1> about the ticket.")])
    intents = ScriptedIntents({"投诉": ambiguous("complaint", "order_status")})
    result = make_service(model, intents).chat("c9", "C0001", "你们的快递太慢了，我要投诉，电话13812345678")
    assert all("13812345678" not in call.text for call in model.calls)
    assert any("<CN_MOBILE_1>" in call.text for call in model.calls)
    assert "13812345678" in result.reply
    assert result.tools == ["open_ticket"]


def test_leaked_personal_data_in_model_output_is_masked(
    make_service: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedChatModel([reply("Your tier is GOLD; contact boss@evil.example.com")])
    intents = ScriptedIntents({"tier": sure("account_profile")})
    result = make_service(model, intents).chat("c10", "C0002", "what is my membership tier?")
    assert "boss@evil.example.com" not in result.reply
    assert "<EMAIL_ADDRESS>" in result.reply
    assert "reply guard masked personal data not in the vault: ['EMAIL_ADDRESS']" in caplog.text
    assert "boss@evil" not in caplog.text


def test_order_number_carries_over_to_the_follow_up(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    service = make_service()
    service.chat("c11", "C0002", f"where is my order {order_id}?")
    follow_up = service.chat("c11", "C0002", "when will the delivery arrive?")
    assert follow_up.tools == ["lookup_order"]
    assert order_id in follow_up.reply


def test_angry_customer_goes_to_a_human_with_priority(make_service: Factory, store: SqlStore) -> None:
    result = make_service().chat("c12", "C0001", "气死我了！！！你们这是什么破服务，垃圾")
    assert result.state == "handoff"
    assert result.tools == ["request_human"]
    after = make_service().chat("c12", "C0001", "还在吗")
    assert after.state == "handoff" and after.tools == []


def test_goodbye_ends_and_a_new_message_starts_over(make_service: Factory) -> None:
    service = make_service()
    assert service.chat("c13", "C0002", "hello").state == "need_confirm"
    assert service.chat("c13", "C0002", "thanks, bye").state == "end"
    assert service.chat("c13", "C0002", "hi again").state == "need_confirm"


def test_an_angry_vip_lands_at_the_front_of_the_handoff_queue(make_service: Factory, store: SqlStore) -> None:
    service = make_service(intents=ScriptedIntents({"help": sure("human_agent")}, default=sure("complaint")))
    service.chat("q-standard", "C0003", "I need help from a person")  # calm, asks for a human
    service.chat("q-vip-calm", "C0002", "I need help from a person")  # gold, calm
    angry = service.chat("q-vip-angry", "C0001", "气死我了！！！你们这是什么破服务，垃圾")  # VIP, angry
    assert angry.state == "handoff" and angry.emotion == "angry"
    assert angry.fallback is not None and "angry" in angry.fallback
    queue = store.handoff_queue()
    assert queue[0].conversation_id == "q-vip-angry"
    assert queue[0].priority == 1 < queue[-1].priority


def test_repeated_dissatisfaction_hands_off(make_service: Factory) -> None:
    service = make_service(intents=ScriptedIntents({}, default=sure("complaint")))
    replies = [service.chat("diss", "C0002", text) for text in ("still not arrived", "very disappointed", "too slow")]
    assert [r.emotion for r in replies] == ["dissatisfied"] * 3
    assert replies[-1].state == "handoff"


def test_a_dead_llm_gives_rule_replies_fast_and_recovery_is_detected(make_service: Factory, store: SqlStore) -> None:
    order_id = shipped_order(store, "C0002")
    down = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    model = ScriptedChatModel([down, intent("order_status", 0.9), echo_facts])
    intents = ScriptedIntents({"KF": ambiguous("order_status", "shipping_delivery")})
    # The cooldown must outlast the rest of the first turn and all of the second, even on a loaded CI machine.
    service = make_service(model, intents, llm_cooldown_s=3.0)
    first = service.chat("dead-1", "C0002", f"{order_id} status?")
    second = service.chat("dead-1", "C0002", f"{order_id} status again?")
    assert (first.stage, second.stage) == ("classifier:llm-down", "classifier:llm-down")
    assert first.route == second.route == "rules"
    assert "shipped" in first.reply and "shipped" in second.reply
    assert len(model.calls) == 1  # the open breaker kept the second turn off the dead backend
    assert second.latency_ms < 1000
    import time

    time.sleep(3.05)
    third = service.chat("dead-1", "C0002", f"{order_id} and now?")
    assert third.stage == "llm" and third.route == "llm"  # the probe found the backend back
    model.assert_complete()
