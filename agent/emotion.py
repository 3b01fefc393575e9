"""Emotion of a customer message: calm, confused, dissatisfied or angry, in Chinese and English.

A lexicon with intensity cues (exclamation runs, capitals), cheap enough for every turn. Angry
messages, or several dissatisfied ones in a row, raise the conversation's priority and can hand
it to a human (see ``Policy.handoff_at``).
"""

from __future__ import annotations

import re
from enum import IntEnum

__all__ = ["Emotion", "detect_emotion"]


class Emotion(IntEnum):
    """Ordered by how urgently a human should look."""

    CALM = 0
    CONFUSED = 1
    DISSATISFIED = 2
    ANGRY = 3

    @property
    def label(self) -> str:
        """Lower-case name."""
        return self.name.lower()


_ANGRY = (
    "furious", "angry", "ridiculous", "unacceptable", "worst", "scam", "disgusting", "sue you", "rip-off",
    "fed up", "pathetic", "useless", "wtf", "damn", "hate you", "hate this", "hate it",
    "气死", "愤怒", "垃圾服务", "垃圾产品", "太垃圾", "骗子", "无法接受", "受够", "什么破", "离谱", "欺骗", "坑人",
    "滚蛋", "恶心", "太过分",
)  # fmt: skip
_DISSATISFIED = (
    "disappointed", "not happy", "unhappy", "terrible", "bad service", "too slow", "still not", "happened again",
    "again!", "complain", "poor", "broken", "damaged", "late", "never arrived", "waste",
    "失望", "不满意", "太慢", "还没", "又是", "又坏", "又出", "投诉", "差评", "坏了", "破损", "不好用", "太差", "糟糕",
    "怎么回事",
)  # fmt: skip
_CONFUSED = (
    "confused", "don't understand", "what do you mean", "not sure", "how do i", "i don't get", "huh",
    "不懂", "不明白", "什么意思", "搞不清", "怎么弄", "看不懂", "啥意思",
)  # fmt: skip


def _hits(lowered: str, words: tuple[str, ...]) -> int:
    count = 0
    for word in words:
        if word.isascii() and " " not in word and "-" not in word:
            count += bool(re.search(rf"\b{re.escape(word)}\b", lowered))
        else:
            count += word in lowered
    return count


def detect_emotion(text: str) -> Emotion:
    """The strongest emotion the message shows."""
    lowered = text.lower()
    shouting = bool(re.search(r"[!！]{3,}", text)) or (
        len(re.findall(r"[A-Z]", text)) >= 8 and sum(c.isupper() for c in text) > 0.6 * sum(c.isalpha() for c in text)
    )
    angry, dissatisfied = _hits(lowered, _ANGRY), _hits(lowered, _DISSATISFIED)
    if angry >= 2 or (angry and (shouting or dissatisfied)) or (shouting and dissatisfied):
        return Emotion.ANGRY
    if angry or dissatisfied:
        return Emotion.DISSATISFIED
    if _hits(lowered, _CONFUSED) or re.search(r"[?？]{2,}", text):
        return Emotion.CONFUSED
    return Emotion.CALM
