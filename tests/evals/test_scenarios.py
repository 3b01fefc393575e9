"""The scenario suite: its files validate and cover the agent, its checks say why, and a run is well formed.

The end-to-end run starts ``kefu serve`` once for the module against the deterministic ``FakeLlm``
(over real HTTP on 127.0.0.1) and runs a few scenarios twice each.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.orm import Session

from agent.machine import DialogueMachine
from core.db import CustomerRow, make_engine
from core.seed import seed
from evals.fake_llm import FakeLlm
from evals.harness import KefuServer
from evals.scenario_runner import (
    DEFAULT_DIR,
    STATE_NAMES,
    TOOL_NAMES,
    CheckOptions,
    KefuTarget,
    LlmJudge,
    Scenario,
    ScenarioError,
    StoreSnapshot,
    SuiteResult,
    TurnExpectation,
    check_db,
    check_scenario,
    check_turn,
    coverage,
    load_scenarios,
    main,
    run_suite,
    select_scenarios,
)
from evals.targets import TurnObservation
from tools.registry import BUILTIN_TOOLS

# ------------------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def suite() -> list[Scenario]:
    """Every shipped scenario."""
    return load_scenarios([DEFAULT_DIR])


def test_every_file_loads_with_at_least_80_scenarios_in_both_languages(suite: list[Scenario]) -> None:
    langs = Counter(s.lang for s in suite)
    assert len(suite) >= 80
    assert min(langs["zh"], langs["en"]) >= 0.4 * len(suite), langs
    for file in DEFAULT_DIR.glob("*.yaml"):
        categories = {s.category for s in suite if s.source == file.name}
        assert categories == {file.stem}, f"{file.name} holds categories {categories}"


def test_every_builtin_tool_and_every_machine_state_is_expected_somewhere(suite: list[Scenario]) -> None:
    assert {tool.name for tool in BUILTIN_TOOLS} == TOOL_NAMES
    assert {state.id for state in DialogueMachine.states} == STATE_NAMES
    assert coverage(suite) == (set(), set())
    assert coverage(suite[:3]) != (set(), set())


def test_each_category_has_both_languages(suite: list[Scenario]) -> None:
    by_category: dict[str, set[str]] = {}
    for scenario in suite:
        by_category.setdefault(scenario.category, set()).add(scenario.lang)
    assert all(langs == {"zh", "en"} for langs in by_category.values()), by_category


_GOOD: dict[str, Any] = {
    "id": "t-1",
    "lang": "en",
    "category": "orders",
    "customer": "C0002",
    "description": "A valid scenario.",
    "turns": [{"user": "Where is KF101175?", "expect": {"tools": ["lookup_order"], "state": "answer"}}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "colour"),
        ({"turns": [{"user": "hi", "expect": {"tools": ["refund_everything"]}}]}, "unknown tool 'refund_everything'"),
        ({"turns": [{"user": "hi", "expect": {"state": "limbo"}}]}, "unknown state 'limbo'"),
        ({"expect": {"states": ["welcome", "paradise"]}}, "unknown state 'paradise'"),
        ({"customer": "C9999"}, "unknown customer 'C9999'"),
        ({"lang": "fr"}, "lang"),
        ({"turns": []}, "turns"),
        ({"expect": {"db": {"tickets": [{"kind": "refund"}]}}}, "unknown ticket kind 'refund'"),
        ({"turns": [{"user": "hi", "expect": {"must_include": [{"one_of": ["a"]}]}}]}, "must_include"),
    ],
)
def test_a_broken_scenario_is_refused_naming_file_and_id(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text(yaml.safe_dump([_GOOD | {"id": "good-one"}, _GOOD | change], allow_unicode=True))
    with pytest.raises(ScenarioError) as raised:
        load_scenarios([tmp_path])
    assert str(file) in str(raised.value)
    assert "scenario t-1" in str(raised.value)
    assert message in str(raised.value)


def test_duplicate_ids_and_non_list_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump([_GOOD]))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump([_GOOD]))
    with pytest.raises(ScenarioError, match=r"b\.yaml: scenario t-1: id already used in .*a\.yaml"):
        load_scenarios([tmp_path])
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(_GOOD))
    with pytest.raises(ScenarioError, match=r"b\.yaml: expected a list of scenarios"):
        load_scenarios([tmp_path])


def test_only_and_limit_select_by_id_or_category(suite: list[Scenario]) -> None:
    handoffs = select_scenarios(suite, ["handoff_emotion"], None)
    assert handoffs and {s.category for s in handoffs} == {"handoff_emotion"}
    assert [s.id for s in select_scenarios(suite, ["orders-zh-*"], 2)] == [
        s.id for s in suite if s.id.startswith("orders-zh-")
    ][:2]


# ----------------------------------------------------------------------------------------- checks


def _observed(reply: str = "Order KF101175 is shipped.", **kwargs: Any) -> TurnObservation:
    defaults: dict[str, Any] = {"tools": ["lookup_order"], "state": "answer", "route": "llm"}
    return TurnObservation(reply=reply, **(defaults | kwargs))


def test_check_turn_names_a_missing_tool_a_forbidden_phrase_and_a_wrong_state() -> None:
    expect = TurnExpectation.model_validate(
        {
            "tools": ["lookup_order", "open_ticket"],
            "no_tools": ["request_human"],
            "state": "handoff",
            "must_include": ["KF101175", {"any_of": ["SF Express", "JD Logistics"]}],
            "must_not_include": ["SHIPPED"],
        }
    )
    reasons = check_turn(expect, _observed(tools=["lookup_order", "request_human"]))
    assert "expected tool(s) open_ticket not called (called: [lookup_order, request_human])" in reasons
    assert "forbidden tool(s) called: request_human" in reasons
    assert "expected state handoff, got answer" in reasons
    assert "reply lacks 'SF Express' | 'JD Logistics'" in reasons
    assert "reply contains forbidden 'SHIPPED'" in reasons  # phrases are case-insensitive
    assert len(reasons) == 5


def test_check_turn_passes_a_matching_turn_and_skips_states_for_targets_without_a_machine() -> None:
    expect = TurnExpectation.model_validate(
        {"tools_exact": ["lookup_order"], "state": "need_confirm", "route": "rules", "must_include": ["kf101175"]}
    )
    observed = _observed()
    assert check_turn(expect, observed) == ["expected state need_confirm, got answer", "expected route rules, got llm"]
    relaxed = CheckOptions(check_states=False, check_routes=False)
    assert check_turn(expect, observed, options=relaxed) == []
    assert "states" not in relaxed.applied() and "tools" in relaxed.applied()
    assert check_turn(expect, TurnObservation(reply="", error="HTTP 500")) == ["target error: HTTP 500"]
    assert check_turn(TurnExpectation(no_tools=True), observed) == ["forbidden tool(s) called: lookup_order"]
    assert check_turn(TurnExpectation(handoff=True), observed) == ["expected a handoff to a human"]


def _snapshot(**kwargs: Any) -> StoreSnapshot:
    base: dict[str, Any] = {
        "contact": {"phone": "13812345678", "email": "fang.wang@example.cn"},
        "orders": {"KF101182": "paid"},
        "tickets": [],
        "handoffs": 0,
    }
    return StoreSnapshot(**(base | kwargs))


def test_check_db_reports_effects_that_did_not_happen_and_ones_that_should_not_have() -> None:
    scenario = Scenario.model_validate(
        _GOOD
        | {
            "expect": {
                "db": {
                    "tickets": [{"kind": "return", "subject_includes": "KF100881"}],
                    "forbid_tickets": ["complaint"],
                    "handoff": True,
                    "contact": {"phone": "13900112233"},
                    "orders_unchanged": True,
                }
            }
        }
    )
    assert scenario.expect.db is not None
    before = _snapshot()
    after = _snapshot(
        tickets=[{"id": 7, "kind": "complaint", "subject": "Box damaged"}],
        orders={"KF101182": "cancelled"},
    )
    reasons = check_db(scenario.expect.db, before, after)
    assert reasons == [
        "db: no return ticket about 'KF100881' opened (opened: complaint: 'Box damaged')",
        "db: unexpected complaint ticket opened: 'Box damaged'",
        "db: no handoff queued",
        "db: phone is '13812345678', expected '13900112233'",
        "db: order status changed: KF101182",
    ]
    done = _snapshot(
        contact={"phone": "13900112233", "email": "fang.wang@example.cn"},
        tickets=[{"id": 8, "kind": "return", "subject": "Return/refund request for KF100881"}],
        handoffs=1,
    )
    assert check_db(scenario.expect.db, before, done) == []


def test_check_scenario_checks_state_order_tools_across_turns_and_missing_turns() -> None:
    scenario = Scenario.model_validate(
        _GOOD
        | {
            "turns": [{"user": "hi"}, {"user": "KF101175?"}],
            "expect": {"states": ["welcome", "need_confirm", "answer"], "tools": ["lookup_order"], "handoff": False},
        }
    )
    good = [_observed("Hello", tools=[], state="need_confirm"), _observed()]
    assert check_scenario(scenario, good) == []
    backwards = [_observed("Hello", tools=[], state="answer"), _observed(tools=[], state="need_confirm")]
    reasons = check_scenario(scenario, backwards)
    assert "expected tool(s) lookup_order in no turn" in reasons
    assert any(r.startswith("states welcome → need_confirm → answer not visited in order") for r in reasons)
    assert check_scenario(scenario, backwards, options=CheckOptions(check_states=False)) == [
        "expected tool(s) lookup_order in no turn"
    ]
    cut_short = check_scenario(scenario, good[:1])
    assert cut_short[:2] == ["only 1 of 2 turns were run", "expected tool(s) lookup_order in no turn"]
    with_db = Scenario.model_validate(_GOOD | {"expect": {"db": {"contact_unchanged": True}}})
    assert check_scenario(with_db, good[1:]) == ["db: the store was not read"]


# -------------------------------------------------------------------------------------- end to end

RULES_ONLY = [
    "greet-en-hello-bye",
    "greet-zh-hello-bye",
    "greet-en-goodbye-first",
    "handoff-en-ask-human",
    "handoff-zh-ask-human",
    "handoff-zh-angry",
    "oos-en-weather",
]
"""Scenarios the intent classifier and templates answer alone: the fake model cannot change them."""
WITH_MODEL = ["orders-en-shipped-eta", "profile-en-update-email"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KefuServer]:
    """``kefu serve`` on a fresh demo store, its model the deterministic FakeLlm."""
    with FakeLlm() as fake, KefuServer(tmp_path_factory.mktemp("scenarios"), llm_base_url=fake.base_url) as running:
        yield running


def test_a_fake_llm_run_is_well_formed_and_rules_only_scenarios_pass(server: KefuServer, suite: list[Scenario]) -> None:
    chosen = [s for s in suite if s.id in RULES_ONLY + WITH_MODEL]
    assert len(chosen) == len(RULES_ONLY + WITH_MODEL)
    target = KefuTarget(server)
    seen: list[str] = []
    try:
        result = run_suite(target, chosen, 2, progress=lambda r: seen.append(r.scenario.id))
    finally:
        target.close()
    assert isinstance(result, SuiteResult)
    assert seen == [s.id for s in chosen]
    report = result.to_json(model="fake-llm", llm="fake", command="pytest")
    json.dumps(report)
    assert report["suite"] == "scenarios" and report["target"] == "kefu" and report["llm"] == "fake"
    assert report["scenarios_total"] == len(chosen) and report["k"] == 2
    assert set(report["pass_hat_k"]) == {"1", "2"}
    assert report["pass_hat_k"]["2"] <= report["pass_hat_k"]["1"]
    for group in (*report["by_category"].values(), *report["by_lang"].values()):
        assert group["pass_hat_k"]["2"] <= group["pass_hat_k"]["1"] and group["n"] >= 1
    assert report["turns"]["count"] == 2 * sum(len(s.turns) for s in chosen)
    assert 0 < report["turns"]["rules_share"] <= 1 and report["turns"]["latency_ms"]["p50"] > 0
    by_id = {r.scenario.id: r for r in result.results}
    for scenario_id in RULES_ONLY:
        trials = by_id[scenario_id].trials
        assert all(obs.route == "rules" and obs.llm_calls == 0 for t in trials for obs in t.observations), scenario_id
        assert all(t.passed for t in trials), (scenario_id, [t.reasons for t in trials])
        assert len({t.conversation_id for t in trials}) == 2
    for row in report["results"]:
        assert row["trials"] == 2 and 0 <= row["successes"] <= 2
        assert len(row["failures"]) == 2 - row["successes"]
        for failure in row["failures"]:
            assert failure["reasons"] and failure["transcript"][0]["user"]


class _StoreWritingTarget:
    """A target without a state machine that changes the e-mail it is given, as a baseline agent might."""

    name = "store-writer"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.emails: list[str] = []

    def turn(self, conversation_id: str, customer_id: str, text: str) -> TurnObservation:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session, session.begin():
                customer = session.get(CustomerRow, customer_id)
                assert customer is not None
                self.emails.append(customer.email)
                customer.email = new = text.rsplit(" ", 1)[-1]
        finally:
            engine.dispose()
        return TurnObservation(reply=f"Your e-mail address is now {new}.", tools=["update_contact"])

    def close(self) -> None:
        pass


def test_a_contact_change_is_checked_then_undone_so_every_trial_starts_from_the_seed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    seed(engine)
    engine.dispose()
    scenario = Scenario.model_validate(
        _GOOD
        | {
            "turns": [{"user": "Please change my email to emma.clark.new@example.org", "expect": {"state": "answer"}}],
            "expect": {"tools": ["update_contact"], "db": {"contact": {"email": "emma.clark.new@example.org"}}},
        }
    )
    target = _StoreWritingTarget(f"sqlite:///{tmp_path / 'kefu.db'}")
    result = run_suite(target, [scenario], 3, options=CheckOptions(check_states=False))
    assert [t.passed for t in result.results[0].trials] == [True, True, True]
    assert target.emails == ["emma.clark@example.com"] * 3
    assert "states" not in result.to_json(model="m", llm="url", command="c")["checks"]


def test_the_cli_refuses_a_broken_scenario_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.yaml").write_text(yaml.safe_dump([_GOOD | {"customer": "nobody"}]))
    assert main(["--fake-llm", "--scenarios", str(tmp_path), "--out", str(tmp_path / "out.json")]) == 2
    assert "unknown customer 'nobody'" in capsys.readouterr().out
    assert not (tmp_path / "out.json").exists()


def test_the_readme_example_is_a_valid_scenario(tmp_path: Path) -> None:
    readme = (DEFAULT_DIR / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "orders.yaml").write_text(example, encoding="utf-8")
    [scenario] = load_scenarios([tmp_path])
    assert scenario.id == "orders-zh-shipped-eta" and scenario.expect.db is not None


def test_the_judge_asks_three_times_with_a_json_schema_and_the_majority_wins() -> None:
    votes = iter([True, False, True, False, False, True])
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        verdict = next(votes)
        content = json.dumps({"pass": verdict, "reason": "said so" if verdict else "did not"})
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    judge = LlmJudge("http://judge.test/v1", "judge-model")
    judge.client = httpx.Client(base_url="http://judge.test/v1", transport=httpx.MockTransport(answer))
    try:
        assert judge.decide("Says when it arrives.", "Customer: when?\nAgent: Friday.") == (True, "said so")
        assert judge.decide("Says when it arrives.", "Customer: when?\nAgent: Soon.") == (False, "did not")
    finally:
        judge.close()
    assert len(bodies) == 6
    schema = bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["pass", "reason"] and bodies[0]["model"] == "judge-model"
    assert "Says when it arrives." in bodies[0]["messages"][0]["content"]
