"""Top unanswered questions: what customers asked that the bot could not answer, grouped by meaning.

A turn is unanswered when its intent was ``out_of_scope``, when it was unsure (an unsure or
loop-breaker fallback, or a confidence below the policy's ``unsure_below``), or when the knowledge
base had nothing good enough (a knowledge-miss fallback). Similar questions, in Chinese or English,
are grouped with the multilingual sentence encoder (512-d unit vectors): average-linkage
agglomerative clustering on cosine distance, merging while the groups' mean similarity is at least
the threshold. Each group's representative is the question closest to its centroid.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from insights.turns import OUT_OF_SCOPE, TurnRecord

__all__ = [
    "DEFAULT_THRESHOLD",
    "CachingEncoder",
    "Cluster",
    "Encoder",
    "Question",
    "QuestionGroup",
    "cluster_questions",
    "top_unanswered",
    "unanswered",
    "unanswered_reason",
]

DEFAULT_THRESHOLD = 0.4
"""Mean cosine similarity two groups need to merge. On the shipped encoder, paraphrases score
0.6-0.8 within a language and 0.45-0.7 across zh/en ("Can I buy a gift card?" / "礼品卡怎么买"),
different topics 0.1-0.35; on the demo store's drift days 0.4 puts each new topic's zh and en
wordings together, 0.5 splits them by language."""
MAX_TEXTS = 2000
"""Distinct questions clustered at most (the most frequent, then the newest): the pairwise
distances grow with the square of this."""


class Encoder(Protocol):
    """Text to unit vectors (``core.embeddings.SentenceEncoder`` is one)."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as an ``(n, d)`` array of unit vectors."""
        ...


class CachingEncoder:
    """An encoder that remembers the vectors of the texts it saw (bounded; the oldest go first).

    The dashboard groups mostly the same questions on every refresh; this keeps a refresh from
    encoding them again.
    """

    def __init__(self, encoder: Encoder, max_entries: int = 50_000) -> None:
        """Wrap ``encoder``; keep at most ``max_entries`` vectors."""
        self._encoder = encoder
        self._max = max_entries
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``, encoding only those not seen before."""
        if not texts:
            return self._encoder.encode([])
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            fresh = self._encoder.encode(missing)
            known.update(zip(missing, fresh, strict=True))
            with self._lock:
                self._vectors.update(zip(missing, fresh, strict=True))
                while len(self._vectors) > self._max:
                    del self._vectors[next(iter(self._vectors))]
        return np.stack([known[text] for text in texts]).astype(np.float32)


@dataclass(frozen=True)
class Question:
    """One customer message the bot could not answer."""

    text: str
    intent: str
    """The intent the classifier gave (its best guess, even when unsure)."""
    reason: str
    """``out_of_scope``, ``knowledge_miss`` or ``unsure``."""
    at: datetime


class QuestionGroup(BaseModel):
    """Similar unanswered questions, counted together."""

    model_config = ConfigDict(frozen=True)

    count: int
    """How many turns asked something in this group."""
    representative: str
    """The question closest to the group's centroid."""
    examples: list[str]
    """Up to three other wordings, the most frequent first."""
    reasons: dict[str, int]
    """Why the turns went unanswered, counted."""
    intents: dict[str, int]
    """What the classifier guessed, counted."""
    last_at: datetime
    """When it was last asked."""


@dataclass(frozen=True)
class Cluster:
    """A group of questions: every turn in it and its distinct wordings, the most frequent first."""

    representative: str
    texts: list[tuple[str, int]]
    questions: list[Question]

    def summary(self, examples: int = 3) -> QuestionGroup:
        """The group as the dashboard shows it, with up to ``examples`` other wordings."""
        return QuestionGroup(
            count=len(self.questions),
            representative=self.representative,
            examples=[text for text, _ in self.texts if text != self.representative][:examples],
            reasons=dict(Counter(q.reason for q in self.questions).most_common()),
            intents=dict(Counter(q.intent or OUT_OF_SCOPE for q in self.questions).most_common()),
            last_at=max(q.at for q in self.questions),
        )


def unanswered(turns: Iterable[TurnRecord], unsure_below: float) -> list[Question]:
    """The bot's turns that did not answer the customer and still have the customer's words."""
    questions: list[Question] = []
    for turn in turns:
        if not turn.by_bot or not turn.question or not turn.question.strip():
            continue
        reason = unanswered_reason(turn.intent, turn.kind, turn.confidence, unsure_below)
        if reason is not None:
            questions.append(Question(turn.question.strip(), turn.intent, reason, turn.at))
    return questions


def unanswered_reason(intent: str, kind: str | None, confidence: float, unsure_below: float) -> str | None:
    """Why a bot turn did not answer: ``out_of_scope``, ``knowledge_miss`` or ``unsure``; None if it did.

    ``kind`` is the turn's fallback kind (``fallback_kind``). Serving uses the same test to decide
    which turns keep the customer's words.
    """
    if intent == OUT_OF_SCOPE:
        return "out_of_scope"
    if kind == "knowledge_miss":
        return "knowledge_miss"
    if kind in ("unsure", "loop_breaker") or confidence < unsure_below:
        return "unsure"
    return None


def cluster_questions(
    questions: Sequence[Question], encoder: Encoder, *, threshold: float = DEFAULT_THRESHOLD
) -> list[Cluster]:
    """Group ``questions`` by meaning; the biggest group first (then the most recent, then by text)."""
    by_key: dict[str, list[Question]] = {}
    for question in questions:
        by_key.setdefault(_key(question.text), []).append(question)
    keys = sorted(by_key, key=lambda k: (-len(by_key[k]), -max(q.at for q in by_key[k]).timestamp(), k))
    keys = keys[:MAX_TEXTS]
    if not keys:
        return []
    shown = [Counter(q.text for q in by_key[k]).most_common(1)[0][0] for k in keys]
    vectors = encoder.encode(shown)
    labels = _agglomerate(vectors, threshold)
    clusters = []
    for label in sorted(set(labels)):
        members = [index for index, value in enumerate(labels) if value == label]
        clusters.append(_cluster(members, keys, shown, vectors, by_key))
    clusters.sort(key=lambda c: (-len(c.questions), -max(q.at for q in c.questions).timestamp(), c.representative))
    return clusters


def top_unanswered(
    turns: Iterable[TurnRecord],
    encoder: Encoder,
    *,
    unsure_below: float,
    limit: int = 20,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[QuestionGroup]:
    """The ``limit`` biggest groups of unanswered questions among ``turns``."""
    clusters = cluster_questions(unanswered(turns, unsure_below), encoder, threshold=threshold)
    return [cluster.summary() for cluster in clusters[:limit]]


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _agglomerate(vectors: npt.NDArray[np.float32], threshold: float) -> list[int]:
    """Cluster labels of ``vectors``: average linkage on cosine distance, cut at ``1 - threshold``."""
    if len(vectors) < 2:
        return [0] * len(vectors)
    from sklearn.cluster import AgglomerativeClustering  # heavy; only when there is something to group

    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - threshold
    )
    return [int(label) for label in model.fit_predict(np.asarray(vectors, dtype=np.float64))]


def _cluster(
    members: list[int],
    keys: list[str],
    shown: list[str],
    vectors: npt.NDArray[np.float32],
    by_key: dict[str, list[Question]],
) -> Cluster:
    weights = np.array([len(by_key[keys[i]]) for i in members], dtype=np.float64)
    centroid = (vectors[members].astype(np.float64) * weights[:, None]).sum(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    similarity = vectors[members].astype(np.float64) @ centroid
    # Members are in frequency order already, so on a tie the more frequent wording wins.
    best = members[int(np.argmax(similarity))]
    questions = sorted((q for i in members for q in by_key[keys[i]]), key=lambda q: q.at)
    texts = [(shown[i], len(by_key[keys[i]])) for i in members]
    return Cluster(representative=shown[best], texts=texts, questions=questions)
