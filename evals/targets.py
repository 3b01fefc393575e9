"""What a scenario or task runs against: the agent over HTTP, or a baseline in-process; and pass^k.

A ``Target`` takes one customer message at a time and says what happened, in the same terms for
Kefu and for the LangGraph ReAct baseline, so one runner and one set of checks serve both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import comb
from typing import Protocol

__all__ = ["Target", "TurnObservation", "pass_hat_k"]


@dataclass(frozen=True)
class TurnObservation:
    """One customer message and what the target did with it."""

    reply: str
    tools: list[str] = field(default_factory=list)
    """Tools called during the turn, in order (names as registered, e.g. ``lookup_order``)."""
    state: str | None = None
    """Dialogue state after the turn; None for targets without a state machine (the baseline)."""
    intent: str | None = None
    route: str | None = None
    """``llm`` or ``rules`` (Kefu); ``llm`` for the baseline."""
    fallback: str | None = None
    llm_calls: int = 0
    prompt_tokens: int | None = None
    """Tokens as the endpoint reported them, when the target can count them per turn."""
    completion_tokens: int | None = None
    latency_ms: float = 0.0
    """Wall time from sending the message to having the whole reply, as the client sees it."""
    ttft_ms: float | None = None
    """Until the first visible reply token reached the client, when streamed."""
    handed_off: bool = False
    """The conversation is now with (or queued for) a human."""
    error: str | None = None
    """The target failed the turn (HTTP error, exception): the scenario fails with this reason."""


class Target(Protocol):
    """Something a customer can talk to."""

    name: str
    """``kefu`` or ``react-baseline``: how reports label it."""
    database_url: str
    """The target's store (SQLite URL), for checking database effects."""

    def turn(self, conversation_id: str, customer_id: str, text: str) -> TurnObservation:
        """Send one customer message in ``conversation_id`` and wait for the whole reply."""
        ...

    def close(self) -> None:
        """Release what the target holds (processes, clients)."""
        ...


def pass_hat_k(successes: Sequence[int], trials: int, k: int) -> float:
    """τ-bench's pass^k: the chance that k trials drawn from ``trials`` all pass, averaged over tasks.

    ``successes[i]`` is how many of task i's ``trials`` passed; each task contributes
    C(c, k) / C(n, k), the unbiased estimate from n ≥ k trials.

    Example:
        >>> pass_hat_k([4, 2, 0], trials=4, k=1)
        0.5
        >>> round(pass_hat_k([4, 2, 0], trials=4, k=2), 3)
        0.389
    """
    if not successes:
        return 0.0
    if not 1 <= k <= trials:
        raise ValueError(f"k must be between 1 and the number of trials ({trials}), not {k}")
    return sum(comb(c, k) / comb(trials, k) for c in successes) / len(successes)
