"""The τ²-bench retail adapter on a hand-made mini database: loading, tools, replay, scoring, the loop.

Nothing here reads /work/shared: ``tests/evals/data/tau2_mini`` holds a five-order database and
three tasks in τ²'s format. Models are replaced at the HTTP boundary: a scripted OpenAI-compatible
endpoint plays the customer, and ``FakeLlm`` (steered to make one tool call) plays Kefu's model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agent.intents import IntentModel
from core.db import CustomerRow, OrderRow, make_engine
from core.store import SqlStore
from core.types import OrderId
from evals.fake_llm import FakeLlm
from evals.tau2.agent import AgentTurn, KefuTau2Agent
from evals.tau2.db import (
    GUEST_CUSTOMER_ID,
    Record,
    Tau2SessionRow,
    authenticated_user,
    dump_state,
    install,
    load_source,
    state_hash,
)
from evals.tau2.retail import TOOL_NAMES, RetailOps
from evals.tau2.run import SuiteResult, results_json, run_suite, run_trial
from evals.tau2.score import Tau2Task, load_tasks, missing_info, reference_hash
from evals.tau2.tools import TAU2_TOOLS, tau2_registry
from evals.tau2.user import UserSimulator, format_scenario
from tests.fakes import loopback_only
from tools import PII_ARGS, ToolError

DATA = Path(__file__).parent / "data" / "tau2_mini"


@pytest.fixture(scope="module")
def source() -> Record:
    return load_source(DATA / "db.json")


@pytest.fixture(scope="module")
def tasks() -> list[Tau2Task]:
    return load_tasks(DATA / "tasks.jsonl")


@pytest.fixture
def engine(tmp_path: Path, source: Record) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    install(engine, source)
    yield engine
    engine.dispose()


# -- loading -------------------------------------------------------------------------------------


def test_loading_round_trips_and_mirrors_users_orders_products_into_kefu(engine: Engine, source: Record) -> None:
    assert dump_state(engine) == source
    assert state_hash(dump_state(engine)) == state_hash(source)

    store = SqlStore(engine)
    customer = store.get_customer(OrderId("ann_lee_1001"))  # type: ignore[arg-type]
    assert customer is not None and customer.name == "Ann Lee" and customer.city == "Boston"
    order = store.get_order(OrderId("#W0000002"))
    assert order is not None and order.customer_id == "ann_lee_1001"
    assert order.status == "delivered" and order.total == pytest.approx(80.5)
    assert [item.name_en for item in order.items] == ["T-Shirt", "Water Bottle"]
    assert store.get_order(OrderId("#W0000003")).status == "shipped"  # type: ignore[union-attr]
    assert store.get_customer(GUEST_CUSTOMER_ID) is not None  # type: ignore[arg-type]


def test_loading_again_resets_the_state(engine: Engine, source: Record) -> None:
    RetailOps(engine).cancel_pending_order("#W0000001", "no longer needed")
    assert state_hash(dump_state(engine)) != state_hash(source)
    install(engine, source)
    assert state_hash(dump_state(engine)) == state_hash(source)


# -- tools ---------------------------------------------------------------------------------------


def test_the_registry_has_tau2s_sixteen_tools_after_kefus() -> None:
    assert [t.name for t in TAU2_TOOLS] == list(TOOL_NAMES)
    registry = tau2_registry()
    assert registry.names[-16:] == list(TOOL_NAMES) and "lookup_order" in registry
    assert tau2_registry(with_kefu_tools=False).names == list(TOOL_NAMES)
    schema = convert_to_openai_tool(registry["modify_pending_order_items"])["function"]["parameters"]
    assert set(schema["properties"]) == {"order_id", "item_ids", "new_item_ids", "payment_method_id"}
    assert registry["find_user_id_by_name_zip"].metadata == {PII_ARGS: ("first_name", "last_name", "zip")}


def test_lookups_find_users_by_email_and_by_name_and_zip(engine: Engine) -> None:
    ops = RetailOps(engine)
    assert ops.find_user_id_by_email("Ann.Lee@example.com") == "ann_lee_1001"
    assert ops.find_user_id_by_name_zip("Ann", "Lee", "02101") == "ann_lee_1001"
    # One placeholder for the whole name, restored into both arguments.
    assert ops.find_user_id_by_name_zip("Ann Lee", "Ann Lee", "02101") == "ann_lee_1001"
    with pytest.raises(ToolError, match="User not found"):
        ops.find_user_id_by_name_zip("Ann", "Lee", "99999")
    assert ops.get_item_details("2000000003")["available"] is False
    assert ops.list_all_product_types() == {"T-Shirt": "1000000001", "Water Bottle": "1000000002"}
    assert ops.calculate("(55.5 - 50) * 2") == "11.0"
    with pytest.raises(ToolError):
        ops.calculate("__import__('os')")


def test_cancel_refunds_and_credits_gift_cards_at_once(engine: Engine) -> None:
    ops = RetailOps(engine)
    order = ops.cancel_pending_order("#W0000005", "ordered by mistake")
    assert order["status"] == "cancelled" and order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"][-1] == {
        "transaction_type": "refund",
        "amount": 20.0,
        "payment_method_id": "gift_card_1",
    }
    assert ops.get_user_details("ann_lee_1001")["payment_methods"]["gift_card_1"]["balance"] == 30.0
    assert SqlStore(engine).get_order(OrderId("#W0000005")).status == "cancelled"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("cancel_pending_order", {"order_id": "#W0000003", "reason": "no longer needed"}, "Non-pending"),
        ("cancel_pending_order", {"order_id": "#W0000001", "reason": "too expensive"}, "Invalid reason"),
        (
            "return_delivered_order_items",
            {"order_id": "#W0000001", "item_ids": ["2000000001"], "payment_method_id": "credit_card_1"},
            "Non-delivered",
        ),
        (
            "return_delivered_order_items",
            {"order_id": "#W0000002", "item_ids": ["2000000002"], "payment_method_id": "credit_card_1"},
            "original payment method",
        ),
        (
            "return_delivered_order_items",
            {"order_id": "#W0000002", "item_ids": ["2000000001"], "payment_method_id": "gift_card_1"},
            "not found",
        ),
        (
            "exchange_delivered_order_items",
            {
                "order_id": "#W0000002",
                "item_ids": ["2000000002"],
                "new_item_ids": ["2000000003"],
                "payment_method_id": "gift_card_1",
            },
            "not found or available",
        ),
        (
            "exchange_delivered_order_items",
            {
                "order_id": "#W0000002",
                "item_ids": ["2000000012"],
                "new_item_ids": ["2000000001"],
                "payment_method_id": "gift_card_1",
            },
            "not found or available",
        ),
        (
            "modify_pending_order_items",
            {
                "order_id": "#W0000001",
                "item_ids": ["2000000001"],
                "new_item_ids": ["2000000002"],
                "payment_method_id": "paypal_2",
            },
            "Payment method not found",
        ),
        (
            "modify_pending_order_payment",
            {"order_id": "#W0000001", "payment_method_id": "gift_card_1"},
            "Insufficient gift card balance",
        ),
        ("modify_pending_order_payment", {"order_id": "#W0000001", "payment_method_id": "credit_card_1"}, "different"),
        (
            "modify_pending_order_address",
            {
                "order_id": "#W0000002",
                "address1": "x",
                "address2": "",
                "city": "y",
                "state": "z",
                "country": "USA",
                "zip": "1",
            },
            "Non-pending",
        ),
    ],
)
def test_writes_refuse_and_change_nothing(engine: Engine, name: str, arguments: dict[str, Any], message: str) -> None:
    before = state_hash(dump_state(engine))
    with pytest.raises(ToolError, match=message):
        RetailOps(engine).call(name, arguments)
    assert state_hash(dump_state(engine)) == before


def test_items_can_be_modified_once_and_the_order_is_then_no_longer_pending(engine: Engine) -> None:
    ops = RetailOps(engine)
    order = ops.modify_pending_order_items("#W0000001", ["2000000011"], ["2000000012"], "gift_card_1")
    assert order["status"] == "pending (item modified)"
    assert order["items"][1]["item_id"] == "2000000012" and order["items"][1]["price"] == 25.0
    assert order["payment_history"][-1] == {
        "transaction_type": "payment",
        "amount": 5.0,
        "payment_method_id": "gift_card_1",
    }
    assert ops.get_user_details("ann_lee_1001")["payment_methods"]["gift_card_1"]["balance"] == 5.0
    with pytest.raises(ToolError, match="Non-pending"):
        ops.modify_pending_order_items("#W0000001", ["2000000001"], ["2000000002"], "credit_card_1")
    with pytest.raises(ToolError, match="Non-pending"):
        ops.cancel_pending_order("#W0000001", "no longer needed")
    kefu = SqlStore(engine).get_order(OrderId("#W0000001"))
    assert kefu is not None and kefu.total == pytest.approx(75.0)


def test_exchange_return_payment_and_address_changes(engine: Engine) -> None:
    ops = RetailOps(engine)
    exchanged = ops.exchange_delivered_order_items("#W0000002", ["2000000002"], ["2000000001"], "gift_card_1")
    assert exchanged["status"] == "exchange requested" and exchanged["exchange_price_difference"] == -5.5
    with pytest.raises(ToolError, match="Non-delivered"):
        ops.exchange_delivered_order_items("#W0000002", ["2000000012"], ["2000000011"], "gift_card_1")
    moved = ops.modify_pending_order_payment("#W0000005", "credit_card_1")
    assert [p["transaction_type"] for p in moved["payment_history"]] == ["payment", "payment", "refund"]
    assert ops.get_user_details("ann_lee_1001")["payment_methods"]["gift_card_1"]["balance"] == 30.0
    ops.modify_user_address("ann_lee_1001", "5 Pine Road", "", "Denver", "CO", "USA", "80202")
    with Session(engine) as session:
        assert session.get(CustomerRow, "ann_lee_1001").city == "Denver"  # type: ignore[union-attr]
        assert session.get(OrderRow, "#W0000002").status == "return_requested"  # type: ignore[union-attr]


# -- replay and scoring ---------------------------------------------------------------------------


def test_replay_changes_the_hash_and_any_path_to_the_same_end_state_matches(
    engine: Engine, source: Record, tasks: list[Tau2Task]
) -> None:
    gold, errors = reference_hash(source, tasks[0].actions)
    assert errors == [] and gold != state_hash(source)
    ops = RetailOps(engine)
    ops.get_user_details("ann_lee_1001")  # extra reads and a refused write change nothing
    with pytest.raises(ToolError):
        ops.cancel_pending_order("#W0000001", "changed my mind")
    ops.cancel_pending_order("#W0000001", "no longer needed")
    assert state_hash(dump_state(engine)) == gold
    other, _ = reference_hash(source, tasks[2].actions)
    assert other not in (gold, state_hash(source))


def test_communicate_check_ignores_case_and_thousands_separators() -> None:
    assert missing_info(["70", "Ann"], ["Refunded $70 to ANN."]) == []
    assert missing_info(["1234.5"], ["That is $1,234.50"]) == []
    assert missing_info(["5.5"], ["the difference is 5 dollars"]) == ["5.5"]


# -- the conversation loop ------------------------------------------------------------------------


@dataclass
class ScriptedEndpoint:
    """An OpenAI-compatible chat endpoint answering with the next scripted customer line."""

    lines: list[str]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
                text = endpoint.lines[turn] if turn < len(endpoint.lines) else "###STOP###"
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ScriptedAgent:
    """An agent whose turns are fixed: tool calls through ``RetailOps``, then a reply."""

    engine: Engine
    steps: list[tuple[list[tuple[str, dict[str, Any]]], str]]
    name: str = "scripted"

    def respond(self, conversation_id: str, text: str) -> AgentTurn:
        calls, reply = self.steps.pop(0)
        for tool_name, arguments in calls:
            RetailOps(self.engine).call(tool_name, arguments)
        return AgentTurn(reply, [tool_name for tool_name, _ in calls])


CUSTOMER = ["Hi, please cancel my pending order. My e-mail is ann.lee@example.com.", "Yes, no longer needed."]


@pytest.fixture
def customer() -> Iterator[ScriptedEndpoint]:
    endpoint = ScriptedEndpoint(list(CUSTOMER))
    yield endpoint
    endpoint.close()


def test_a_correct_trajectory_scores_1(
    engine: Engine, source: Record, tasks: list[Tau2Task], customer: ScriptedEndpoint
) -> None:
    task = tasks[0]
    gold, _ = reference_hash(source, task.actions)
    agent = ScriptedAgent(
        engine,
        [
            ([("find_user_id_by_email", {"email": "ann.lee@example.com"})], "Order #W0000001 (70.00). Cancel it?"),
            (
                [("cancel_pending_order", {"order_id": "#W0000001", "reason": "no longer needed"})],
                "Done: $70 refunded.",
            ),
        ],
    )
    result = run_trial(agent, UserSimulator(customer.base_url), task, source, gold, max_turns=5)

    assert result.termination == "user_stop" and result.turns == 3
    assert result.score.reward == 1.0 and result.score.db_match and result.score.communicate
    assert result.score.nl_judged is False and result.score.nl_assertions is None
    system = customer.requests[0]["messages"][0]["content"]
    assert "You no longer need your pending order" in system and "ann.lee@example.com" in system
    # The simulator sees the agent as "user" and itself as "assistant", as in τ².
    assert [m["role"] for m in customer.requests[1]["messages"]] == ["system", "user", "assistant", "user"]


def test_a_wrong_trajectory_and_running_out_of_turns_score_0(
    engine: Engine, source: Record, tasks: list[Tau2Task], customer: ScriptedEndpoint
) -> None:
    task = tasks[0]
    gold, _ = reference_hash(source, task.actions)
    wrong = ScriptedAgent(
        engine,
        [
            ([], "Which order?"),
            ([("cancel_pending_order", {"order_id": "#W0000001", "reason": "ordered by mistake"})], "Cancelled."),
        ],
    )
    result = run_trial(wrong, UserSimulator(customer.base_url), task, source, gold, max_turns=5)
    assert result.termination == "user_stop" and result.score.reward == 0.0
    assert result.score.db_match is False and result.score.missing == ["70"]

    right_but_slow = ScriptedAgent(engine, [([], "Hello?")])
    cut = run_trial(right_but_slow, UserSimulator(customer.base_url), task, source, gold, max_turns=1)
    assert cut.termination == "max_turns" and cut.score.reward == 0.0
    assert cut.score.failures[0] == "termination: max_turns"


def test_the_suite_reports_pass_hat_k(engine: Engine, source: Record, tasks: list[Tau2Task]) -> None:
    endpoint = ScriptedEndpoint(["I want to return something.", "###STOP###"])
    try:
        agent = ScriptedAgent(engine, [([], "Sorry, I cannot help.")] * 4)
        result = run_suite(agent, UserSimulator(endpoint.base_url), tasks[1:3], source, k=2, max_turns=3)
    finally:
        endpoint.close()
    assert isinstance(result, SuiteResult)
    payload = results_json(result, model="scripted", llm="none", command="test")
    assert payload["suite"] == "tau2-retail" and payload["tasks"] == 2 and payload["k"] == 2
    assert payload["pass_hat_k"] == {"1": 0.0, "2": 0.0} and payload["db_match_rate"] == 0.0
    assert [r["id"] for r in payload["results"]] == ["tau2-mini:1", "tau2-mini:2"]
    assert all(len(r["rewards"]) == 2 for r in payload["results"])
    assert payload["machine"]["cores"]


def test_format_scenario_lists_the_instruction_fields(tasks: list[Tau2Task]) -> None:
    text = format_scenario(tasks[1].user_scenario)
    assert text.splitlines()[0].startswith("Reason for the call: You want to return the water bottle")
    assert "What you know: You are Ann Lee, zip code 02101." in text


# -- Kefu's graph ---------------------------------------------------------------------------------


class Tau2FakeLlm(FakeLlm):
    """``FakeLlm`` that picks ``order_status`` when asked for an intent and, when offered the τ² tools,
    calls ``find_user_id_by_email`` with the e-mail placeholder of the customer's message."""

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "") or ""
        placeholder = next((w.strip(".,") for w in str(last).split() if w.startswith("<EMAIL_ADDRESS_")), None)
        if "find_user_id_by_email" in tools and placeholder:
            call = {"name": "find_user_id_by_email", "arguments": json.dumps({"email": placeholder})}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": call}],
            }
            return {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "fake",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        return super().complete(body)


def test_kefu_runs_a_task_and_the_email_placeholder_reaches_the_tool_as_the_real_address(
    monkeypatch: pytest.MonkeyPatch,
    intent_model: IntentModel,
    tmp_path: Path,
    source: Record,
    tasks: list[Tau2Task],
    customer: ScriptedEndpoint,
) -> None:
    monkeypatch.setattr(ChatOpenAI, "_generate", loopback_only)
    with Tau2FakeLlm(tool_every=0, foreign_every=0) as fake:
        intent_model.save(tmp_path / "intents")  # the session's trained classifier, not a new one
        intents = tmp_path / "intents"
        agent = KefuTau2Agent.open(
            tmp_path / "var", llm_base_url=fake.base_url, policy=DATA / "policy.md", intent_model_dir=intents
        )
        task = tasks[0]
        gold, _ = reference_hash(source, task.actions)
        result = run_trial(agent, UserSimulator(customer.base_url), task, source, gold, max_turns=4)

        sent = json.dumps([r.body for r in fake.requests])
    assert "ann.lee@example.com" not in sent  # the model only ever saw the placeholder
    assert result.termination == "user_stop" and result.turns == 3
    assert "find_user_id_by_email" in result.tools
    # The tool received the real address: the conversation is authenticated as Ann.
    with Session(agent.engine) as session:
        rows = session.query(Tau2SessionRow).all()
    assert [row.user_id for row in rows] == ["ann_lee_1001"]
    assert authenticated_user(agent.engine, rows[0].conversation_id) == "ann_lee_1001"
    assert result.score.db_match is False and result.score.reward == 0.0  # nothing was cancelled
    assert len(result.transcript) == 6 and all(m["content"] for m in result.transcript)
