"""The dialogue state machine: every allowed transition is taken, every other one refused."""

from __future__ import annotations

import itertools

import pytest
from statemachine.exceptions import TransitionNotAllowed

from agent.machine import DialogueMachine, DialogueState, Intent, TurnFacts, mermaid, plan_events, target_state

ALL_FACTS = [
    TurnFacts(intent=intent, sure=sure, escalate=escalate)
    for intent, sure, escalate in itertools.product(Intent, (True, False), (True, False))
]
STATES = [state.id for state in DialogueMachine.states]
EVENTS = sorted({str(event) for state in DialogueMachine.states for t in state.transitions for event in t.events})
EDGES = {
    (state.id, str(event)): t.target.id
    for state in DialogueMachine.states
    for t in state.transitions
    for event in t.events
}


def _enabling_facts(state: str, event: str) -> TurnFacts | None:
    for facts in ALL_FACTS:
        machine = DialogueMachine(start_value=state)
        if event in {str(e.id) for e in machine.enabled_events(facts=facts)}:
            return facts
    return None


def test_states_match_the_design() -> None:
    assert set(STATES) == {s.value for s in DialogueState}


@pytest.mark.parametrize(("state", "event"), sorted(EDGES))
def test_every_allowed_transition_can_be_taken(state: str, event: str) -> None:
    facts = _enabling_facts(state, event)
    assert facts is not None, f"no turn enables {event} from {state}"
    machine = DialogueMachine(start_value=state)
    machine.send(event, facts=facts)
    assert machine.current_state_value == EDGES[(state, event)]


@pytest.mark.parametrize(("state", "event"), [(s, e) for s in STATES for e in EVENTS if (s, e) not in EDGES])
def test_every_forbidden_transition_is_refused(state: str, event: str) -> None:
    for facts in ALL_FACTS[:4]:
        machine = DialogueMachine(start_value=state)
        with pytest.raises(TransitionNotAllowed):
            machine.send(event, facts=facts)
        assert machine.current_state_value == state


@pytest.mark.parametrize(("state", "event"), sorted(k for k in EDGES if k[1] not in ("hand_back", "customer_says")))
def test_guards_refuse_transitions_the_turn_does_not_justify(state: str, event: str) -> None:
    # customer_says (any message) and hand_back (a human's action) are unconditional by design.

    refused = 0
    for facts in ALL_FACTS:
        machine = DialogueMachine(start_value=state)
        if event not in {str(e.id) for e in machine.enabled_events(facts=facts)}:
            refused += 1
            with pytest.raises(TransitionNotAllowed):
                machine.send(event, facts=facts)
    assert refused > 0, f"{event} from {state} is enabled whatever the customer says"


def test_end_is_final() -> None:
    machine = DialogueMachine(start_value="end")
    assert [e.id for e in machine.allowed_events] == []


@pytest.mark.parametrize(
    ("start", "facts", "events", "final"),
    [
        ("welcome", TurnFacts(Intent.ORDER_STATUS, True), ["customer_says", "asks"], "answer"),
        ("answer", TurnFacts(Intent.ORDER_STATUS, True), ["asks"], "answer"),
        (
            "welcome",
            TurnFacts(Intent.PURCHASE, True),
            ["customer_says", "purchase_confirmed", "buying_signal"],
            "close_deal",
        ),
        (
            "answer",
            TurnFacts(Intent.PRODUCT_RECOMMENDATION, True),
            ["intent_unclear", "purchase_confirmed"],
            "recommend",
        ),
        ("recommend", TurnFacts(Intent.RETURN_REFUND, True), ["intent_unclear", "asks"], "answer"),
        ("answer", TurnFacts(Intent.ORDER_STATUS, False), ["intent_unclear"], "need_confirm"),
        ("need_confirm", TurnFacts(Intent.OUT_OF_SCOPE, False), ["intent_unclear"], "need_confirm"),
        ("recommend", TurnFacts(Intent.COMPLAINT, True, escalate=True), ["escalate"], "handoff"),
        ("handoff", TurnFacts(Intent.ORDER_STATUS, True), [], "handoff"),
        ("handoff", TurnFacts(Intent.GOODBYE, True), ["finish"], "end"),
        ("close_deal", TurnFacts(Intent.GOODBYE, True), ["finish"], "end"),
        ("welcome", TurnFacts(Intent.GREETING, True), ["customer_says"], "need_confirm"),
        ("answer", TurnFacts(Intent.GREETING, True), [], "answer"),
    ],
)
def test_plan_events_walks_only_enabled_transitions(
    start: str, facts: TurnFacts, events: list[str], final: str
) -> None:
    machine = DialogueMachine(start_value=start)
    assert plan_events(machine, facts) == events
    assert machine.current_state_value == final


def test_target_state_prefers_escalation() -> None:
    facts = TurnFacts(Intent.ORDER_STATUS, True, escalate=True)
    assert target_state(DialogueState.ANSWER, facts) is DialogueState.HANDOFF


def test_mermaid_is_generated_from_the_definition() -> None:
    diagram = mermaid()
    assert diagram.startswith("stateDiagram-v2")
    for (state, _event), target in EDGES.items():
        assert f"{state} --> {target}" in diagram
