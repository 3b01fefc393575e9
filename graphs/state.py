"""The graph's state: the conversation plus the few keys several nodes need."""

from __future__ import annotations

from langgraph.graph import MessagesState

__all__ = ["SupportState"]


class SupportState(MessagesState, total=False):
    """State of one conversation, checkpointed after every turn.

    ``messages`` holds only redacted text: the customer's raw words arrive in ``inbound`` and the
    redact node replaces them before anything is stored or shown to a model.
    """

    customer_id: str
    """The customer who owns the conversation; another customer's session cannot continue it."""
    inbound: str
    """This turn's raw customer text; emptied by the redact node."""
    lang: str
    vault: dict[str, str]
    """Placeholder → original value for this conversation's personal data."""
    dialogue_state: str
    intent: str
    confidence: float
    sure: bool
    """Confidence passed the threshold."""
    unsure_streak: int
    """Turns in a row the agent could not serve; past the limit the conversation goes to a human."""
    escalate: bool
    order_ids: list[str]
    events: list[str]
    """State-machine events taken this turn."""
    route: str
    """``llm`` when the model composes the reply, ``rules`` when a template does."""
    tool_rounds: int
    llm_calls: int
    """LLM calls made this turn."""
