"""Cheap, model-free reads of a message: its language, an explicit request for a human, a short yes.

Intent comes from ``agent.intent_engine``; emotion from ``agent.emotion``; slots from ``agent.slots``.
An explicit request for a human is honoured whatever the classifier thinks: a customer must
always be able to reach a person.
"""

from __future__ import annotations

import re

from core.types import Lang

__all__ = ["asks_for_human", "detect_lang", "is_affirmative"]

_CJK = re.compile(r"[\u4e00-\u9fff]")
_HUMAN = re.compile(
    r"\b(human|real person|live agent|representative|operator|talk to (?:a|an|someone)|speak to (?:a|an|someone))\b"
    r"|人工|真人|转接客服|找客服",
    re.IGNORECASE,
)
_YES = re.compile(
    r"^\s*(yes|yeah|yep|yup|ok|okay|sure|please|please do|go ahead|y"
    r"|好|好的|好啊|是|是的|对|对的|可以|行|嗯|嗯嗯|要|需要|转吧)"
    r"[\s!！.。,，~]*(please|吧|呀|啊|谢谢|thanks)?[\s!！.。~]*$",
    re.IGNORECASE,
)


def detect_lang(text: str) -> Lang:
    """Chinese when the text has Chinese characters, English otherwise."""
    return Lang.ZH if _CJK.search(text) else Lang.EN


def asks_for_human(text: str) -> bool:
    """The customer explicitly asks for a person ("real person", "人工客服")."""
    return bool(_HUMAN.search(text))


def is_affirmative(text: str) -> bool:
    """A short yes ("ok", "好的", "yes please"): the answer to an offer."""
    return bool(_YES.match(text))
