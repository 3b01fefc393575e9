"""The demo shop's service history: two years of conversations with planted, documented signal.

``core.seed.seed`` calls ``service_history`` after it has generated the orders, with a
``random.Random(seed_value + 1)`` of its own, so the history changes no existing row. It writes one
``conversation_log`` row per conversation (``seeded=True``, no text) for the generated customers
(C0003 onwards; the hand-written demo customers start with a clean log) and ``turn_audit`` rows,
one per turn, for the conversations of the last ``TURN_DAYS`` days, so the dashboard has per-turn data.
This module plans who talks to the shop, when and about what; ``core.history_turns`` plays each plan
into the rows, worded the way the agent writes its own.

What is planted, all of it probabilistic (docs/insights.md, "The demo data's signal", says why):

- pre-purchase: before ``PRE_PURCHASE_SHARE`` of the orders, 0-3 days earlier, a conversation about
  products, reaching ``close_deal`` in ``CLOSE_DEAL_SHARE`` of them;
- churn precursors: 1-20 days after an order, a complaint or return conversation with negative turns,
  sometimes handed to a human and rated 1-2, with ``PRECURSOR_IF_LAPSING`` when no order follows
  within 30 days of it and only ``PRECURSOR_IF_BUYING`` when one does;
- noise on both sides: product browsing with no order (``BROWSE_PER_YEAR``), order-status and
  return conversations after orders, and greetings, invoices and account questions at random times;
- drift: questions about topics the classifier was never taught (gift cards, trade-in, live-stream
  coupons) trickle in and then rise over the last ``len(DRIFT_RAMP)`` days until both drift alerts fire.

Example:
    >>> import random
    >>> from datetime import datetime
    >>> now = datetime(2026, 11, 1, 12)
    >>> customers = [HistoryCustomer("C0003", "zh", datetime(2025, 1, 5))]
    >>> orders = [{"customer_id": "C0003", "created_at": datetime(2026, 3, 1), "status": "delivered"}]
    >>> history = service_history(random.Random(1), customers, orders, now=now)
    >>> all(row["seeded"] and row["customer_id"] == "C0003" for row in history.conversations)
    True

"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from core.history_turns import Plan, Step, render

__all__ = [
    "BACKGROUND_PER_YEAR",
    "BROWSE_PER_YEAR",
    "CLOSE_DEAL_SHARE",
    "DRIFT_RAMP",
    "PRECURSOR_IF_BUYING",
    "PRECURSOR_IF_LAPSING",
    "PRE_PURCHASE_SHARE",
    "RATED_SHARE",
    "TURN_DAYS",
    "HistoryCustomer",
    "ServiceHistory",
    "service_history",
]

PRE_PURCHASE_SHARE = 0.55
"""Share of orders preceded, 0-3 days earlier, by a conversation about products (the repurchase signal)."""
CLOSE_DEAL_SHARE = 0.5
"""Share of pre-purchase conversations that reach ``close_deal`` (a buying signal in the chat)."""
BROWSE_PER_YEAR = 1.2
"""Product conversations per customer and year that no order is planned after (noise on the signal)."""
PRECURSOR_IF_LAPSING = 0.32
"""Chance of a complaint or return conversation 1-20 days after an order when no order follows it within 30 days."""
PRECURSOR_IF_BUYING = 0.05
"""The same chance when the customer does order again within 30 days (noise: loyal customers complain too)."""
PRECURSOR_HANDOFF_SHARE = 0.45
"""Share of churn-precursor conversations handed to a human (anger, or the customer asks for one)."""
SERVICE_SHARE = 0.35
"""Share of shipped orders followed, 1-6 days later, by an order-status or delivery question."""
RETURN_CHAT_SHARE = 0.6
"""Share of returned or refunded orders with a calm conversation about the return."""
BACKGROUND_PER_YEAR = 1.5
"""Other conversations per customer and year at random times: greetings, invoices, account, delivery."""
UNSURE_SHARE = 0.08
"""Share of ordinary turns the classifier is unsure about (confidence below 0.45: a clarifying question)."""
RATED_SHARE = 0.4
"""Share of conversations the customer rated (1-5)."""
TURN_DAYS = 30
"""Turn-level audit rows are written for the conversations of this many days before the reference date."""
DRIFT_RAMP: tuple[tuple[float, float], ...] = (
    (0.10, 0.0),
    (0.14, 0.0),
    (0.19, 0.0),
    (0.24, 0.0),
    (0.30, 0.0),
    (0.36, 0.37),
    (0.42, 0.40),
)
"""For each of the last days (oldest first): the least share of unknown turns (out of scope or unsure)
and of low-confidence turns; conversations about new topics are added until the day reaches both."""

_NEW_TOPIC_TRICKLE = 0.25
"""Chance per day, before the ramp, of one conversation about a new topic (the drift starts small)."""
_WINDOW = timedelta(days=730)
_YEAR_S = 365 * 86_400
_HOUR_WEIGHTS = (1, 1, 0, 0, 0, 0, 1, 2, 4, 6, 8, 8, 7, 6, 6, 6, 6, 6, 6, 7, 9, 10, 8, 4)
_CHANNEL_HABITS = {"zh": (("wechat", 45), ("app", 35), ("web", 20)), "en": (("web", 50), ("app", 40), ("wechat", 10))}
_LLM_OUTAGE = (timedelta(days=16, hours=22), timedelta(hours=3))
"""A three-hour LLM outage (start before the reference date, length): those turns fall back to rules."""
_RETURNED = frozenset({"return_requested", "returned", "refunded"})
_SHIPPED = frozenset({"shipped", "delivered"}) | _RETURNED
_HANDOFF_REASONS = (
    ("customer is angry (1 dissatisfied in a row)", "angry"),
    ("customer is angry (2 dissatisfied in a row)", "angry"),
    ("customer is dissatisfied (3 dissatisfied in a row)", "dissatisfied"),
    ("customer asked for a human", "dissatisfied"),
)
_NEAREST_INTENT = {"gift_card": "payment_invoice", "trade_in": "exchange", "live_coupon": "purchase"}
"""What the classifier, unsure, takes a new topic for."""

_NEW_TOPICS = ("gift_card", "trade_in", "live_coupon")


class HistoryCustomer(NamedTuple):
    """What the history needs to know of a customer."""

    id: str
    lang: str
    """``zh`` or ``en``: the language of their questions."""
    created_at: datetime


@dataclass(frozen=True)
class ServiceHistory:
    """Rows to insert: ``conversation_log`` rows and the ``turn_audit`` rows of the last ``TURN_DAYS`` days."""

    conversations: list[dict[str, Any]]
    turns: list[dict[str, Any]]


@dataclass
class _Conversation:
    customer: HistoryCustomer
    start: datetime
    steps: list[Step]
    channel: str
    log: dict[str, Any] = field(default_factory=dict)
    turns: list[dict[str, Any]] = field(default_factory=list)

    def play(self, rng: random.Random, now: datetime) -> None:
        """Render the turns and the log row, and rate it (or not) the way this customer felt."""
        plan = Plan(self.customer.id, self.customer.lang, self.channel, self.start, self.steps)
        outage = now - _LLM_OUTAGE[0]
        self.turns, log = render(rng, plan, llm_down=(outage, outage + _LLM_OUTAGE[1]))
        unhappy = bool(log["negative_turns"] or log["handoff_reason"])
        unsure = any((t["fallback"] or "").startswith(("unsure", "offered")) for t in self.turns)
        self.log = {**log, "satisfaction": _rating(rng, unhappy=unhappy, unsure=unsure)}


def service_history(
    rng: random.Random, customers: Sequence[HistoryCustomer], orders: Sequence[Mapping[str, Any]], *, now: datetime
) -> ServiceHistory:
    """Generate the service history of ``customers`` around their ``orders``, up to ``now``.

    Args:
        rng: The only source of randomness: the same state gives the same rows.
        customers: Whose history to write; orders of other customers are ignored.
        orders: Order rows (``customer_id``, ``created_at``, ``status``), as ``seed`` writes them.
        now: The reference date: nothing is dated after it, turns are written for the last ``TURN_DAYS`` days.

    Returns:
        The rows, conversation ids ``seed-<customer>-<n>`` numbered per customer in time order.
    """
    placed: dict[str, list[tuple[datetime, str]]] = {c.id: [] for c in customers}
    for order in orders:
        if order["customer_id"] in placed:
            placed[order["customer_id"]].append((order["created_at"], order["status"]))
    conversations: list[_Conversation] = []
    for customer in customers:
        habit = _pick(rng, _CHANNEL_HABITS.get(customer.lang, _CHANNEL_HABITS["en"]))
        for start, steps in _customer_plan(rng, customer, sorted(placed[customer.id]), now):
            conversations.append(_Conversation(customer, start, steps, _channel(rng, habit)))
    conversations.sort(key=lambda c: (c.start, c.customer.id))
    for conversation in conversations:
        conversation.play(rng, now)
    conversations += _drift(rng, conversations, customers, now)
    return _finish(conversations, now)


def _customer_plan(
    rng: random.Random, customer: HistoryCustomer, placed: list[tuple[datetime, str]], now: datetime
) -> list[tuple[datetime, list[Step]]]:
    """When this customer talked to the shop and what about, grounded in their order timeline."""
    plan: list[tuple[datetime, list[Step]]] = []
    times = [created for created, _status in placed]
    first = max(customer.created_at, now - _WINDOW)
    for created, status in placed:
        if rng.random() < PRE_PURCHASE_SHARE:
            plan.append((created - timedelta(seconds=rng.randint(600, 3 * 86_400)), _shopping(rng, closes=True)))
        if status in _SHIPPED and rng.random() < SERVICE_SHARE:
            plan.append((created + timedelta(seconds=rng.randint(86_400, 6 * 86_400)), _service(rng)))
        if status in _RETURNED and rng.random() < RETURN_CHAT_SHARE:
            plan.append((created + timedelta(seconds=rng.randint(7 * 86_400, 20 * 86_400)), _return_chat(rng)))
        moment = created + timedelta(seconds=rng.randint(86_400, 20 * 86_400))
        later = bisect.bisect_right(times, moment)
        lapsing = later == len(times) or times[later] > moment + timedelta(days=30)
        if rng.random() < (PRECURSOR_IF_LAPSING if lapsing else PRECURSOR_IF_BUYING):
            plan.append((moment, _precursor(rng)))
    latest = now - timedelta(minutes=15)
    span = max(int((latest - first).total_seconds()), 0)
    for _ in range(_poisson(rng, BROWSE_PER_YEAR * span / _YEAR_S)):
        moment = _daytime(rng, first + timedelta(seconds=rng.randint(0, span)), latest=latest)
        plan.append((moment, _shopping(rng, closes=False)))
    for _ in range(_poisson(rng, BACKGROUND_PER_YEAR * span / _YEAR_S)):
        plan.append((_daytime(rng, first + timedelta(seconds=rng.randint(0, span)), latest=latest), _background(rng)))
    return [(start, steps) for start, steps in plan if first <= start < latest]


# ------------------------------------------------------------------------------------------ scripts


def _shopping(rng: random.Random, *, closes: bool) -> list[Step]:
    """Questions about products; a buying signal in ``CLOSE_DEAL_SHARE`` of pre-purchase chats (15% of browsing)."""
    steps = [Step("greeting")] if rng.random() < 0.4 else []
    for _ in range(rng.choice((1, 1, 2))):
        steps.append(_ordinary(rng, rng.choice(("product_inquiry", "product_inquiry", "product_recommendation"))))
    if rng.random() < (CLOSE_DEAL_SHARE if closes else 0.15):
        steps.append(Step("purchase"))
    if rng.random() < 0.55:
        steps.append(Step("goodbye"))
    return steps


def _precursor(rng: random.Random) -> list[Step]:
    """A complaint or return that goes badly: negative turns, often a handoff."""
    steps = [_ordinary(rng, "order_status")] if rng.random() < 0.3 else []
    topic = rng.choice(("complaint", "complaint", "return_refund"))
    steps.append(Step(topic, emotion="dissatisfied", pool="complaint" if topic == "complaint" else None))
    if rng.random() < 0.5:
        steps.append(Step("complaint", emotion=rng.choice(("dissatisfied", "angry")), pool="complaint_angry"))
    if rng.random() < PRECURSOR_HANDOFF_SHARE:
        reason, emotion = rng.choice(_HANDOFF_REASONS)
        human = reason == "customer asked for a human"
        steps.append(
            Step(
                "human_agent" if human else "complaint",
                "handoff",
                emotion,
                None if human else "complaint_angry",
                reason,
            )
        )
    return steps


def _service(rng: random.Random) -> list[Step]:
    """A question about a shipped order."""
    steps = [_ordinary(rng, rng.choice(("order_status", "shipping_delivery")))]
    if rng.random() < 0.3:
        steps.append(_ordinary(rng, "shipping_delivery"))
    return [*steps, Step("goodbye")] if rng.random() < 0.5 else steps


def _return_chat(rng: random.Random) -> list[Step]:
    """A calm conversation about a return already under way."""
    steps = [_ordinary(rng, "return_refund")]
    if rng.random() < 0.3:
        steps.append(_ordinary(rng, rng.choice(("return_refund", "exchange"))))
    return [*steps, Step("goodbye")] if rng.random() < 0.5 else steps


def _background(rng: random.Random) -> list[Step]:
    """Everything else customers ask, at random times; a few want a human anyway."""
    intent = rng.choice(
        ("order_status", "shipping_delivery", "payment_invoice", "payment_invoice", "account_profile", "cancel_order",
         "change_order", "exchange", "chitchat", "out_of_scope")
    )  # fmt: skip
    steps = [Step("greeting")] if rng.random() < 0.5 else []
    steps.append(Step("out_of_scope", "oos") if intent == "out_of_scope" else _ordinary(rng, intent))
    if rng.random() < 0.03:
        steps.append(Step("human_agent", "handoff", "calm", None, "customer asked for a human"))
    elif rng.random() < 0.5:
        steps.append(Step("goodbye"))
    return steps


def _new_topic(rng: random.Random) -> list[Step]:
    """A question about something the classifier was never taught; the first turn is always unknown."""
    topic = rng.choice(_NEW_TOPICS)
    steps = [_unknown(rng, topic, first=True)]
    if rng.random() < 0.4:
        steps.append(_unknown(rng, topic, first=False))
    return [*steps, Step("goodbye")] if rng.random() < 0.4 else steps


def _unknown(rng: random.Random, topic: str, *, first: bool) -> Step:
    roll = rng.random()
    if roll < (0.85 if first else 0.7):
        return Step(_NEAREST_INTENT[topic], "unsure", rng.choice(("calm", "confused")), topic)
    if first or roll < 0.85:
        return Step("out_of_scope", "oos", "calm", topic)
    return Step(_NEAREST_INTENT[topic], "miss", "calm", topic)


def _ordinary(rng: random.Random, intent: str) -> Step:
    """A turn about ``intent`` that the classifier usually gets, sometimes not, and a few knowledge misses."""
    roll = rng.random()
    if roll < UNSURE_SHARE:
        return Step(intent, "unsure", rng.choice(("calm", "confused")))
    if roll < UNSURE_SHARE + 0.04 and intent in ("product_inquiry", "exchange", "payment_invoice"):
        return Step(intent, "miss")
    return Step(intent)


def _rating(rng: random.Random, *, unhappy: bool, unsure: bool) -> int | None:
    """A rating for ``RATED_SHARE`` of conversations: low after a bad experience, mostly 4-5 otherwise."""
    if rng.random() >= RATED_SHARE:
        return None
    weights = (45, 30, 15, 7, 3) if unhappy else (5, 10, 30, 35, 20) if unsure else (2, 3, 10, 35, 50)
    return rng.choices((1, 2, 3, 4, 5), weights)[0]


# ------------------------------------------------------------------------------------------ drift


def _drift(
    rng: random.Random, conversations: list[_Conversation], customers: Sequence[HistoryCustomer], now: datetime
) -> list[_Conversation]:
    """New-topic conversations: a trickle at first, then enough on each of the last days to meet ``DRIFT_RAMP``."""
    last = (now - timedelta(minutes=15)).date()
    first_ramp = last - timedelta(days=len(DRIFT_RAMP) - 1)
    counts: dict[date, list[int]] = {}  # day -> [turns, unknown, low confidence]
    for conversation in conversations:
        for turn in conversation.turns:
            _count(counts, turn)
    added: list[_Conversation] = []
    eligible = [c for c in customers if c.created_at < now - timedelta(days=TURN_DAYS)]
    day = (now - timedelta(days=TURN_DAYS)).date() + timedelta(days=1)
    while day <= last:
        unknown_target, low_target = DRIFT_RAMP[(day - first_ramp).days] if day >= first_ramp else (0.0, 0.0)
        trickle = day < first_ramp and rng.random() < _NEW_TOPIC_TRICKLE
        for _ in range(500):  # a bound; each added conversation moves the shares toward the targets
            turns, unknown, low = counts.get(day, [0, 0, 0])
            if not trickle and unknown >= unknown_target * turns and low >= low_target * turns:
                break
            trickle = False
            customer = rng.choice(eligible)
            start = _daytime(rng, datetime.combine(day, datetime.min.time()), latest=now - timedelta(minutes=15))
            habit = _pick(rng, _CHANNEL_HABITS.get(customer.lang, _CHANNEL_HABITS["en"]))
            conversation = _Conversation(customer, start, _new_topic(rng), _channel(rng, habit))
            conversation.play(rng, now)
            for turn in conversation.turns:
                _count(counts, turn)
            added.append(conversation)
        day += timedelta(days=1)
    return added


def _count(counts: dict[date, list[int]], turn: Mapping[str, Any]) -> None:
    day = counts.setdefault(turn["created_at"].date(), [0, 0, 0])
    day[0] += 1
    day[1] += turn["intent"] == "out_of_scope" or (turn["fallback"] or "").startswith(("unsure", "offered"))
    day[2] += turn["confidence"] < 0.45


def _finish(conversations: list[_Conversation], now: datetime) -> ServiceHistory:
    """Number the conversations per customer in time order; keep the turns of the last ``TURN_DAYS`` days."""
    conversations.sort(key=lambda c: (c.customer.id, c.start))
    since = now - timedelta(days=TURN_DAYS)
    logs: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    number: Counter[str] = Counter()
    for conversation in conversations:
        number[conversation.customer.id] += 1
        conversation_id = f"seed-{conversation.customer.id}-{number[conversation.customer.id]:03d}"
        logs.append({"conversation_id": conversation_id, **conversation.log})
        if conversation.start >= since:
            turns += [{"conversation_id": conversation_id, **turn} for turn in conversation.turns]
    turns.sort(key=lambda t: (t["created_at"], t["conversation_id"]))
    return ServiceHistory(conversations=logs, turns=turns)


# ------------------------------------------------------------------------------------------ helpers


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw by counting exponential gaps (``random`` has no Poisson)."""
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    values, weights = zip(*weighted, strict=True)
    return str(rng.choices(values, weights)[0])


def _channel(rng: random.Random, habit: str) -> str:
    """The customer's usual channel three times in four."""
    return habit if rng.random() < 0.75 else rng.choice(("web", "app", "wechat"))


def _daytime(rng: random.Random, moment: datetime, *, latest: datetime | None = None) -> datetime:
    """The same day as ``moment`` at an hour people write to a shop, never after ``latest``."""
    hour = rng.choices(range(24), _HOUR_WEIGHTS)[0]
    at = moment.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59), microsecond=0)
    if latest is not None and at > latest:
        at = latest - timedelta(seconds=rng.randint(60, 6 * 3600))
    return at
