"""The two-stage decision routes by the policy's thresholds."""

from __future__ import annotations

import httpx
import openai
import pytest

from agent.intent_engine import IntentEngine
from agent.llm import LlmGateway
from agent.machine import Intent
from agent.policy import Policy
from core.types import Lang
from tests.fakes import ScriptedChatModel, ScriptedIntents, intent

POLICY = Policy()  # accept 0.80, gap 0.30, unsure_below 0.45


def engine(
    ranking: list[tuple[str, float]], steps: list[object] | None = None
) -> tuple[IntentEngine, ScriptedChatModel]:
    model = ScriptedChatModel(steps or [])
    return IntentEngine(ScriptedIntents({}, default=ranking), LlmGateway(model), POLICY), model


def test_high_and_clear_is_accepted_without_the_llm() -> None:
    subject, model = engine([("order_status", 0.92), ("shipping_delivery", 0.05), ("chitchat", 0.03)])
    reading = subject.read("where is my order", Lang.EN)
    assert (reading.intent, reading.stage, reading.sure, reading.llm_calls) == (
        Intent.ORDER_STATUS,
        "classifier",
        True,
        0,
    )
    assert reading.confidence == pytest.approx(0.92)
    assert model.calls == []


def test_high_but_close_runner_up_goes_to_the_llm() -> None:
    subject, model = engine(
        [("order_status", 0.82), ("shipping_delivery", 0.60), ("chitchat", 0.01)], [intent("shipping_delivery", 0.9)]
    )
    reading = subject.read("when does it come", Lang.EN)
    assert reading.stage == "llm" and reading.intent is Intent.SHIPPING_DELIVERY
    assert reading.confidence == pytest.approx((0.60 / 1.43 + 0.9) / 2, abs=1e-3)
    options = model.calls[0].kwargs["response_format"]["json_schema"]["schema"]["properties"]["intent"]["enum"]
    assert options == ["order_status", "shipping_delivery", "chitchat"]  # the top candidates only


def test_low_after_both_stages_is_unsure() -> None:
    subject, _model = engine([("chitchat", 0.3), ("greeting", 0.28), ("out_of_scope", 0.2)], [intent("greeting", 0.3)])
    reading = subject.read("hmm", Lang.EN)
    assert reading.stage == "llm" and not reading.sure
    assert "unsure" in reading.reason


def test_dead_llm_leaves_the_classifier_reading() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    subject, _model = engine([("complaint", 0.6), ("return_refund", 0.3)], [openai.APIConnectionError(request=request)])
    reading = subject.read("the thing broke", Lang.EN)
    assert reading.stage == "classifier:llm-down" and reading.intent is Intent.COMPLAINT
    assert reading.confidence == pytest.approx(0.6) and reading.sure


def test_without_an_llm_the_classifier_decides() -> None:
    subject = IntentEngine(ScriptedIntents({}, default=[("exchange", 0.5), ("return_refund", 0.4)]), None, POLICY)
    reading = subject.read("swap it", Lang.EN)
    assert reading.stage == "classifier" and "no LLM stage" in reading.reason


def test_labels_the_dialogue_does_not_know_are_skipped() -> None:
    subject = IntentEngine(ScriptedIntents({}, default=[("refund_policy", 0.9), ("order_status", 0.1)]), None, POLICY)
    reading = subject.read("x", Lang.EN)
    assert reading.intent is Intent.ORDER_STATUS and not reading.sure
