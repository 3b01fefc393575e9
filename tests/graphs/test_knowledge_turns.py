"""Knowledge turns through the whole graph: grounded answers with sources, the not-sure path, recommendations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from core.settings import Settings
from serving.app import create_app
from serving.service import KefuService
from tests.fakes import ScriptedChatModel, ScriptedIntents, echo_facts, reply, sure

Factory = Callable[..., KefuService]

RETURNS = ScriptedIntents({"return": sure("return_refund"), "退": sure("return_refund")})


def test_a_policy_question_is_answered_from_the_documents_with_its_source(make_service: Factory) -> None:
    result = make_service(intents=RETURNS).chat("k1", "C0002", "How many days do I have to return something?")
    assert result.tools == ["search_knowledge"]
    assert result.route == "rules" and result.fallback is None
    assert result.sources and all(source["kind"] == "document" for source in result.sources)
    assert all(source["score"] >= 0.35 for source in result.sources)
    assert result.sources[0]["source"] in ("faq/faq.csv", "policies/returns-refunds.en.md")
    assert "7 days" in result.reply  # the document's own words: the no-reason return window
    assert "Source: [1]" in result.reply


def test_a_question_about_my_order_still_looks_up_the_orders(make_service: Factory) -> None:
    result = make_service(intents=RETURNS).chat("k2", "C0002", "I want to return my order")
    assert result.tools == ["list_recent_orders"]


def test_below_the_threshold_the_agent_says_it_is_not_sure_and_offers_a_human(
    make_service: Factory, tmp_path: Path
) -> None:
    strict = tmp_path / "policy.toml"
    strict.write_text("[knowledge]\nanswer_above = 0.99\n")
    service = make_service(intents=RETURNS, policy_file=strict)
    first = service.chat("k3", "C0002", "How many days do I have to return something?")
    assert first.tools == ["search_knowledge"]
    assert "not sure" in first.reply and "human" in first.reply
    assert first.sources == []
    assert first.fallback is not None and first.fallback.startswith("knowledge: best passage scored")
    second = service.chat("k3", "C0002", "yes please")
    assert second.state == "handoff" and second.tools == ["request_human"]


def test_the_llm_answer_cites_only_what_was_retrieved(make_service: Factory) -> None:
    model = ScriptedChatModel([echo_facts])
    result = make_service(model, RETURNS).chat("k4", "C0002", "How many days do I have to return something?")
    assert result.route == "llm"
    assert result.sources and {source["ref"] for source in result.sources} <= {1, 2, 3}
    passages = model.calls[0].text
    assert "[1]" in passages  # the model saw numbered passages
    assert "tools" not in model.calls[0].kwargs  # and nothing to call: the answer is in the passages


def test_an_llm_answer_citing_a_passage_that_was_not_retrieved_is_replaced(make_service: Factory) -> None:
    model = ScriptedChatModel([reply("You can return items within the window [7].")])
    result = make_service(model, RETURNS).chat("k5", "C0002", "How many days do I have to return something?")
    assert result.route == "rules"
    assert result.fallback is not None and "cites [7]" in result.fallback
    assert "[7]" not in result.reply


def test_an_llm_answer_with_an_invented_number_is_replaced(make_service: Factory) -> None:
    model = ScriptedChatModel([reply("You have 93 days to return anything [1].")])
    result = make_service(model, RETURNS).chat("k6", "C0002", "How many days do I have to return something?")
    assert result.route == "rules"
    assert result.fallback is not None and "states 93" in result.fallback
    assert "93" not in result.reply


def test_a_recommendation_comes_from_the_graph_with_its_reason(make_service: Factory) -> None:
    intents = ScriptedIntents({"猫": sure("product_recommendation")})
    result = make_service(intents=intents).chat("k7", "C0002", "家里有猫，掉毛严重，有什么推荐吗")
    assert result.tools == ["recommend_products"]
    assert result.state == "recommend"
    assert "Nestia X1" in result.reply and "理由" in result.reply and "←" in result.reply
    graph_sources = [source for source in result.sources if source["kind"] == "graph"]
    assert graph_sources and graph_sources[0]["id"].startswith("graph:")
    assert all("<" not in source["title"] for source in graph_sources)  # graph words are nobody's PII


def test_products_the_customer_owns_are_not_recommended_again(make_service: Factory) -> None:
    intents = ScriptedIntents({"猫": sure("product_recommendation")})
    result = make_service(intents=intents).chat("k9", "C0001", "家里有猫，掉毛严重，有什么推荐吗")  # 王芳 bought an X1
    assert result.tools == ["recommend_products"]
    assert "Nestia X1" not in result.reply


def test_two_named_products_are_compared(make_service: Factory) -> None:
    intents = ScriptedIntents({"air pro": sure("product_inquiry")})
    result = make_service(intents=intents).chat(
        "k8",
        "C0002",
        "What's the difference between the Lumo Air Pro ANC Earbuds and the Lumo Studio Over-Ear ANC Headphones?",
    )
    assert result.tools == ["compare_products"]
    assert "Lumo Air Pro" in result.reply and "Lumo Studio" in result.reply and " | " in result.reply


def test_next_best_action_api(settings: Settings, intent_model: object, api_key: str) -> None:
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as client:
        needed = client.post(
            "/v1/insights/next-best-action",
            json={"customer_id": "C0002", "context": "I have a cat that sheds everywhere"},
        )
        plain = client.post("/v1/insights/next-best-action", json={"customer_id": "C0001"})
        unknown = client.post("/v1/insights/next-best-action", json={"customer_id": "C9999"})
        malformed = client.post("/v1/insights/next-best-action", json={"context": "x"})
    assert needed.status_code == 200, needed.text
    body = needed.json()
    assert set(body) == {"customer_id", "action", "product_id", "confidence", "rationale", "drivers", "scores"}
    assert 0.0 <= body["confidence"] <= 1.0 and body["rationale"]
    assert plain.status_code == 200 and plain.json()["action"] in {
        "resolve_open_ticket",
        "recommend_accessory",
        "retention_offer",
        "none",
    }
    assert unknown.status_code == 404
    assert malformed.status_code == 422


def test_products_named_by_the_start_of_their_names_are_compared_in_chinese(make_service: Factory) -> None:
    intents = ScriptedIntents({"哪个好": sure("product_inquiry")})
    result = make_service(intents=intents).chat("k10", "C0001", "Lumo Air Pro 和 Lumo Studio 哪个好？")
    assert result.tools == ["compare_products"]
    assert "对比" in result.reply and "Lumo Air Pro 主动降噪真无线耳机" in result.reply
