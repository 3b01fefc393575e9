"""Segments as dialogue conditions, and experiment variants, through the whole graph with a scripted model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from langchain_core.messages import AIMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from agent.intent_engine import IntentEngine
from agent.llm import LlmGateway
from agent.pii import PiiRedactor
from agent.policy import Policy
from core.context import SupportContext
from core.db import make_engine
from core.errors import ConfigError
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId, CustomerInsight, Prediction, Tier
from core.vault import PiiVault, generate_key
from graphs import AgentDeps, build_graph
from insights.experiments import Experiments
from prompts import load_prompt
from tests.fakes import ScriptedChatModel, ScriptedIntents, echo_facts, lost, sure
from tools import ToolRegistry

COMPLAINT = "I want to file a complaint, the delivery driver was rude"
RULES = {
    "complaint": sure("complaint"),
    "bye": sure("goodbye"),
    "status": sure("order_status"),
    "where": [("order_status", 0.6), ("shipping_delivery", 0.3), ("chitchat", 0.1)],
}
EXPERIMENTS = Experiments.parse(
    {
        "experiments": {
            "trial": {
                "variants": {
                    "standard": {},
                    "concise": {"respond_prompt": "respond.concise"},
                    "strict": {"policy": {"unsure_below": 0.7, "clarify_limit": 1}},
                    "no_offers": {"policy": {"offers": False}},
                }
            }
        }
    },
    "test-experiments.toml",
)


@dataclass
class Env:
    store: SqlStore
    vault: PiiVault
    redactor: PiiRedactor


@pytest.fixture(scope="module")
def env(make_database_url: Callable[..., str]) -> Iterator[Env]:
    engine = make_engine(make_database_url(seeded=True))
    yield Env(SqlStore(engine), PiiVault(engine, [generate_key()], timedelta(days=30)), PiiRedactor(taggers=()))
    engine.dispose()


_conversations = count()


class Chat:
    """One graph and one conversation with it, as one customer."""

    def __init__(self, env: Env, model: ScriptedChatModel | None = None, experiments: Experiments | None = None):
        policy = Policy.load()
        gateway = LlmGateway(model, 15.0, env.redactor) if model is not None else None
        deps = AgentDeps(
            llm=gateway,
            intents=IntentEngine(ScriptedIntents(RULES, default=lost()), gateway, policy),
            redactor=env.redactor,
            tools=ToolRegistry(),
            experiments=experiments or EXPERIMENTS,
        )
        self.env, self.graph = env, build_graph(deps, InMemorySaver())
        self.thread = f"seg-{next(_conversations)}"

    def say(
        self, text: str, customer: str, insight: CustomerInsight | None = None, variant: str | None = None
    ) -> dict[str, Any]:
        context = SupportContext(
            CustomerId(customer),
            ConversationId(self.thread),
            Channel.WEB,
            self.env.store,
            vault=self.env.vault,
            insight=insight,
            variant=variant,
        )
        config: Any = {"configurable": {"thread_id": self.thread}}
        state: dict[str, Any] = self.graph.invoke({"inbound": text, "customer_id": customer}, config, context=context)
        return state


def insight_of(customer: str, segment: str | None, churn: float | None = None) -> CustomerInsight:
    prediction = (
        None if churn is None else Prediction(target="churn_30d", score=churn, contributions=[], model_version="t")
    )
    return CustomerInsight(
        customer_id=CustomerId(customer), at=datetime(2026, 11, 1, 12), features={}, rfm="R3F3M3", segment=segment,
        churn=prediction, repurchase=None,
    )  # fmt: skip


def reply(state: dict[str, Any]) -> AIMessage:
    message = state["messages"][-1]
    assert isinstance(message, AIMessage)
    return message


RECOVERY_EN = Policy.load().offers.rules[0].say_en


def standard_customer(store: SqlStore) -> str:
    for number in range(3, 221):
        customer = store.get_customer(CustomerId(f"C{number:04d}"))
        if customer is not None and customer.tier is Tier.STANDARD and customer.lang.value == "en":
            return customer.id
    raise AssertionError("the demo store has no standard-tier English customer")


def test_a_top_segment_complaint_gets_the_recovery_offer_once(env: Env) -> None:
    chat = Chat(env)
    first = chat.say(COMPLAINT, "C0002", insight_of("C0002", "champions"))
    assert reply(first).text.endswith("\n\n" + RECOVERY_EN)
    assert reply(first).response_metadata["offer"] == "vip_recovery"
    assert "ticket" in reply(first).text.lower()  # the templated answer is still there, before the offer
    # The reason the audit records for the turn (TurnAuditRow.decision) names the rule and why it fired.
    assert first["reason"].endswith("; offer vip_recovery (segment champions; intent complaint)")
    second = chat.say(COMPLAINT + " and nobody called me back", "C0002", insight_of("C0002", "champions"))
    assert RECOVERY_EN not in reply(second).text
    assert "offer" not in second["reason"]


def test_a_vip_tier_gets_it_in_chinese_whatever_the_segment(env: Env) -> None:
    state = Chat(env).say("我要投诉 complaint，快递员态度太差", "C0001", insight_of("C0001", "hibernating"))
    assert reply(state).text.endswith(Policy.load().offers.rules[0].say_zh)
    assert "offer vip_recovery (tier vip; intent complaint)" in state["reason"]


def test_a_standard_customer_gets_no_offer(env: Env) -> None:
    customer = standard_customer(env.store)
    state = Chat(env).say(COMPLAINT, customer, insight_of(customer, "regulars"))
    assert RECOVERY_EN not in reply(state).text
    assert "offer" not in state["reason"] and "offer" not in reply(state).response_metadata


def test_without_insights_no_condition_fires(env: Env) -> None:
    state = Chat(env).say(COMPLAINT, "C0001")  # a VIP, but the context carries no insight
    assert "offer" not in state["reason"]
    assert "offer" not in reply(state).response_metadata


def test_another_customers_insight_is_ignored(env: Env) -> None:
    customer = standard_customer(env.store)
    state = Chat(env).say(COMPLAINT, customer, insight_of("C0001", "champions"))
    assert "offer" not in state["reason"]


def test_a_likely_churner_saying_goodbye_gets_the_retention_line(env: Env) -> None:
    customer = standard_customer(env.store)
    state = Chat(env).say("ok bye, thanks", customer, insight_of(customer, "at_risk", churn=0.93))
    assert "ships free" in reply(state).text
    assert "offer retention_goodbye (churn 0.93 >= 0.9; intent goodbye)" in state["reason"]
    calm = Chat(env).say("ok bye, thanks", customer, insight_of(customer, "at_risk", churn=0.2))
    assert "ships free" not in reply(calm).text


def test_a_variant_can_switch_the_offers_off(env: Env) -> None:
    state = Chat(env).say(COMPLAINT, "C0002", insight_of("C0002", "champions"), variant="trial:no_offers")
    assert RECOVERY_EN not in reply(state).text


def test_the_variant_changes_the_system_prompt(env: Env) -> None:
    prompts = []
    for variant in ("trial:standard", "trial:concise", None):
        model = ScriptedChatModel([echo_facts])
        state = Chat(env, model).say("status of my orders please", "C0002", variant=variant)
        assert state["route"] == "llm"
        model.assert_complete()
        (call,) = model.calls
        assert isinstance(call.messages[0], SystemMessage)
        prompts.append(call.messages[0].text)
    assert prompts[0] == prompts[2] == load_prompt("respond", "en")
    assert prompts[1] == load_prompt("respond.concise", "en") != prompts[0]


def test_a_policy_override_changes_the_routing(env: Env) -> None:
    # The classifier reads 0.60: sure under the shipped unsure_below 0.45, unsure under the variant's 0.70.
    default = Chat(env).say("where is my parcel", "C0002", variant="trial:standard")
    strict = Chat(env).say("where is my parcel", "C0002", variant="trial:strict")
    assert (default["sure"], default["dialogue_state"]) == (True, "answer")
    assert [m.name for m in default["messages"] if m.type == "tool"] == ["list_recent_orders"]
    assert (strict["sure"], strict["dialogue_state"]) == (False, "need_confirm")
    assert "unsure_below 0.7: unsure" in strict["reason"]
    assert not [m for m in strict["messages"] if m.type == "tool"]


def test_a_clarify_limit_override_offers_a_human_sooner(env: Env) -> None:
    default, strict = Chat(env), Chat(env)
    assert not default.say("hmm", "C0002", variant="trial:standard")["offered_human"]
    assert strict.say("hmm", "C0002", variant="trial:strict")["offered_human"]


def test_an_unknown_variant_label_runs_the_default(env: Env) -> None:
    state = Chat(env).say("where is my parcel", "C0002", variant="gone:away")
    assert state["sure"] and state["dialogue_state"] == "answer"


def test_a_variant_the_policy_refuses_stops_the_build(env: Env) -> None:
    bad = Experiments.parse(
        {"experiments": {"t": {"variants": {"a": {}, "b": {"policy": {"unsure_below": 0.95}}}}}}, "bad.toml"
    )
    with pytest.raises(ConfigError, match=r"experiments file bad.toml: variant t:b policy: .*unsure_below"):
        Chat(env, experiments=bad)
    typo = Experiments.parse({"experiments": {"t": {"variants": {"a": {}, "b": {"policy": {"clarfy": 1}}}}}}, "x")
    with pytest.raises(ConfigError, match=r"variant t:b policy: policy: unknown keys \['clarfy'\]"):
        Chat(env, experiments=typo)
