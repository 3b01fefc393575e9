"""The human desk: handoff records with their context packet, the queue, and what agents do.

When the graph hands a conversation off (``request_human``), ``HumanDesk.escalated`` opens a
handoff with a **context packet** built from the checkpointed (redacted) conversation and its
audit trail, so the agent who picks it up never has to ask the customer again. Agents take
over (the bot goes silent), reply, write private notes, hand back to the bot or close; every
step is stored, written into the conversation (so the bot knows what the human said after a hand
back) and pushed live to the customer's channel and to every console.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from core.desk import DeskStore
from core.errors import ConflictError, ForbiddenError
from core.types import (
    AgentAccount,
    Channel,
    ConversationId,
    Customer,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Lang,
    Tier,
    TurnAudit,
)
from serving.hub import CONSOLE, EventHub, conversation_topic

if TYPE_CHECKING:
    from serving.service import KefuService

__all__ = [
    "HUMAN_PREFIX",
    "NOTICE",
    "HumanDesk",
    "context_packet",
    "message_role",
    "priority",
    "queue_item",
]

log = logging.getLogger(__name__)

HUMAN_PREFIX = "human:"
"""``AIMessage.name`` of a human agent's message: ``human:<agent id>``."""
NOTICE = "notice"
"""``AIMessage.name`` of a desk notice the customer sees ("a human agent has joined")."""

_TIER_WEIGHT = {Tier.VIP: 40, Tier.GOLD: 25, Tier.SILVER: 10, Tier.STANDARD: 0}
_EMOTION_WEIGHT = {"angry": 30, "dissatisfied": 15, "confused": 5, "calm": 0}
_NOTICES = {
    "joined": {
        Lang.ZH: "人工客服 {agent} 已加入对话。",
        Lang.EN: "A human agent, {agent}, has joined the conversation.",
    },
    "left": {
        Lang.ZH: "人工客服已离开，智能客服将继续为您服务。",
        Lang.EN: "The human agent has handed you back to the assistant.",
    },
    "closed": {
        Lang.ZH: "本次人工服务已结束，感谢您的耐心。",
        Lang.EN: "The agent has closed this conversation. Thank you.",
    },
}


def message_role(message: AnyMessage) -> str | None:
    """``customer``, ``agent`` (the bot), ``human`` or ``notice``; None for messages no one sees."""
    if isinstance(message, HumanMessage):
        return "customer"
    if not isinstance(message, AIMessage) or message.tool_calls:
        return None
    name = message.name or ""
    if name.startswith(HUMAN_PREFIX):
        return "human"
    return NOTICE if name == NOTICE else "agent"


def priority(handoff: Handoff, now: datetime | None = None) -> int:
    """Higher is more urgent: the customer's tier, their emotion, and a point per minute of waiting (max 60)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    waited = max(0.0, (now - handoff.created_at).total_seconds())
    return _TIER_WEIGHT.get(handoff.tier, 0) + _EMOTION_WEIGHT.get(handoff.emotion, 0) + min(60, int(waited // 60))


def queue_item(handoff: Handoff, now: datetime | None = None) -> dict[str, Any]:
    """What a queue row shows."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return {
        "id": handoff.id,
        "conversation_id": handoff.conversation_id,
        "customer_id": handoff.customer_id,
        "channel": handoff.channel.value,
        "status": handoff.status.value,
        "reason": handoff.reason,
        "tier": handoff.tier.value,
        "emotion": handoff.emotion,
        "priority": priority(handoff, now),
        "waiting_s": round(max(0.0, ((handoff.taken_at or now) - handoff.created_at).total_seconds()), 1),
        "agent_id": handoff.agent_id,
        "summary": str(handoff.packet.get("summary", "")),
    }


def _transcript(messages: Sequence[AnyMessage]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for message in messages:
        role = message_role(message)
        if role is not None:
            entry = {"role": role, "text": message.text}
            if role == "human":
                entry["agent"] = (message.name or "")[len(HUMAN_PREFIX) :]
            out.append(entry)
    return out


def _artifact(message: ToolMessage) -> dict[str, Any] | None:
    if isinstance(message.artifact, dict):
        return message.artifact
    try:
        value = json.loads(message.text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _looked_up(messages: Sequence[AnyMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Orders and knowledge passages the bot looked up, and every tool it used, from the tool results."""
    orders: dict[str, dict[str, Any]] = {}
    knowledge: dict[str, dict[str, Any]] = {}
    tools: list[str] = []
    for message in messages:
        if not isinstance(message, ToolMessage) or message.status == "error":
            continue
        tools.append(message.name or "")
        artifact = _artifact(message)
        if artifact is None:
            continue
        if message.name == "lookup_order" and "id" in artifact:
            orders[str(artifact["id"])] = _order_line(artifact)
        elif message.name == "list_recent_orders":
            for order in artifact.get("orders") or []:
                if isinstance(order, dict) and "id" in order:
                    orders.setdefault(str(order["id"]), _order_line(order))
        elif message.name == "search_knowledge":
            for passage in artifact.get("passages") or []:
                if isinstance(passage, dict) and "id" in passage:
                    knowledge[str(passage["id"])] = {
                        "id": passage["id"],
                        "title": passage.get("title", ""),
                        "score": passage.get("score"),
                    }
    return list(orders.values()), list(knowledge.values()), sorted(set(tools))


def _order_line(order: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "status", "total", "carrier", "tracking_number", "estimated_delivery", "created_at")
    return {key: order.get(key) for key in keys if key in order}


def context_packet(
    values: dict[str, Any],
    audits: Sequence[TurnAudit],
    customer: Customer,
    channel: Channel,
    reason: str,
) -> dict[str, Any]:
    """Everything an agent needs to go on without asking the customer again, all of it redacted.

    ``values`` is the conversation's checkpointed state (its messages are already redacted);
    ``audits`` its turn audit trail.
    """
    messages: list[AnyMessage] = list(values.get("messages", []))
    lang = Lang(values.get("lang") or customer.lang.value)
    orders, knowledge, tools = _looked_up(messages)
    intents = [
        {
            "at": audit.created_at.isoformat(timespec="seconds"),
            "intent": audit.intent,
            "confidence": audit.confidence,
            "stage": audit.stage,
            "emotion": audit.emotion,
            "state": audit.state,
        }
        for audit in audits
    ]
    topics = [audit.intent for audit in audits if audit.intent not in ("greeting", "human_agent", "chitchat")]
    emotion = values.get("emotion", "calm")
    customer_lines = [str(m.text) for m in messages if isinstance(m, HumanMessage)]
    summary = _summary(lang, customer, channel, reason, topics, orders, emotion, customer_lines)
    return {
        "summary": summary,
        "lang": lang.value,
        "customer": {"id": customer.id, "tier": customer.tier.value, "lang": customer.lang.value},
        "channel": channel.value,
        "reason": reason,
        "intents": intents,
        "emotions": [audit.emotion for audit in audits],
        "slots": {**dict(values.get("slots") or {}), "order_ids": list(values.get("order_ids") or [])},
        "orders": orders,
        "knowledge": knowledge,
        "tools": tools,
        "confidence_trail": [
            {"intent": audit.intent, "confidence": audit.confidence, "route": audit.route, "fallback": audit.fallback}
            for audit in audits
        ],
        "transcript": _transcript(messages),
    }


def _summary(
    lang: Lang,
    customer: Customer,
    channel: Channel,
    reason: str,
    topics: list[str],
    orders: list[dict[str, Any]],
    emotion: str,
    customer_lines: list[str],
) -> str:
    topic = ", ".join(dict.fromkeys(topics)) or ("无明确主题" if lang is Lang.ZH else "no clear topic")
    order_text = ", ".join(f"{o.get('id')} ({o.get('status', '?')})" for o in orders[:3])
    last = customer_lines[-2] if len(customer_lines) >= 2 else (customer_lines[-1] if customer_lines else "")
    if lang is Lang.ZH:
        parts = [
            f"{customer.tier.value} 客户 {customer.id}（{channel.value}）转人工：{reason}。",
            f"话题：{topic}。",
            f"已查订单：{order_text}。" if order_text else "",
            f"情绪：{emotion}。",
            f"客户说：“{last[:120]}”" if last else "",
        ]
        return "".join(parts)
    parts = [
        f"{customer.tier.value} customer {customer.id} ({channel.value}) handed off: {reason}.",
        f"Topics: {topic}.",
        f"Orders looked up: {order_text}." if order_text else "",
        f"Emotion: {emotion}.",
        f'Customer said: "{last[:120]}"' if last else "",
    ]
    return " ".join(p for p in parts if p)


class HumanDesk:
    """Handoffs and agents' actions on them, for the service and the console."""

    def __init__(self, service: KefuService, store: DeskStore, hub: EventHub) -> None:
        self.service = service
        self.store = store
        self.hub = hub
        self.outbound: dict[Channel, Callable[[str, str, str], None]] = {}

    # -- from the bot -----------------------------------------------------------------------
    def escalated(self, conversation_id: str, customer: Customer, channel: Channel, values: dict[str, Any]) -> Handoff:
        """Open (or refresh) the handoff of a conversation the bot just handed off."""
        audits = self.service.store.turn_audits(ConversationId(conversation_id))
        reason = str(values.get("escalate_reason") or "handoff")
        ticket_id = None
        for message in reversed(values.get("messages", [])):
            if isinstance(message, ToolMessage) and message.name == "request_human":
                artifact = _artifact(message)
                ticket_id = artifact.get("id") if artifact else None
                break
        handoff = self.store.open_handoff(
            conversation_id=ConversationId(conversation_id),
            customer_id=customer.id,
            channel=channel,
            ticket_id=ticket_id,
            reason=reason,
            tier=customer.tier,
            emotion=str(values.get("emotion", "calm")),
            packet=context_packet(values, audits, customer, channel, reason),
        )
        log.info("handoff opened", extra={"handoff_id": handoff.id, "conversation_id": conversation_id})
        self.service.metrics.handoffs.inc()
        self.service.cluster.handoffs.waiting(handoff)
        self.publish_queue()
        return handoff

    def customer_wrote(self, handoff: Handoff, redacted_text: str) -> None:
        """A customer message in a conversation a human owns: straight to the consoles."""
        self.hub.publish(
            CONSOLE,
            {
                "type": "customer_message",
                "handoff_id": handoff.id,
                "conversation_id": handoff.conversation_id,
                "text": redacted_text,
                "agent_id": handoff.agent_id,
            },
        )

    # -- for the console --------------------------------------------------------------------
    def queue(self) -> list[dict[str, Any]]:
        """Open handoffs, most urgent first (waiting ones before those already taken)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        items = [queue_item(h, now) for h in self.store.list_handoffs()]
        return sorted(items, key=lambda i: (i["status"] != HandoffStatus.WAITING.value, -i["priority"], i["id"]))

    def publish_queue(self) -> None:
        """Push the current queue to every console."""
        self.hub.publish(CONSOLE, {"type": "queue", "items": self.queue()})

    def detail(self, handoff_id: int) -> dict[str, Any]:
        """One handoff: its queue row, context packet, notes and the live (redacted) transcript."""
        handoff = self.store.get_handoff(handoff_id)
        values = self.service.state_values(handoff.conversation_id)
        return {
            **queue_item(handoff),
            "packet": handoff.packet,
            "notes": [note.model_dump(mode="json") for note in handoff.notes],
            "transcript": _transcript(values.get("messages", [])),
        }

    def personal_data(self, handoff_id: int) -> dict[str, Any]:
        """The real values behind the placeholders of a handoff's conversation, placeholder order.

        Only for roles allowed to see them: the caller checks the role and audits the view.
        Values past the vault's retention are gone and not listed.
        """
        handoff = self.store.get_handoff(handoff_id)
        entries = self.service.vault.entries(handoff.conversation_id)
        return {
            "id": handoff.id,
            "conversation_id": handoff.conversation_id,
            "values": [{"placeholder": key, "value": entries[key]} for key in sorted(entries)],
        }

    def take(self, handoff_id: int, agent: AgentAccount) -> Handoff:
        """The agent owns the conversation from now; the bot is silent and the customer is told."""
        handoff = self.store.take_handoff(handoff_id, agent.id)
        self.service.cluster.handoffs.gone(handoff.id)
        lang = self._lang(handoff)
        notice = _NOTICES["joined"][lang].format(agent=agent.name)
        self.service.write_desk_message(
            handoff.conversation_id,
            AIMessage(content=notice, name=NOTICE),
            {"human": agent.id},
        )
        self._tell_customer(handoff, {"type": "human_joined", "agent": agent.name, "text": notice}, notice)
        self.publish_queue()
        return handoff

    def reply(self, handoff_id: int, agent: AgentAccount, text: str) -> None:
        """Send the customer a message from the agent who owns the conversation.

        Raises:
            ConflictError: the conversation is not taken by this agent.
        """
        handoff = self._owned(handoff_id, agent)
        redacted = self.service.write_human_message(handoff.conversation_id, agent.id, text)
        self._tell_customer(handoff, {"type": "human_message", "agent": agent.name, "text": text}, text)
        self.hub.publish(
            CONSOLE,
            {
                "type": "agent_message",
                "handoff_id": handoff.id,
                "conversation_id": handoff.conversation_id,
                "agent_id": agent.id,
                "text": redacted,
            },
        )

    def note(self, handoff_id: int, agent: AgentAccount, text: str) -> HandoffNote:
        """A private note; the customer never sees it."""
        note = self.store.add_note(handoff_id, agent.id, text)
        self.hub.publish(CONSOLE, {"type": "note", "handoff_id": handoff_id, "note": note.model_dump(mode="json")})
        return note

    def release(self, handoff_id: int, agent: AgentAccount) -> Handoff:
        """Hand the conversation back to the bot, which goes on from ``need_confirm`` with the whole history."""
        handoff = self.store.end_handoff(handoff_id, agent.id, HandoffStatus.RETURNED)
        self.service.cluster.handoffs.gone(handoff.id)
        notice = _NOTICES["left"][self._lang(handoff)]
        self.service.write_desk_message(
            handoff.conversation_id,
            AIMessage(content=notice, name=NOTICE),
            {
                "human": "",
                "dialogue_state": "need_confirm",
                "escalate": False,
                "escalate_reason": "",
                "offered_human": False,
                "unsure_streak": 0,
                "dissatisfied_streak": 0,
            },
        )
        self._tell_customer(handoff, {"type": "human_left", "text": notice}, notice)
        self.publish_queue()
        return handoff

    def close(self, handoff_id: int, agent: AgentAccount) -> Handoff:
        """End the conversation; a later message starts a fresh session with the bot."""
        handoff = self.store.end_handoff(handoff_id, agent.id, HandoffStatus.CLOSED)
        self.service.cluster.handoffs.gone(handoff.id)
        notice = _NOTICES["closed"][self._lang(handoff)]
        self.service.write_desk_message(
            handoff.conversation_id,
            AIMessage(content=notice, name=NOTICE),
            {"human": "", "dialogue_state": "end", "escalate": False, "escalate_reason": "", "offered_human": False},
        )
        self._tell_customer(handoff, {"type": "closed", "text": notice}, notice)
        self.publish_queue()
        return handoff

    def _owned(self, handoff_id: int, agent: AgentAccount) -> Handoff:
        handoff = self.store.get_handoff(handoff_id)
        if handoff.status is not HandoffStatus.ACTIVE:
            raise ConflictError(f"handoff {handoff_id} is {handoff.status.value}: take it over first")
        if handoff.agent_id != agent.id:
            raise ForbiddenError(f"handoff {handoff_id} belongs to {handoff.agent_id}")
        return handoff

    def _lang(self, handoff: Handoff) -> Lang:
        return Lang(str(handoff.packet.get("lang") or "zh"))

    def _tell_customer(self, handoff: Handoff, event: dict[str, Any], text: str) -> None:
        """Live event to the customer's sockets and streams; channels without them (WeChat) get a message."""
        self.hub.publish(conversation_topic(handoff.conversation_id), event)
        send = self.outbound.get(handoff.channel)
        if send is not None:
            try:
                send(handoff.conversation_id, handoff.customer_id, text)
            except Exception:  # one channel's outage must not undo the agent's action; the log says so
                log.exception("could not deliver a desk message", extra={"handoff_id": handoff.id})
