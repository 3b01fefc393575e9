"""The dialogue state machine, defined once and enforced.

States and transitions follow DESIGN.md::

    welcome      → need_confirm : customer says something
    need_confirm → recommend    : purchase intent confirmed
    need_confirm → answer       : asks about a product / policy / order
    recommend    → close_deal   : buying signal detected
    answer       → need_confirm : intent still unclear
    any          → handoff      : asks for a human, repeated low confidence, strong negative emotion, out of scope
    any          → end          : goodbye / resolved

Two refinements, both drawn in ``kefu graph``: a state may serve another request of its own kind
(a self-transition: a second order question stays in ``answer``), and a customer who changes
topic in ``recommend`` or ``close_deal`` goes back to ``need_confirm`` the way an unclear intent
does in ``answer``. A human agent hands a conversation back with ``hand_back``.

Every transition has a guard that reads the turn's ``TurnFacts``; the graph asks the machine which
events are enabled (``enabled_events``) and sends only those, so a forbidden transition cannot be
taken: ``send`` raises ``TransitionNotAllowed`` for anything else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from statemachine import State, StateMachine
from statemachine.contrib.diagram import MermaidGraphMachine

__all__ = [
    "PURCHASE_INTENTS",
    "QUESTION_INTENTS",
    "DialogueMachine",
    "DialogueState",
    "Intent",
    "TurnFacts",
    "mermaid",
    "plan_events",
    "target_state",
]


class Intent(StrEnum):
    """What a customer message asks for."""

    GREETING = "greeting"
    ORDER_STATUS = "order_status"
    CANCEL_ORDER = "cancel_order"
    CHANGE_ORDER = "change_order"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"
    SHIPPING_DELIVERY = "shipping_delivery"
    PAYMENT_INVOICE = "payment_invoice"
    PRODUCT_INQUIRY = "product_inquiry"
    PRODUCT_RECOMMENDATION = "product_recommendation"
    PURCHASE = "purchase"
    COMPLAINT = "complaint"
    ACCOUNT_PROFILE = "account_profile"
    HUMAN_AGENT = "human_agent"
    GOODBYE = "goodbye"
    CHITCHAT = "chitchat"
    OUT_OF_SCOPE = "out_of_scope"


class DialogueState(StrEnum):
    """The states of the dialogue."""

    WELCOME = "welcome"
    NEED_CONFIRM = "need_confirm"
    RECOMMEND = "recommend"
    ANSWER = "answer"
    CLOSE_DEAL = "close_deal"
    HANDOFF = "handoff"
    END = "end"


QUESTION_INTENTS = frozenset(
    {
        Intent.ORDER_STATUS,
        Intent.CANCEL_ORDER,
        Intent.CHANGE_ORDER,
        Intent.RETURN_REFUND,
        Intent.EXCHANGE,
        Intent.SHIPPING_DELIVERY,
        Intent.PAYMENT_INVOICE,
        Intent.PRODUCT_INQUIRY,
        Intent.COMPLAINT,
        Intent.ACCOUNT_PROFILE,
    }
)
"""Intents answered in the ``answer`` state."""
PURCHASE_INTENTS = frozenset({Intent.PRODUCT_RECOMMENDATION, Intent.PURCHASE})
"""Intents that confirm a need to buy."""


@dataclass(frozen=True)
class TurnFacts:
    """What the guards know about the current turn."""

    intent: Intent
    sure: bool
    """Whether the intent's confidence passed the threshold."""
    escalate: bool = False
    """A human is needed: asked for, angry customer, or the unsure-turn limit was reached."""


class DialogueMachine(StateMachine):
    """Kefu's dialogue phases and the only transitions between them."""

    welcome = State(initial=True)
    need_confirm = State()
    recommend = State()
    answer = State()
    close_deal = State()
    handoff = State()
    end = State(final=True)

    customer_says = welcome.to(need_confirm)
    purchase_confirmed = need_confirm.to(recommend, cond="wants_to_buy") | recommend.to.itself(cond="wants_advice")
    asks = need_confirm.to(answer, cond="has_question") | answer.to.itself(cond="has_question")
    buying_signal = recommend.to(close_deal, cond="is_buying") | close_deal.to.itself(cond="is_buying")
    intent_unclear = (
        answer.to(need_confirm, cond="leaves_answer")
        | recommend.to(need_confirm, cond="leaves_recommend")
        | close_deal.to(need_confirm, cond="leaves_close_deal")
        | need_confirm.to.itself(cond="is_unsure")
    )
    escalate = (
        welcome.to(handoff, cond="needs_human")
        | need_confirm.to(handoff, cond="needs_human")
        | recommend.to(handoff, cond="needs_human")
        | answer.to(handoff, cond="needs_human")
        | close_deal.to(handoff, cond="needs_human")
    )
    hand_back = handoff.to(need_confirm)
    finish = (
        welcome.to(end, cond="is_goodbye")
        | need_confirm.to(end, cond="is_goodbye")
        | recommend.to(end, cond="is_goodbye")
        | answer.to(end, cond="is_goodbye")
        | close_deal.to(end, cond="is_goodbye")
        | handoff.to(end, cond="is_goodbye")
    )

    def wants_to_buy(self, facts: TurnFacts) -> bool:
        """Purchase intent confirmed."""
        return facts.sure and facts.intent in PURCHASE_INTENTS

    def wants_advice(self, facts: TurnFacts) -> bool:
        """Another recommendation request while recommending."""
        return facts.sure and facts.intent is Intent.PRODUCT_RECOMMENDATION

    def has_question(self, facts: TurnFacts) -> bool:
        """A question about a product, a policy or an order."""
        return facts.sure and facts.intent in QUESTION_INTENTS

    def is_buying(self, facts: TurnFacts) -> bool:
        """A buying signal."""
        return facts.sure and facts.intent is Intent.PURCHASE

    def is_unsure(self, facts: TurnFacts) -> bool:
        """The intent is still unclear."""
        return not facts.sure

    def leaves_answer(self, facts: TurnFacts) -> bool:
        """Unclear, or a need the answer state does not serve."""
        return not facts.sure or (facts.intent in PURCHASE_INTENTS)

    def leaves_recommend(self, facts: TurnFacts) -> bool:
        """Unclear, or a question instead of shopping."""
        return not facts.sure or facts.intent in QUESTION_INTENTS

    def leaves_close_deal(self, facts: TurnFacts) -> bool:
        """Unclear, or a new need after the deal."""
        return not facts.sure or facts.intent in QUESTION_INTENTS | {Intent.PRODUCT_RECOMMENDATION}

    def needs_human(self, facts: TurnFacts) -> bool:
        """Asked for a human, angry, or too many unsure turns."""
        return facts.escalate

    def is_goodbye(self, facts: TurnFacts) -> bool:
        """The customer is done."""
        return facts.sure and facts.intent is Intent.GOODBYE


def target_state(current: DialogueState, facts: TurnFacts) -> DialogueState:
    """Where the turn should leave the dialogue, before asking the machine what it allows."""
    if facts.escalate:
        return DialogueState.HANDOFF
    if current is DialogueState.HANDOFF:
        return DialogueState.END if facts.sure and facts.intent is Intent.GOODBYE else current
    if not facts.sure:
        return DialogueState.NEED_CONFIRM
    if facts.intent is Intent.GOODBYE:
        return DialogueState.END
    if facts.intent is Intent.PURCHASE:
        return DialogueState.CLOSE_DEAL
    if facts.intent is Intent.PRODUCT_RECOMMENDATION:
        return DialogueState.RECOMMEND
    if facts.intent in QUESTION_INTENTS:
        return DialogueState.ANSWER
    # Greetings, chit-chat and out-of-scope requests do not move an ongoing dialogue.
    return DialogueState.NEED_CONFIRM if current is DialogueState.WELCOME else current


def _edges() -> dict[str, list[tuple[str, str]]]:
    """Static transition table of the definition: source → [(event, target)]."""
    edges: dict[str, list[tuple[str, str]]] = {}
    for state in DialogueMachine.states:
        for transition in state.transitions:
            for event in transition.events:
                edges.setdefault(state.id, []).append((str(event), transition.target.id))
    return edges


_EDGES = _edges()


def _distances_to(target: str) -> dict[str, int]:
    reverse: dict[str, set[str]] = {}
    for source, outs in _EDGES.items():
        for _event, dest in outs:
            reverse.setdefault(dest, set()).add(source)
    distance = {target: 0}
    queue = deque([target])
    while queue:
        node = queue.popleft()
        for source in reverse.get(node, ()):
            if source not in distance:
                distance[source] = distance[node] + 1
                queue.append(source)
    return distance


def plan_events(machine: DialogueMachine, facts: TurnFacts, max_steps: int = 4) -> list[str]:
    """Move ``machine`` toward the turn's target state using only enabled events; return them.

    At each step the machine says which events its guards enable for ``facts``; the one whose
    transition gets closest to the target is sent. A self-transition is sent when the target is
    the current state and the machine enables one (the state serves another request).
    """
    current = DialogueState(_state_id(machine))
    target = target_state(current, facts).value
    distance = _distances_to(target)
    taken: list[str] = []
    for _ in range(max_steps):
        here = _state_id(machine)
        enabled = {str(event.id) for event in machine.enabled_events(facts=facts)}
        options = [(event, dest) for event, dest in _EDGES.get(here, []) if event in enabled]
        if here == target:
            loops = [event for event, dest in options if dest == here]
            if loops and not taken:
                machine.send(loops[0], facts=facts)
                taken.append(loops[0])
            break
        best = min(
            (opt for opt in options if distance.get(opt[1], 99) < distance.get(here, 99)),
            key=lambda opt: distance.get(opt[1], 99),
            default=None,
        )
        if best is None:
            break
        machine.send(best[0], facts=facts)
        taken.append(best[0])
    return taken


def _state_id(machine: DialogueMachine) -> str:
    value: Any = machine.current_state_value
    return str(value)


def mermaid() -> str:
    """The machine as a Mermaid ``stateDiagram-v2``, generated from the definition."""
    return str(MermaidGraphMachine(DialogueMachine).get_mermaid())
