"""The graph's state: the conversation plus the few keys several nodes need."""

from __future__ import annotations

from typing import Any

from langgraph.graph import MessagesState

__all__ = ["SupportState"]


class SupportState(MessagesState, total=False):
    """State of one conversation, checkpointed after every turn.

    ``messages`` holds only redacted text: the customer's raw words arrive in ``inbound`` and the
    redact node replaces them before anything is stored or shown to a model. The real values behind
    the placeholders live in the encrypted vault (``core.vault``), never in this state.
    """

    customer_id: str
    """The customer who owns the conversation; another customer's session cannot continue it."""
    inbound: str
    """This turn's raw customer text; emptied by the redact node."""
    lang: str
    dialogue_state: str
    intent: str
    confidence: float
    sure: bool
    """Confidence passed the threshold."""
    unsure_streak: int
    """Turns in a row the agent could not serve; past the limit the conversation goes to a human."""
    stage: str
    """Which stage decided the intent: ``classifier``, ``llm`` or ``classifier:llm-down``."""
    reason: str
    """Why, in words (thresholds and probabilities), for the audit log."""
    candidates: list[str]
    """The classifier's three likeliest intents, offered in clarifying questions."""
    asked: list[str]
    """Clarifying questions already asked, so none is asked twice."""
    offered_human: bool
    """A human was offered; a yes or another unsure turn hands off."""
    emotion: str
    dissatisfied_streak: int
    escalate: bool
    escalate_reason: str
    order_ids: list[str]
    slots: dict[str, Any]
    events: list[str]
    """State-machine events taken this turn."""
    route: str
    """``llm`` when the model composes the reply, ``rules`` when a template does."""
    tool_rounds: int
    llm_calls: int
    """LLM calls made this turn."""
    sources: list[dict[str, Any]]
    """What this turn's reply rests on: cited document passages and graph paths (for the API response)."""
    fallback_reason: str
    """Why this turn's reply is a template rather than the model's (knowledge miss, ungrounded reply)."""
    human: str
    """The human agent who owns the conversation; while set, customer messages are stored and the bot is silent."""
