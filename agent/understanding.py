"""Cheap, model-free understanding: language, order numbers, anger, and keyword intents.

These run on every turn before (and instead of, when the LLM is down) the model. The keyword
intents are the rule engine's classifier: they only claim an intent on a clear keyword, with a
fixed confidence, and otherwise say nothing.
"""

from __future__ import annotations

import re

from agent.machine import Intent
from core.types import Lang

__all__ = ["RULE_CONFIDENCE", "anger_level", "detect_lang", "find_order_ids", "rule_intent"]

RULE_CONFIDENCE = 0.6
"""Confidence given to a keyword match: enough to act, never enough to look certain."""

_ORDER_ID = re.compile(r"(?<![A-Za-z0-9])(KF[0-9]{6})(?![A-Za-z0-9])", re.IGNORECASE)
_CJK = re.compile(r"[\u4e00-\u9fff]")

_ANGER = {
    Lang.EN: ("furious", "angry", "ridiculous", "unacceptable", "terrible", "worst", "scam", "disgusting", "sue you"),
    Lang.ZH: ("气死", "愤怒", "太差", "垃圾", "骗子", "投诉你们", "无法接受", "受够", "什么破", "离谱"),
}

# Ordered: the first intent with a matching keyword wins, so specific intents come first.
_KEYWORDS: tuple[tuple[Intent, tuple[str, ...]], ...] = (
    (Intent.HUMAN_AGENT, ("human", "real person", "agent", "representative", "人工", "真人", "转接")),
    (Intent.CANCEL_ORDER, ("cancel", "取消")),
    (Intent.RETURN_REFUND, ("return", "refund", "exchange", "退货", "退款", "换货", "退钱")),
    (Intent.COMPLAINT, ("complain", "complaint", "投诉", "不满意", "差评")),
    (
        Intent.ORDER_STATUS,
        ("where is my", "order status", "my order", "shipped", "tracking", "订单", "到哪", "发货", "物流", "快递到"),
    ),
    (
        Intent.SHIPPING_DELIVERY,
        ("delivery", "shipping", "deliver", "arrive", "配送", "运费", "几天到", "送货", "什么时候到", "到货"),
    ),
    (Intent.PURCHASE, ("buy it", "i'll take", "place an order", "purchase", "我要买", "下单", "就要这个", "购买")),
    (Intent.PRODUCT_RECOMMENDATION, ("recommend", "suggest", "which one", "推荐", "买什么", "哪款", "适合")),
    (Intent.PRODUCT_INQUIRY, ("price", "warranty", "in stock", "feature", "价格", "多少钱", "保修", "有货", "功能")),
    (Intent.ACCOUNT_PROFILE, ("membership", "my account", "points", "tier", "会员", "积分", "账户", "等级")),
    (Intent.GOODBYE, ("bye", "thank", "thanks", "thx", "that's all", "再见", "谢谢", "没有了", "拜拜")),
    (Intent.GREETING, ("hello", "hi", "hey", "good morning", "你好", "您好", "在吗", "早上好")),
)


def detect_lang(text: str) -> Lang:
    """Chinese when the text has Chinese characters, English otherwise."""
    return Lang.ZH if _CJK.search(text) else Lang.EN


def find_order_ids(text: str) -> list[str]:
    """Order numbers (``KF`` + 6 digits) in ``text``, upper-cased, in order, without repeats."""
    return list(dict.fromkeys(match.upper() for match in _ORDER_ID.findall(text)))


def anger_level(text: str) -> int:
    """How many strong-anger markers the text has (0 = calm); '!!!' counts as one."""
    lowered = text.lower()
    hits = sum(word in lowered for words in _ANGER.values() for word in words)
    return hits + (1 if "!!!" in text or "！！！" in text else 0)


def rule_intent(text: str) -> Intent | None:
    """The intent a clear keyword names, or None."""
    lowered = text.lower()
    words = set(re.findall(r"[a-z']+", lowered))
    has_order = bool(find_order_ids(text))
    for intent, keywords in _KEYWORDS:
        if has_order and intent in (Intent.GOODBYE, Intent.GREETING):
            return Intent.ORDER_STATUS  # "hi, KF100234 please": the order number is the request
        for keyword in keywords:
            latin = keyword.isascii()
            if (latin and " " not in keyword and keyword in words) or (
                (not latin or " " in keyword) and keyword in lowered
            ):
                return intent
    return Intent.ORDER_STATUS if has_order else None
