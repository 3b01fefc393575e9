"""The LLM gateway in ``agent.llm``: structured choices, confidence from log-probabilities, the breaker."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolCall
from langchain_openai import ChatOpenAI

from agent.llm import WARM_UP_TIMEOUT_S, Choice, LlmGateway, LlmUnavailable, label_confidence, make_chat_model
from agent.machine import Intent
from core.settings import Settings
from tests.fakes import ScriptedChatModel, intent, reply
from tools.orders import lookup_order
from tools.registry import BUILTIN_TOOLS

MESSAGES = [SystemMessage("Classify the customer's message."), HumanMessage("Where is my order KF101170?")]
OPTIONS = [str(i) for i in Intent]


def _tokens(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"token": token, "logprob": logprob} for token, logprob in pairs]


# ------------------------------------------------------------------------------------- label_confidence


def test_label_confidence_is_the_joint_probability_of_the_value_tokens() -> None:
    content = '{"intent": "order_status"}'
    logprobs = _tokens(('{"intent": "', -0.01), ("order", math.log(0.9)), ("_status", math.log(0.8)), ('"}', -0.02))
    assert label_confidence(content, logprobs, "order_status") == pytest.approx(0.9 * 0.8)


def test_label_confidence_ignores_tokens_outside_the_value() -> None:
    content = '{"intent": "greeting"}'
    logprobs = _tokens(('{"', math.log(0.1)), ('intent": "', math.log(0.2)), ("greeting", math.log(0.7)), ('"}', -5.0))
    assert label_confidence(content, logprobs, "greeting") == pytest.approx(0.7)


def test_label_confidence_counts_tokens_that_straddle_the_quotes() -> None:
    content = '{"intent":"order_status"}'
    logprobs = _tokens(
        ('{"intent":', math.log(0.5)),
        ('"ord', math.log(0.9)),  # opening quote + start of the value
        ("er_stat", math.log(0.8)),
        ('us"', math.log(0.7)),  # end of the value + closing quote
        ("}", math.log(0.5)),
    )
    assert label_confidence(content, logprobs, "order_status") == pytest.approx(0.9 * 0.8 * 0.7)


def test_label_confidence_of_a_single_certain_token_is_one() -> None:
    content = '{"intent": "goodbye"}'
    logprobs = _tokens(('{"intent": "', 0.0), ("goodbye", 0.0), ('"}', 0.0))
    assert label_confidence(content, logprobs, "goodbye") == pytest.approx(1.0)


def test_label_confidence_is_zero_without_logprobs() -> None:
    assert label_confidence('{"intent": "greeting"}', [], "greeting") == 0.0


def test_label_confidence_is_zero_when_the_value_is_absent() -> None:
    content = '{"intent": "greeting"}'
    logprobs = _tokens(('{"intent": "', 0.0), ("greeting", -0.1), ('"}', 0.0))
    assert label_confidence(content, logprobs, "goodbye") == 0.0


def test_label_confidence_is_zero_when_no_token_reaches_the_value() -> None:
    content = '{"intent": "greeting"}'
    # The tokens cover only the prefix (a truncated logprobs list).
    assert label_confidence(content, _tokens(('{"intent": "', -0.1)), "greeting") == 0.0


def test_label_confidence_matches_the_fake_intent_helper() -> None:
    message = intent("return_refund", 0.42)
    logprobs = message.response_metadata["logprobs"]["content"]
    assert label_confidence(message.text, logprobs, "return_refund") == pytest.approx(0.42)


def test_label_confidence_handles_chinese_values() -> None:
    content = json.dumps({"label": "退款"}, ensure_ascii=False)
    logprobs = _tokens(('{"label": "', 0.0), ("退", math.log(0.5)), ("款", math.log(0.5)), ('"}', 0.0))
    assert label_confidence(content, logprobs, "退款") == pytest.approx(0.25)


# ------------------------------------------------------------------------------------- LlmGateway.choose


def test_choose_returns_the_label_and_its_probability() -> None:
    model = ScriptedChatModel([intent("order_status", 0.83)])
    choice = LlmGateway(model).choose(MESSAGES, "intent", OPTIONS)
    assert isinstance(choice, Choice)
    assert choice.label == "order_status"
    assert choice.confidence == pytest.approx(0.83)
    model.assert_complete()


def test_choose_sends_a_json_schema_with_the_options_and_asks_for_logprobs() -> None:
    model = ScriptedChatModel([intent("greeting", 0.9)])
    LlmGateway(model).choose(MESSAGES, "intent", ["greeting", "goodbye"])
    assert len(model.calls) == 1
    call = model.calls[0]
    assert call.structured
    assert call.kwargs["logprobs"] is True
    response_format = call.kwargs["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["intent"]
    assert schema["properties"]["intent"]["enum"] == ["greeting", "goodbye"]
    assert schema["additionalProperties"] is False
    assert [m.text for m in call.messages] == [m.text for m in MESSAGES]


def test_choose_without_logprobs_has_zero_confidence() -> None:
    model = ScriptedChatModel([AIMessage(content='{"intent": "greeting"}')])
    assert LlmGateway(model).choose(MESSAGES, "intent", OPTIONS) == Choice("greeting", 0.0)


def test_choose_rejects_a_label_outside_the_options() -> None:
    model = ScriptedChatModel([intent("weather_report", 0.99)])
    with pytest.raises(LlmUnavailable, match="weather_report"):
        LlmGateway(model).choose(MESSAGES, "intent", OPTIONS)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("I think it is about an order.", id="prose"),
        pytest.param('{"intent": "greet', id="truncated-json"),
        pytest.param('{"label": "greeting"}', id="wrong-field"),
        pytest.param('["greeting"]', id="not-an-object"),
        pytest.param("", id="empty"),
    ],
)
def test_choose_rejects_unparseable_output(content: str) -> None:
    model = ScriptedChatModel([AIMessage(content=content)])
    with pytest.raises(LlmUnavailable):
        LlmGateway(model).choose(MESSAGES, "intent", OPTIONS)


def test_unparseable_output_does_not_open_the_breaker() -> None:
    model = ScriptedChatModel([AIMessage(content="nonsense"), intent("greeting", 0.9)])
    gateway = LlmGateway(model)
    with pytest.raises(LlmUnavailable):
        gateway.choose(MESSAGES, "intent", OPTIONS)
    assert gateway.available
    assert gateway.choose(MESSAGES, "intent", OPTIONS).label == "greeting"
    assert len(model.calls) == 2


# ------------------------------------------------------------------------------------- circuit breaker


def test_a_model_failure_becomes_llm_unavailable_and_opens_the_breaker() -> None:
    model = ScriptedChatModel([TimeoutError("read timed out"), intent("greeting", 0.9)])
    gateway = LlmGateway(model)
    assert gateway.available
    with pytest.raises(LlmUnavailable, match="TimeoutError"):
        gateway.choose(MESSAGES, "intent", OPTIONS)
    assert not gateway.available
    with pytest.raises(LlmUnavailable, match="circuit open"):
        gateway.choose(MESSAGES, "intent", OPTIONS)
    with pytest.raises(LlmUnavailable, match="circuit open"):
        gateway.reply(MESSAGES)
    assert len(model.calls) == 1  # the open breaker failed fast, without calling the model


def test_a_warm_up_gets_a_long_timeout_and_its_failure_leaves_the_breaker_closed() -> None:
    model = ScriptedChatModel([TimeoutError("cold prefix"), AIMessage(content="ok"), AIMessage(content="hi")])
    gateway = LlmGateway(model)
    with pytest.raises(LlmUnavailable, match="cold prefix"):
        gateway.reply(MESSAGES, max_tokens=1, warm_up=True)
    assert gateway.available  # customers' turns still try the model
    gateway.reply(MESSAGES, max_tokens=1, warm_up=True)
    assert model.calls[1].kwargs["timeout"] == WARM_UP_TIMEOUT_S
    gateway.reply(MESSAGES)
    assert "timeout" not in model.calls[2].kwargs  # a turn keeps the client's per-turn timeout


def test_the_original_exception_is_chained() -> None:
    boom = ConnectionError("connection refused")
    gateway = LlmGateway(ScriptedChatModel([boom]))
    with pytest.raises(LlmUnavailable) as caught:
        gateway.reply(MESSAGES)
    assert caught.value.__cause__ is boom


def test_calls_go_through_again_after_the_cooldown() -> None:
    model = ScriptedChatModel([RuntimeError("500 internal server error"), intent("goodbye", 0.7)])
    gateway = LlmGateway(model, cooldown_s=0.0)
    with pytest.raises(LlmUnavailable):
        gateway.choose(MESSAGES, "intent", OPTIONS)
    assert gateway.available
    choice = gateway.choose(MESSAGES, "intent", OPTIONS)
    assert choice.label == "goodbye"
    assert choice.confidence == pytest.approx(0.7)
    assert len(model.calls) == 2
    model.assert_complete()


# ------------------------------------------------------------------------------------- LlmGateway.reply


def test_reply_without_tools_sends_no_tools_or_schema() -> None:
    model = ScriptedChatModel([reply("Hello!")])
    message = LlmGateway(model).reply(MESSAGES)
    assert message.text == "Hello!"
    assert "tools" not in model.calls[0].kwargs
    assert not model.calls[0].structured


def test_reply_passes_openai_tool_schemas() -> None:
    model = ScriptedChatModel([reply("Checking.")])
    LlmGateway(model).reply(MESSAGES, tools=[lookup_order])
    tools = model.calls[0].kwargs["tools"]
    assert len(tools) == 1
    schema = tools[0]
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "lookup_order"
    assert function["description"]
    assert function["parameters"]["type"] == "object"
    assert "order_id" in function["parameters"]["properties"]
    assert function["parameters"]["required"] == ["order_id"]


def test_reply_passes_every_builtin_tool_and_hides_the_runtime() -> None:
    model = ScriptedChatModel([reply("ok")])
    LlmGateway(model).reply(MESSAGES, tools=list(BUILTIN_TOOLS))
    tools = model.calls[0].kwargs["tools"]
    assert [t["function"]["name"] for t in tools] == [t.name for t in BUILTIN_TOOLS]
    for schema in tools:
        assert "runtime" not in schema["function"]["parameters"].get("properties", {})


def test_reply_returns_native_tool_calls() -> None:
    call = ToolCall(name="lookup_order", args={"order_id": "KF101170"}, id="c1", type="tool_call")
    model = ScriptedChatModel([reply("", tool_calls=[call])])
    message = LlmGateway(model).reply(MESSAGES, tools=[lookup_order])
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("lookup_order", {"order_id": "KF101170"})]


# ------------------------------------------------------------------------------------- make_chat_model


def test_make_chat_model_builds_a_deterministic_client_without_retries(settings: Settings) -> None:
    model = make_chat_model(settings, "http://127.0.0.1:18080/v1")
    assert isinstance(model, ChatOpenAI)
    assert model.max_retries == 0
    assert model.temperature == 0.0
    assert model.openai_api_base == "http://127.0.0.1:18080/v1"
    assert model.model_name == settings.llm_model
    assert model.request_timeout == settings.llm_timeout_s


def test_make_chat_model_uses_the_given_base_url(settings: Settings) -> None:
    a = make_chat_model(settings, "http://a.invalid/v1")
    b = make_chat_model(settings, "http://b.invalid/v1")
    assert (a.openai_api_base, b.openai_api_base) == ("http://a.invalid/v1", "http://b.invalid/v1")


def test_the_boundary_masks_personal_data_a_node_forgot_to_redact() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    from agent.pii import PiiRedactor

    model = ScriptedChatModel([reply("ok")])
    gateway = LlmGateway(model, redactor=PiiRedactor())
    gateway.reply(
        [SystemMessage("Facts: customer email jane.doe@example.org"), HumanMessage("请打我电话13812345678，谢谢")]
    )
    sent = model.calls[0].text
    assert "13812345678" not in sent and "jane.doe@example.org" not in sent
    assert "<CN_MOBILE>" in sent and "<EMAIL_ADDRESS>" in sent
    assert gateway.pii_blocked == 2


def test_the_boundary_lets_placeholders_and_order_numbers_through() -> None:
    from langchain_core.messages import HumanMessage

    from agent.pii import PiiRedactor

    model = ScriptedChatModel([reply("ok")])
    gateway = LlmGateway(model, redactor=PiiRedactor())
    gateway.reply([HumanMessage("call <CN_MOBILE_1> about order KF100234, ¥1299.00")])
    assert "<CN_MOBILE_1> about order KF100234, ¥1299.00" in model.calls[0].text
    assert gateway.pii_blocked == 0


def test_the_boundary_masks_tool_call_arguments_and_structured_content() -> None:
    from langchain_core.messages import HumanMessage, ToolCall

    from agent.pii import PiiRedactor

    model = ScriptedChatModel([reply("ok")])
    gateway = LlmGateway(model, redactor=PiiRedactor())
    forgetful = AIMessage("", tool_calls=[ToolCall(name="update_contact", args={"phone": "13812345678"}, id="c1")])
    blocks = HumanMessage(content=[{"type": "text", "text": "mail me at jane.doe@example.org"}])
    gateway.reply([forgetful, blocks])
    sent_calls = model.calls[0].messages[0].tool_calls  # type: ignore[attr-defined]
    assert sent_calls[0]["args"] == {"phone": "<CN_MOBILE>"}
    assert model.calls[0].messages[1].content == [{"type": "text", "text": "mail me at <EMAIL_ADDRESS>"}]
    assert gateway.pii_blocked == 2
