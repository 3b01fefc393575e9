"""How a planned demo conversation plays out: the agent's turn decisions, and the service-log row they fold into.

``core.history`` plans who talks to the shop, when and about what (a list of ``Step``); ``render``
turns one plan into ``turn_audit`` rows worded the way the agent writes them (``agent.intent_engine``
reasons, ``graphs.support`` fallbacks, ``agent.machine`` states and events, which ``core`` cannot
import) and the ``conversation_log`` row ``SqlStore.record_turn`` would have folded from them. The
customer's words come from fixed templates with placeholders for personal data, never real values.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, NamedTuple

__all__ = ["Plan", "Step", "render"]

_THRESHOLDS = "accept=0.8 gap=0.3 unsure_below=0.45"
_QUESTION_INTENTS = frozenset(
    "order_status cancel_order change_order return_refund exchange shipping_delivery payment_invoice "
    "product_inquiry complaint account_profile".split()
)
_TOOLS = {
    "order_status": ("list_recent_orders",),
    "shipping_delivery": ("lookup_order",),
    "cancel_order": ("lookup_order",),
    "change_order": ("lookup_order",),
    "return_refund": ("lookup_order", "open_ticket"),
    "exchange": ("search_knowledge",),
    "payment_invoice": ("search_knowledge",),
    "account_profile": ("get_customer_profile",),
    "product_inquiry": ("search_products",),
    "product_recommendation": ("recommend_products",),
    "purchase": ("search_products",),
    "complaint": ("open_ticket",),
}

# Customer messages as the model saw them: personal data only as placeholders. One pool per line, "|" between.
_QUESTIONS_ZH = {
    "greeting": "你好|在吗？|您好，请问有人吗",
    "goodbye": "谢谢，再见|好的，没问题了|知道了，谢谢",
    "order_status": "我的订单到哪了？|帮我查一下订单状态|上周下的单怎么还没发货|收件人<PERSON_1>的订单现在什么状态",
    "shipping_delivery": "快递什么时候能到？|能发顺丰吗|物流好几天没更新了|可以改成送到公司吗",
    "payment_invoice": "怎么开发票？|能开增值税专用发票吗|付款失败了怎么办|发票抬头写错了",
    "account_profile": "怎么修改收货地址|帮我把手机号改成<CN_MOBILE_1>|会员积分怎么查",
    "cancel_order": "我想取消订单|刚下的单能取消吗",
    "change_order": "订单能改颜色吗|下单后还能改地址吗",
    "exchange": "尺寸不合适能换吗|能换一个颜色吗",
    "return_refund": "我想退货|退款什么时候到账|七天无理由退货怎么申请",
    "product_inquiry": "这款耳机降噪效果怎么样|扫地机器人能拖地吗|这个手表防水吗|空气炸锅容量多大",
    "product_recommendation": "有没有适合跑步的耳机推荐|送长辈什么礼物好|预算一千左右买什么手表",
    "purchase": "我要买这个|就这款了，怎么下单|现在下单今天能发吗",
    "complaint": "收到的商品有划痕，很失望|快递员态度太差了|少发了一件商品|等了两周还没到，太慢了",
    "complaint_angry": "太离谱了！这是什么服务！|再不处理我就投诉到消协|骗子！退钱！",
    "human_agent": "转人工|我要找人工客服|能让真人来处理吗",
    "chitchat": "你是机器人吗|今天天气不错",
    "out_of_scope": "你们招聘吗|能帮我写个作业吗|附近有什么好吃的",
    "gift_card": "礼品卡怎么用？|礼品卡余额在哪里查|买的礼品卡可以送朋友吗|礼品卡能和优惠券一起用吗|"
    "礼品卡过期了还能用吗",
    "trade_in": "以旧换新怎么参加？|旧手机可以抵扣多少钱|以旧换新的旧机要寄回吗|旧耳机能回收吗",
    "live_coupon": "直播间优惠券怎么领？|直播间的券结账时用不了|直播间优惠券能叠加吗|双十一直播间什么时候发券",
}
_QUESTIONS_EN = {
    "greeting": "Hi|Hello, anyone there?|Hi there",
    "goodbye": "Thanks, bye|That's all, thank you|Great, thanks!",
    "order_status": "Where is my order?|Can you check my order status?|My order from last week hasn't shipped|"
    "What's the status of the order for <PERSON_1>?",
    "shipping_delivery": "When will the parcel arrive?|Do you ship with SF Express?|Tracking hasn't updated for days|"
    "Can you deliver to my office instead?",
    "payment_invoice": "How do I get an invoice?|Can I get a VAT invoice?|My payment failed, what should I do?|"
    "The invoice has the wrong company name",
    "account_profile": "How do I change my address?|Please update my email to <EMAIL_ADDRESS_1>|"
    "How many points do I have?",
    "cancel_order": "I want to cancel my order|Can I cancel the order I just placed?",
    "change_order": "Can I change the colour on my order?|Can I change the address after ordering?",
    "exchange": "Can I exchange it for another size?|Can I swap it for a different colour?",
    "return_refund": "I'd like to return this|When will I get my refund?|How do I start a return?",
    "product_inquiry": "How good is the noise cancelling on these earbuds?|Does the robot vacuum also mop?|"
    "Is this watch waterproof?|What's the capacity of the air fryer?",
    "product_recommendation": "Which earbuds are good for running?|What's a good gift for my dad?|"
    "Recommend a watch under 1000 yuan",
    "purchase": "I'll take it|Great, how do I order this one?|If I order now, will it ship today?",
    "complaint": "The item arrived scratched, I'm disappointed|The courier was really rude|"
    "An item is missing from my parcel|Two weeks and still nothing, this is too slow",
    "complaint_angry": "This is ridiculous! Worst service ever!|Unacceptable, I want my money back now|"
    "This is a scam, refund me!",
    "human_agent": "I want to talk to a human|Get me a real person please|Transfer me to an agent",
    "chitchat": "Are you a bot?|Nice weather today",
    "out_of_scope": "Are you hiring?|Can you help with my homework?|Any good restaurants nearby?",
    "gift_card": "How do I use a gift card?|Where can I check my gift card balance?|"
    "Can I send a gift card to a friend?|Can I combine a gift card with a coupon?|Does the gift card expire?",
    "trade_in": "How does the trade-in work?|How much will I get for my old phone?|"
    "Do I need to mail my old device for trade-in?|Do you take old earbuds for trade-in?",
    "live_coupon": "How do I get the live-stream coupon?|The live-stream coupon won't apply at checkout|"
    "Can live-stream coupons be stacked?|When is the 11.11 live-stream coupon drop?",
}


class Step(NamedTuple):
    """One planned customer turn: what the customer wants and how the agent fares with it."""

    intent: str
    mode: str = "sure"
    """``sure``, ``unsure``, ``oos`` (sure it is out of scope), ``miss`` (no knowledge) or ``handoff``."""
    emotion: str = "calm"
    pool: str | None = None
    """Question pool; defaults to the intent's."""
    reason: str | None = None
    """Why a ``handoff`` step escalates."""


class Plan(NamedTuple):
    """Who talks, where and when, and the planned turns."""

    customer_id: str
    lang: str
    """``zh`` or ``en``: the language of the questions."""
    channel: str
    start: datetime
    steps: list[Step]


def render(
    rng: random.Random, conversation: Plan, *, llm_down: tuple[datetime, datetime]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Play a planned conversation: its ``turn_audit`` rows, and its ``conversation_log`` row folded from them.

    Args:
        rng: The source of confidences, latencies, wording and timing.
        conversation: The plan.
        llm_down: An LLM outage (start, end): turns in it that needed the LLM fall back to rules.

    Returns:
        The turn rows (no ``conversation_id`` yet) and the log row (no ``conversation_id`` or ``satisfaction``).
    """
    state, at, unsure_streak = "welcome", conversation.start, 0
    lang = conversation.lang
    turns: list[dict[str, Any]] = []
    for step in conversation.steps:
        sure = step.mode not in ("unsure",)
        unsure_streak = 0 if sure and step.mode != "oos" else unsure_streak + 1
        escalate = step.mode == "handoff"
        target = _target(state, step.intent, sure=sure, escalate=escalate)
        confidence, stage, decision = _decision(rng, step)
        route, calls, fallback, tools = "rules", 1 if stage == "llm" else 0, None, list(_TOOLS.get(step.intent, ()))
        if escalate:
            fallback, tools = f"handoff: {step.reason}", ["request_human"]
        elif not sure:
            tools = []
            fallback = (
                "offered a human after repeated unsure turns" if unsure_streak >= 3 else "unsure: clarifying question"
            )
        elif step.mode == "miss":
            fallback, tools = (
                f"knowledge: best passage scored {rng.uniform(0.12, 0.34):.2f} < 0.35",
                ["search_knowledge"],
            )
        elif step.intent in _QUESTION_INTENTS or step.intent in ("product_recommendation", "purchase"):
            route, calls = ("llm", calls + 1) if rng.random() < 0.85 else ("rules", calls)
        if llm_down[0] <= at < llm_down[1] and calls:
            if stage == "llm":
                stage, decision = "classifier:llm-down", decision.split("; LLM chose")[0] + "; LLM down"
            route, calls = "rules", 1
            fallback = fallback or "LLM down: rule-based reply"
        latency = (
            rng.uniform(25, 120)
            + (rng.uniform(120, 400) if tools else 0)
            + sum(rng.lognormvariate(7.0, 0.35) for _ in range(calls if route == "llm" or stage == "llm" else 0))
        )
        pool = (_QUESTIONS_ZH if lang == "zh" else _QUESTIONS_EN)[step.pool or step.intent].split("|")
        turns.append(
            {
                "customer_id": conversation.customer_id,
                "created_at": at,
                "intent": step.intent,
                "confidence": confidence,
                "stage": stage,
                "thresholds": _THRESHOLDS,
                "decision": decision,
                "fallback": fallback,
                "emotion": step.emotion,
                "state": target,
                "events": _events(state, target, step.intent, sure=sure),
                "tools": tools,
                "route": route,
                "llm_calls": calls,
                "latency_ms": round(latency, 1),
                "channel": conversation.channel,
                "question": rng.choice(pool),
                "variant": None,
            }
        )
        state = target
        at += timedelta(seconds=rng.randint(15, 150))
        if escalate:
            break  # a human takes it from here
    return turns, _fold(conversation, turns)


def _decision(rng: random.Random, step: Step) -> tuple[float, str, str]:
    """Confidence, deciding stage and the reason, worded as ``agent.intent_engine`` words them."""
    if step.mode == "unsure":
        top, margin, llm = rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.5)
        confidence = round(rng.uniform(0.15, 0.44), 4)
        why = f"classifier {top:.2f} (margin {margin:.2f}) below accept 0.8/gap 0.3"
        reason = f"{why}; LLM chose {step.intent} at {llm:.2f}; {confidence:.2f} < unsure_below 0.45: unsure"
        return confidence, "llm", reason
    if step.mode != "handoff" and rng.random() < 0.2:
        top, margin, llm = rng.uniform(0.45, 0.79), rng.uniform(0.02, 0.29), rng.uniform(0.7, 0.98)
        confidence = round((top + llm) / 2, 4)
        why = f"classifier {top:.2f} (margin {margin:.2f}) below accept 0.8/gap 0.3"
        return confidence, "llm", f"{why}; LLM chose {step.intent} at {llm:.2f}"
    confidence = round(rng.uniform(0.82, 1.0), 4)
    margin = rng.uniform(0.6, confidence)
    return confidence, "classifier", f"classifier {confidence:.2f} >= accept 0.8, margin {margin:.2f} >= 0.3"


def _target(state: str, intent: str, *, sure: bool, escalate: bool) -> str:
    """Where the turn leaves the dialogue (``agent.machine.target_state``, which core cannot import)."""
    if escalate:
        return "handoff"
    if state == "handoff":
        return "end" if sure and intent == "goodbye" else state
    if not sure:
        return "need_confirm"
    if intent == "goodbye":
        return "end"
    if intent == "purchase":
        return "close_deal"
    if intent == "product_recommendation":
        return "recommend"
    if intent in _QUESTION_INTENTS:
        return "answer"
    return "need_confirm" if state == "welcome" else state


_EDGES: dict[str, dict[str, str]] = {
    "welcome": {"need_confirm": "customer_says"},
    "need_confirm": {"recommend": "purchase_confirmed", "answer": "asks"},
    "recommend": {"close_deal": "buying_signal", "need_confirm": "intent_unclear"},
    "answer": {"need_confirm": "intent_unclear"},
    "close_deal": {"need_confirm": "intent_unclear"},
}
_LOOPS = {
    "need_confirm": "intent_unclear",
    "answer": "asks",
    "recommend": "purchase_confirmed",
    "close_deal": "buying_signal",
}


def _events(state: str, target: str, intent: str, *, sure: bool) -> list[str]:
    """The machine events from ``state`` to ``target``, shortest path first (as ``plan_events`` sends them)."""
    if target in ("handoff", "end"):
        return ["escalate" if target == "handoff" else "finish"] if state != target else []
    if state == target:
        loop = _LOOPS.get(state)
        looping = (not sure) if state == "need_confirm" else sure and _serves(state, intent)
        return [loop] if loop and looping else []
    paths, frontier = {state: list[str]()}, [state]
    while frontier and target not in paths:
        node = frontier.pop(0)
        for dest, event in _EDGES.get(node, {}).items():
            if dest not in paths:
                paths[dest] = [*paths[node], event]
                frontier.append(dest)
    return paths.get(target, [])


def _serves(state: str, intent: str) -> bool:
    return {"answer": intent in _QUESTION_INTENTS, "recommend": intent == "product_recommendation"}.get(
        state, intent == "purchase"
    )


def _fold(conversation: Plan, turns: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``conversation_log`` row, folded from the turns as ``SqlStore.record_turn`` folds real ones."""
    handoff = next((t["fallback"] for t in turns if t["state"] == "handoff"), None)
    return {
        "customer_id": conversation.customer_id,
        "channel": conversation.channel,
        "lang": conversation.lang,
        "started_at": turns[0]["created_at"],
        "last_at": turns[-1]["created_at"],
        "turns": len(turns),
        "intents": dict(Counter(t["intent"] for t in turns)),
        "negative_turns": sum(t["emotion"] in ("dissatisfied", "angry") for t in turns),
        "fallback_turns": sum(t["fallback"] is not None for t in turns),
        "handoff_reason": handoff.removeprefix("handoff: ") if handoff else None,
        "reached_close_deal": any(t["state"] == "close_deal" for t in turns),
        "variant": None,
        "seeded": True,
    }
