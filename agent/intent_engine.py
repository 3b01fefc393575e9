"""Two-stage intent decision: the embeddings classifier first, the LLM only when it is ambiguous.

Stage 1 accepts the classifier's top intent when its calibrated probability reaches
``Policy.accept`` and leads the runner-up by ``Policy.gap``. Otherwise stage 2 asks the LLM to
choose among the classifier's top candidates (JSON-schema output, confidence from
log-probabilities) and averages the two confidences. Below ``Policy.unsure_below`` the turn is
unsure. When the LLM is down the classifier's reading stands, with its own confidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from langchain_core.messages import HumanMessage, SystemMessage

from agent.intents import Ranked
from agent.llm import LlmGateway, LlmUnavailable
from agent.machine import Intent
from agent.policy import Policy
from core.types import Lang
from prompts import load_prompt

__all__ = ["IntentEngine", "Ranker", "Reading"]

log = logging.getLogger(__name__)


class Ranker(Protocol):
    """Stage 1: anything that ranks intents with calibrated probabilities (``IntentModel``)."""

    def rank(self, texts: Sequence[str]) -> list[Ranked]:
        """Labels with probabilities for each text, most likely first."""
        ...


@dataclass(frozen=True)
class Reading:
    """What the engine concluded about one message, and how."""

    intent: Intent
    confidence: float
    sure: bool
    stage: str
    """``classifier`` (accepted alone), ``llm`` (second stage) or ``classifier:llm-down``."""
    candidates: tuple[Intent, ...]
    """The classifier's ranking (top first), for clarifying questions."""
    reason: str
    """Why the stage decided, in words, for the audit log."""
    llm_calls: int


class IntentEngine:
    """Reads the intent of a message under a ``Policy``."""

    def __init__(self, model: Ranker, llm: LlmGateway | None, policy: Policy) -> None:
        """Use ``model`` for stage 1 and ``llm`` (None: no second stage) for stage 2."""
        self.model, self.llm, self.policy = model, llm, policy

    def read(self, text: str, lang: Lang, *, use_llm: bool = True) -> Reading:
        """The intent of ``text`` with its confidence and the stage that decided."""
        ranked = self.model.rank([text])[0]
        names = {intent.value for intent in Intent}
        # A company's retrained model may know labels the dialogue does not; those are skipped.
        known = [(Intent(label), p) for label, p in zip(ranked.labels, ranked.probs, strict=True) if label in names]
        if not known:
            return self._reading(Intent.OUT_OF_SCOPE, 0.0, "classifier", (), "model knows no dialogue intent", 0)
        candidates = tuple(intent for intent, _prob in known)
        top, confidence = known[0]
        policy = self.policy
        if confidence >= policy.accept and ranked.margin >= policy.gap:
            reason = (
                f"classifier {confidence:.2f} >= accept {policy.accept}, margin {ranked.margin:.2f} >= {policy.gap}"
            )
            return self._reading(top, confidence, "classifier", candidates, reason, 0)
        why = f"classifier {confidence:.2f} (margin {ranked.margin:.2f}) below accept {policy.accept}/gap {policy.gap}"
        if self.llm is None or not use_llm:
            return self._reading(top, confidence, "classifier", candidates, why + "; no LLM stage", 0)
        shortlist = known[: policy.candidates]
        try:
            choice = self.llm.choose(
                [SystemMessage(load_prompt("understand", lang.value)), HumanMessage(text)],
                "intent",
                [intent.value for intent, _prob in shortlist],
            )
        except LlmUnavailable as exc:
            log.warning("intent LLM stage unavailable: %s", exc)
            return self._reading(top, confidence, "classifier:llm-down", candidates, why + "; LLM down", 1)
        total = sum(prob for _intent, prob in shortlist) or 1.0
        prior = next(prob for intent, prob in shortlist if intent.value == choice.label) / total
        combined = (prior + choice.confidence) / 2
        reason = f"{why}; LLM chose {choice.label} at {choice.confidence:.2f} among {[i.value for i, _ in shortlist]}"
        return self._reading(Intent(choice.label), combined, "llm", candidates, reason, 1)

    def _reading(
        self, intent: Intent, confidence: float, stage: str, candidates: tuple[Intent, ...], reason: str, calls: int
    ) -> Reading:
        sure = confidence >= self.policy.unsure_below
        if not sure:
            reason += f"; {confidence:.2f} < unsure_below {self.policy.unsure_below}: unsure"
        return Reading(intent, round(confidence, 4), sure, stage, candidates, reason, calls)
