"""The support graph: redact → understand → decide → act → respond → guard.

One customer message is one run of this graph, checkpointed per conversation (``thread_id`` is
the conversation id). The LLM is called at most twice on the common path (intent when the model
is up, and the reply for questions); greetings, clarifications, handoffs and every degraded turn
are answered from templates with real tool results.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolCall, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime

from agent.emotion import Emotion, detect_emotion
from agent.intent_engine import IntentEngine
from agent.llm import LlmGateway, LlmUnavailable
from agent.machine import PURCHASE_INTENTS, QUESTION_INTENTS, DialogueMachine, DialogueState, Intent, TurnFacts
from agent.machine import plan_events as plan_machine_events
from agent.offers import Offer
from agent.pii import PiiRedactor, mask
from agent.policy import Policy
from agent.replies import (
    ToolResult,
    clarify,
    clarify_choice,
    compose,
    fact_lines,
    handoff_waiting,
    not_sure,
    offer_human,
    passages_of,
    status_label,
)
from agent.slots import CatalogMatcher, extract_slots
from agent.toolcalls import parse_tool_calls, strip_tool_text
from agent.understanding import asks_for_human, detect_lang, is_affirmative
from core.context import SupportContext
from core.errors import ConfigError
from core.types import Lang, Tier
from graphs.privacy import PrivateTools, conversation_vault
from graphs.state import SupportState
from insights.experiments import Experiments
from prompts import load_prompt
from tools import ToolRegistry, explain

__all__ = ["AgentDeps", "build_graph", "warm_up"]

log = logging.getLogger(__name__)

_HISTORY_TURNS = 6
_ORDER_INTENTS = frozenset(
    {
        Intent.ORDER_STATUS,
        Intent.SHIPPING_DELIVERY,
        Intent.CANCEL_ORDER,
        Intent.CHANGE_ORDER,
        Intent.RETURN_REFUND,
        Intent.EXCHANGE,
        Intent.PAYMENT_INVOICE,
        Intent.COMPLAINT,
    }
)
_TICKETED = {
    Intent.CANCEL_ORDER: ("general", "Cancellation"),
    Intent.CHANGE_ORDER: ("general", "Order change"),
    Intent.RETURN_REFUND: ("return", "Return/refund"),
    Intent.EXCHANGE: ("return", "Exchange"),
}
"""Intents that need a person to act on the order: the agent opens a ticket with the order numbers."""
_MAX_TOOL_ROUNDS = 1
_POLICY_INTENTS = frozenset(
    {
        Intent.RETURN_REFUND,
        Intent.EXCHANGE,
        Intent.SHIPPING_DELIVERY,
        Intent.PAYMENT_INVOICE,
        Intent.ACCOUNT_PROFILE,
        Intent.CANCEL_ORDER,
        Intent.CHANGE_ORDER,
    }
)
"""Intents whose general questions ("how long do refunds take?") are answered from the policy documents."""
_QUESTION = re.compile(
    r"[?？]|\b(how|what|when|which|why|can i|could i|do you|does|is there|are there|policy|rules?)\b"
    r"|吗|嘛|怎么|怎样|如何|多久|多长|几天|哪些|什么|能不能|可不可以|是否|政策|规则|规定",
    re.IGNORECASE,
)
_GENERAL = re.compile(
    r"\b(policy|policies|rules?|in general|usually|generally)\b|政策|规则|规定|一般|通常", re.IGNORECASE
)
_MINE = re.compile(
    r"\bmy (order|package|parcel|purchase|delivery|refund|return|item)s?\b|我的(订单|包裹|快递|退款|货)|我买的|我下的",
    re.IGNORECASE,
)
_COMPARE = re.compile(
    r"compare|comparison|difference|differ|versus|\bvs\.?|\bor the\b|better|对比|比较|区别|差别|不同|哪个好|哪款|还是",
    re.IGNORECASE,
)


def _asks_policy(text: str, known_orders: bool) -> bool:
    """A general question about the rules rather than about one of the customer's orders."""
    if _GENERAL.search(text):
        return True
    return not known_orders and bool(_QUESTION.search(text)) and not _MINE.search(text)


@dataclass(frozen=True)
class AgentDeps:
    """What the graph is built from; per-session dependencies arrive in ``SupportContext``."""

    llm: LlmGateway | None
    """None runs on rules only."""
    intents: IntentEngine
    redactor: PiiRedactor
    tools: ToolRegistry
    catalog: CatalogMatcher | None = None
    experiments: Experiments | None = None
    """A/B variants a turn may run under (``SupportContext.variant``): their reply prompt and policy overrides."""

    @property
    def policy(self) -> Policy:
        """The confidence policy the intent engine applies."""
        return self.intents.policy


@dataclass(frozen=True)
class _Arm:
    """What one turn runs under: the policy (with a variant's overrides), its intent engine, the reply prompt."""

    policy: Policy
    intents: IntentEngine
    respond_prompt: str = "respond"


def _arms(deps: AgentDeps) -> dict[str, _Arm]:
    """Every experiment variant's arm, by ``experiment:variant`` label, checked once when the graph is built.

    Raises:
        ConfigError: a variant's policy overrides that the policy refuses, naming the file and variant.
    """
    arms: dict[str, _Arm] = {}
    for label, variant in deps.experiments.labelled() if deps.experiments is not None else ():
        try:
            policy = deps.policy.with_overrides(variant.policy)
        except ConfigError as exc:
            source = deps.experiments.source if deps.experiments is not None else ""
            raise ConfigError(f"experiments file {source}: variant {label} policy: {exc}") from exc
        engine = deps.intents if policy == deps.policy else IntentEngine(deps.intents.model, deps.intents.llm, policy)
        arms[label] = _Arm(policy, engine, variant.respond_prompt)
    return arms


def build_graph(
    deps: AgentDeps, checkpointer: BaseCheckpointSaver[Any] | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the support graph with ``deps`` and a checkpointer.

    Raises:
        ConfigError: an experiment variant whose policy overrides cannot work.
    """
    nodes = _Nodes(deps)
    graph = StateGraph(SupportState, context_schema=SupportContext)
    graph.add_node("redact", nodes.redact)
    graph.add_node("understand", nodes.understand)
    graph.add_node("decide", nodes.decide)
    act = ToolNode(deps.tools.tools, handle_tool_errors=explain, wrap_tool_call=PrivateTools(deps.redactor))
    graph.add_node("act", act)
    graph.add_node("respond", nodes.respond)
    graph.add_node("guard", nodes.guard)
    graph.add_edge(START, "redact")
    graph.add_conditional_edges("redact", _after_redact, ["understand", END])
    graph.add_edge("understand", "decide")
    graph.add_conditional_edges("decide", _after_plan, ["act", "respond"])
    graph.add_edge("act", "respond")
    graph.add_conditional_edges("respond", _after_respond, ["act", "guard"])
    graph.add_edge("guard", END)
    return graph.compile(checkpointer=checkpointer)


def warm_up(deps: AgentDeps) -> None:
    """Put the static prompt prefixes (both prompts, both languages) into the server's prompt cache.

    Each later call then evaluates only its new tokens: on 2 CPU cores that is the difference
    between ~10 s and ~2 s for the first reply. Failures are ignored; turns fall back as usual.
    """
    if deps.llm is None:
        return
    options = [intent.value for intent in Intent]
    for lang in Lang:
        try:
            deps.llm.choose(
                [SystemMessage(load_prompt("understand", lang.value)), HumanMessage("hi")],
                "intent",
                options,
                warm_up=True,
            )
            deps.llm.reply(
                [SystemMessage(load_prompt("respond", lang.value)), HumanMessage("hi")],
                tools=deps.tools.tools,
                max_tokens=1,
                warm_up=True,
            )
        except LlmUnavailable as exc:
            log.warning("prompt-cache warm-up skipped: %s", exc)
            return


def _pending_calls(state: SupportState) -> bool:
    last = state["messages"][-1]
    return isinstance(last, AIMessage) and bool(last.tool_calls)


def _after_redact(state: SupportState) -> str:
    # A human agent owns the conversation: keep the (redacted) message, leave the answer to them.
    return END if state.get("human") else "understand"


def _after_plan(state: SupportState) -> Literal["act", "respond"]:
    return "act" if _pending_calls(state) else "respond"


def _after_respond(state: SupportState) -> Literal["act", "guard"]:
    return "act" if _pending_calls(state) else "guard"


def _this_turn(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """Messages after the latest customer message."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return list(messages[index + 1 :])
    return list(messages)


def _last_customer_text(messages: Sequence[AnyMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _tool_results(messages: Sequence[AnyMessage]) -> list[ToolResult]:
    results: list[ToolResult] = []
    for message in _this_turn(messages):
        if isinstance(message, ToolMessage):
            failed = message.status == "error"
            artifact = message.artifact if isinstance(message.artifact, dict) else None
            if artifact is None and not failed:
                artifact = {"text": message.text}  # a tool that returns only text (README's "Add a tool")
            results.append((message.name or "", None if failed else artifact, message.text if failed else None))
    return results


_CHANGE_WORDS = re.compile(r"change|update|new|replace|改|换|更新|新", re.IGNORECASE)
_PHONE_PLACEHOLDER = re.compile(r"<(?:CN_MOBILE|CN_LANDLINE|PHONE_NUMBER)_\d+>")
_EMAIL_PLACEHOLDER = re.compile(r"<EMAIL_ADDRESS_\d+>")


def _contact_change(text: str) -> dict[str, str]:
    """``update_contact`` arguments when the (redacted) message asks to change a phone or e-mail."""
    if not _CHANGE_WORDS.search(text):
        return {}
    phones, emails = _PHONE_PLACEHOLDER.findall(text), _EMAIL_PLACEHOLDER.findall(text)
    # The last one named is the new one: "change 138... to 139..." keeps the second.
    return {key: found[-1] for key, found in (("phone", phones), ("email", emails)) if found}


def _call(name: str, **args: Any) -> ToolCall:
    return ToolCall(name=name, args=args, id=f"plan_{name}_{zlib.crc32(json.dumps(args, sort_keys=True).encode()):08x}")


class _Nodes:
    def __init__(self, deps: AgentDeps) -> None:
        self.deps = deps
        self._default = _Arm(deps.policy, deps.intents)
        self._arms = _arms(deps)

    def _arm(self, context: SupportContext) -> _Arm:
        """The turn's variant, or the default; a label the file no longer has runs the default."""
        return self._arms.get(context.variant or "", self._default)

    # -- redact ---------------------------------------------------------------------------
    def redact(self, state: SupportState, runtime: Runtime[SupportContext]) -> dict[str, Any]:
        text = state.get("inbound", "")
        context = runtime.context
        lang = context.lang or detect_lang(text)
        vault = conversation_vault(context)
        known = vault.entries(context.conversation_id)
        redaction = self.deps.redactor.redact(text, lang.value, known)
        new = {placeholder: value for placeholder, value in redaction.vault.items() if placeholder not in known}
        if new:
            vault.add(context.conversation_id, new)
        return {
            "messages": [HumanMessage(redaction.text)],
            "inbound": "",
            "lang": lang.value,
            "tool_rounds": 0,
            "llm_calls": 0,
            "sources": [],
            "fallback_reason": "",
        }

    # -- understand -----------------------------------------------------------------------
    def understand(self, state: SupportState, runtime: Runtime[SupportContext]) -> dict[str, Any]:
        text = _last_customer_text(state["messages"])
        lang = Lang(state["lang"])
        arm = self._arm(runtime.context)
        policy = arm.policy
        in_handoff = state.get("dialogue_state") == DialogueState.HANDOFF
        reading = arm.intents.read(text, lang, use_llm=not in_handoff)
        intent, sure = reading.intent, reading.sure
        emotion = detect_emotion(text)
        dissatisfied = state.get("dissatisfied_streak", 0) + 1 if emotion >= Emotion.DISSATISFIED else 0
        offered = state.get("offered_human", False)
        unsure = not sure or intent is Intent.OUT_OF_SCOPE
        streak = 0 if not unsure or in_handoff else state.get("unsure_streak", 0) + 1
        handoff_level = Emotion[policy.handoff_at.upper()]
        reason = ""
        if (sure and intent is Intent.HUMAN_AGENT) or asks_for_human(text):
            reason, intent, sure = "customer asked for a human", Intent.HUMAN_AGENT, True
        elif emotion >= handoff_level or dissatisfied >= policy.dissatisfied_streak:
            reason = f"customer is {emotion.label} ({dissatisfied} dissatisfied in a row)"
        elif offered and (is_affirmative(text) or unsure):
            reason = "a human was offered and the customer " + (
                "agreed" if is_affirmative(text) else "is still unclear"
            )
        slots = extract_slots(text, self.deps.catalog)
        # An order named earlier stays the topic: "when will it arrive?" needs no number again.
        order_ids = slots.order_ids or (state.get("order_ids", []) if intent in _ORDER_INTENTS else [])
        return {
            "intent": intent.value,
            "confidence": reading.confidence,
            "sure": sure,
            "stage": reading.stage,
            "reason": reading.reason,
            "candidates": [candidate.value for candidate in reading.candidates[:3]],
            "unsure_streak": streak,
            "escalate": bool(reason),
            "escalate_reason": reason,
            # After `clarify_limit` unsure turns the agent offers a human; the next unsure turn or a yes hands off.
            "offered_human": unsure and not reason and not in_handoff and streak >= policy.clarify_limit,
            "emotion": emotion.label,
            "dissatisfied_streak": dissatisfied,
            "order_ids": order_ids,
            "slots": slots.as_dict(),
            "route": "rules" if reading.stage == "classifier:llm-down" else "llm",
            "llm_calls": state.get("llm_calls", 0) + reading.llm_calls,
        }

    # -- decide ---------------------------------------------------------------------------
    def decide(self, state: SupportState, runtime: Runtime[SupportContext]) -> dict[str, Any]:
        current = state.get("dialogue_state") or DialogueState.WELCOME.value
        if current == DialogueState.END:
            current = DialogueState.WELCOME.value  # a message after goodbye starts a new session
        machine = DialogueMachine(start_value=current)
        intent = Intent(state["intent"])
        facts = TurnFacts(intent=intent, sure=state["sure"], escalate=state["escalate"])
        events = plan_machine_events(machine, facts)
        new_state = DialogueState(str(machine.current_state_value))
        calls = self._plan_tools(state, intent, new_state, events)
        update: dict[str, Any] = {"dialogue_state": new_state.value, "events": events}
        if calls:
            update["messages"] = [AIMessage(content="", tool_calls=calls)]
        return update

    def _plan_tools(
        self, state: SupportState, intent: Intent, new_state: DialogueState, events: list[str]
    ) -> list[ToolCall]:
        """The tool calls the turn obviously needs, made without asking the model."""
        text = _last_customer_text(state["messages"])
        if "escalate" in events:
            why = state.get("escalate_reason") or intent.value
            return [_call("request_human", reason=f"{why}; intent {intent.value}: {text[:120]}")]
        if new_state in (DialogueState.HANDOFF, DialogueState.END) or not state["sure"]:
            return []
        ids = state.get("order_ids", [])[:3]
        if intent in _POLICY_INTENTS and _asks_policy(text, bool(ids)):
            return [_call("search_knowledge", query=text[:300])]
        lookups = [_call("lookup_order", order_id=order_id) for order_id in ids]
        if intent in (Intent.ORDER_STATUS, Intent.SHIPPING_DELIVERY):
            return lookups or [_call("list_recent_orders", limit=3)]
        if intent in _TICKETED:
            if not ids:
                return [_call("list_recent_orders", limit=3)]
            kind, what = _TICKETED[intent]
            return [*lookups, _call("open_ticket", subject=f"{what} request for {', '.join(ids)}", kind=kind)]
        if intent is Intent.PAYMENT_INVOICE:
            subject = "Payment/invoice request" + (f" for {', '.join(ids)}" if ids else "")
            return [*lookups, _call("open_ticket", subject=subject, kind="general")]
        if intent is Intent.COMPLAINT:
            return [*lookups, _call("open_ticket", subject=text[:150], kind="complaint")]
        if intent is Intent.ACCOUNT_PROFILE:
            change = _contact_change(text)
            return [_call("update_contact", **change)] if change else [_call("get_customer_profile")]
        skus = list(state.get("slots", {}).get("skus", []))
        if (
            intent in (Intent.PRODUCT_INQUIRY, Intent.PRODUCT_RECOMMENDATION)
            and len(skus) >= 2
            and _COMPARE.search(text)
        ):
            return [_call("compare_products", products=skus[:4])]
        if intent is Intent.PRODUCT_RECOMMENDATION:
            return [_call("recommend_products", need=text[:300])]
        if intent is Intent.PRODUCT_INQUIRY:
            return [_call("search_products", query=text[:200]), _call("search_knowledge", query=text[:300])]
        if intent is Intent.PURCHASE:
            return [_call("search_products", query=text[:200])]
        return []

    # -- respond --------------------------------------------------------------------------
    def respond(self, state: SupportState, runtime: Runtime[SupportContext]) -> dict[str, Any]:
        lang = Lang(state["lang"])
        intent = Intent(state["intent"])
        arm = self._arm(runtime.context)
        results, best = _confident(_tool_results(state["messages"]), arm.policy.answer_above)
        if best is not None and not _answers(results):
            # The documents were searched and nothing scored high enough: say so, never guess.
            return {
                "messages": [AIMessage(not_sure(lang))],
                "route": "rules",
                "offered_human": True,
                "unsure_streak": state.get("unsure_streak", 0) + 1,
                "fallback_reason": f"knowledge: best passage scored {best:.2f} < {arm.policy.answer_above:.2f}",
            }
        template, asked = self._template(state, intent, results, lang)
        if template is not None:
            update: dict[str, Any] = {"messages": [AIMessage(template)], "route": "rules", "sources": _sources(results)}
            if asked is not None:
                update["asked"] = [*state.get("asked", []), asked]
            return update
        assert self.deps.llm is not None  # _template answers every turn without a model
        llm_calls = state.get("llm_calls", 0) + 1
        try:
            # With document passages in hand the answer is in the facts: offering no tools keeps small models
            # from wandering off to call one (the 0.5B model looked up the example order from a docstring).
            tools = () if passages_of(results) else self.deps.tools.tools
            message = self.deps.llm.reply(self._llm_messages(state, results, lang, arm.respond_prompt), tools=tools)
        except LlmUnavailable as exc:
            log.warning("reply model unavailable, using a template: %s", exc)
            return {
                "messages": [AIMessage(compose(intent, results, lang))],
                "route": "rules",
                "llm_calls": llm_calls,
                "sources": _sources(results),
            }
        calls = self._new_calls(state, message)
        if calls and state.get("tool_rounds", 0) < _MAX_TOOL_ROUNDS:
            return {
                "messages": [AIMessage(content="", tool_calls=calls)],
                "tool_rounds": state.get("tool_rounds", 0) + 1,
                "llm_calls": llm_calls,
            }
        text = strip_tool_text(message.text, self.deps.tools.names)
        if not text:
            return {
                "messages": [AIMessage(compose(intent, results, lang))],
                "route": "rules",
                "llm_calls": llm_calls,
                "sources": _sources(results),
            }
        return {
            "messages": [AIMessage(text)],
            "route": "llm",
            "llm_calls": llm_calls,
            "sources": _sources(results, text),
        }

    def _template(
        self, state: SupportState, intent: Intent, results: list[ToolResult], lang: Lang
    ) -> tuple[str | None, str | None]:
        """The rule-based reply for this turn and the clarifying question it asks, if any.

        The reply is None when the model should compose it.
        """
        if state["dialogue_state"] == DialogueState.HANDOFF and "escalate" not in state.get("events", []):
            return handoff_waiting(lang), None
        if state.get("offered_human") and not state["escalate"]:
            return offer_human(lang), None
        if (not state["sure"] or intent is Intent.OUT_OF_SCOPE) and not state["escalate"]:
            return self._clarify(state, intent, lang)
        llm_worthy = intent in QUESTION_INTENTS | PURCHASE_INTENTS and not state["escalate"]
        if self.deps.llm is None or state.get("route") == "rules" or not llm_worthy:
            return compose(intent, results, lang), None
        return None, None

    def _clarify(self, state: SupportState, intent: Intent, lang: Lang) -> tuple[str, str | None]:
        """One targeted question offering the two likeliest intents; never the same question twice."""
        if state["sure"] and intent is Intent.OUT_OF_SCOPE:
            return compose(intent, [], lang), None
        candidates = [Intent(c) for c in state.get("candidates", []) if c != Intent.OUT_OF_SCOPE.value]
        if len(candidates) < 2:
            return clarify(state.get("unsure_streak", 1), lang), None
        asked = set(state.get("asked", []))
        for first, second in itertools.combinations(candidates, 2):
            for variant in (1, 2):
                key = f"{first.value}|{second.value}|{variant}"
                if key not in asked:
                    return clarify_choice(first, second, lang, variant), key
        return clarify(state.get("unsure_streak", 1), lang), None

    def _llm_messages(
        self, state: SupportState, results: list[ToolResult], lang: Lang, prompt: str = "respond"
    ) -> list[AnyMessage]:
        """System prompt, earlier turns, then this message with its facts.

        Everything that changes per turn comes last, so llama-server and vLLM reuse the cached
        prefix (system prompt and tool schemas, then the conversation so far).
        """
        facts = [f"- {line}" for line in fact_lines(results, lang)]
        heading = "事实" if lang is Lang.ZH else "Facts"
        history = [
            message
            for message in state["messages"]
            if isinstance(message, HumanMessage) or (isinstance(message, AIMessage) and not message.tool_calls)
        ][-(2 * _HISTORY_TURNS - 1) :]
        current = history.pop() if history and isinstance(history[-1], HumanMessage) else HumanMessage("")
        last = HumanMessage(f"{current.text}\n\n{heading}:\n" + ("\n".join(facts) or "-"))
        return [SystemMessage(load_prompt(prompt, lang.value)), *history, last]

    def _new_calls(self, state: SupportState, message: AIMessage) -> list[ToolCall]:
        made = {
            (call["name"], json.dumps(call["args"], sort_keys=True))
            for turn_message in _this_turn(state["messages"])
            if isinstance(turn_message, AIMessage)
            for call in turn_message.tool_calls
        }
        calls = parse_tool_calls(message, self.deps.tools.names)
        return [call for call in calls if (call["name"], json.dumps(call["args"], sort_keys=True)) not in made]

    # -- guard ----------------------------------------------------------------------------
    def guard(self, state: SupportState, runtime: Runtime[SupportContext]) -> dict[str, Any]:
        lang = Lang(state["lang"])
        last = state["messages"][-1]
        text = str(last.text)
        arm = self._arm(runtime.context)
        results, _best = _confident(_tool_results(state["messages"]), arm.policy.answer_above)
        route = state.get("route", "rules")
        update: dict[str, Any] = {}
        if route == "llm":
            problem = _ungrounded(text, results, _last_customer_text(state["messages"]), lang) or _internal(
                text, self.deps.tools.names
            )
            if problem:
                log.info("LLM reply dropped: %s", problem)
                text, route = compose(Intent(state["intent"]), results, lang), "rules"
                update = {
                    "sources": _sources(results),
                    "fallback_reason": f"LLM reply ungrounded ({problem}): template",
                }
        context = runtime.context
        known = set(conversation_vault(context).entries(context.conversation_id).values())
        # Tool results were redacted before they entered the state: words quoted from them (a document
        # title NER reads as a name) are not new personal data.
        looked_up = "\n".join(m.text for m in _this_turn(state["messages"]) if isinstance(m, ToolMessage))
        foreign = [
            s for s in self.deps.redactor.analyze(text, lang.value) if s.text not in known and s.text not in looked_up
        ]
        if foreign:
            # Recorded by type only: the values themselves must not reach the logs either.
            log.warning(
                "reply guard masked personal data not in the vault: %s", sorted({s.entity_type for s in foreign})
            )
            text = mask(text, foreign)
        offer = self._offer(state, context, arm.policy, lang)
        if offer is None:
            return {**update, "messages": [AIMessage(text, id=last.id)], "route": route}
        # Added after every check: the shop's own sentence, which the model neither wrote nor saw.
        message = AIMessage(f"{text}\n\n{offer.text}", id=last.id, response_metadata={"offer": offer.rule})
        reason = "; ".join(part for part in (state.get("reason", ""), offer.reason) if part)
        return {**update, "messages": [message], "route": route, "reason": reason}

    def _offer(self, state: SupportState, context: SupportContext, policy: Policy, lang: Lang) -> Offer | None:
        """The segment condition that fires this turn (``agent.offers``), if one does."""
        insight = context.insight
        if insight is None or insight.customer_id != context.customer_id or not policy.offers.enabled:
            return None
        made = {str(m.response_metadata.get("offer")) for m in state["messages"] if isinstance(m, AIMessage)}

        def tier() -> Tier | None:
            customer = context.store.get_customer(context.customer_id)
            return None if customer is None else customer.tier

        return policy.offers.pick(
            insight,
            tier,
            intent=Intent(state["intent"]),
            sure=state["sure"],
            emotion=Emotion[state["emotion"].upper()],
            lang=lang,
            made=made,
        )


def _internal(text: str, tool_names: Sequence[str]) -> str:
    """Why a reply shows the customer Kefu's internals ("call the `lookup_order` function"), or ""."""
    lowered = text.lower()
    named = next((name for name in tool_names if name.lower() in lowered), None)
    return f"names the internal tool {named}" if named else ""


def _confident(results: list[ToolResult], threshold: float) -> tuple[list[ToolResult], float | None]:
    """The results with knowledge passages scoring below ``threshold`` removed.

    Also returns the best passage score when the documents were searched (None otherwise), so the
    caller can tell "searched and found nothing good enough" from "did not search".
    """
    best: float | None = None
    kept: list[ToolResult] = []
    for name, artifact, error in results:
        if name == "search_knowledge" and artifact is not None:
            passages = list(artifact.get("passages") or [])
            best = max([best or 0.0, *(float(p["score"]) for p in passages)])
            artifact = {**artifact, "passages": [p for p in passages if float(p["score"]) >= threshold]}
        kept.append((name, artifact, error))
    return kept, best


def _answers(results: list[ToolResult]) -> bool:
    """Whether the turn found anything to answer with: a confident passage or another tool's facts."""
    for name, artifact, error in results:
        if error is not None or artifact is None:
            continue
        if name != "search_knowledge" or artifact.get("passages"):
            return True
    return False


_CITATION = re.compile(r"\[(\d{1,2})\]")
_NUMBER = re.compile(r"(?<![A-Za-z_<\d.,])\d+(?:[.,]\d+)*")
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.、)]\s", re.MULTILINE)
_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


def _sources(results: list[ToolResult], reply: str | None = None) -> list[dict[str, Any]]:
    """What the reply rests on, for the API response: passages (the cited ones, if the reply cites) and graph paths."""
    passages = passages_of(results)
    cited = {int(n) for n in _CITATION.findall(reply or "")}
    sources = [
        {"ref": n, "id": p["id"], "source": p["source"], "title": p["title"], "score": p["score"], "kind": "document"}
        for n, p in enumerate(passages, 1)
        if not cited or n in cited
    ]
    for name, artifact, error in results:
        if name == "recommend_products" and artifact is not None and error is None:
            sources += [
                {
                    "ref": None,
                    "id": f"graph:{item['sku']}",
                    "source": "product-graph",
                    "title": item["rationale"],
                    "score": item["confidence"],
                    "kind": "graph",
                }
                for item in artifact.get("recommendations") or []
            ]
    return sources


def _numbers(text: str) -> set[str]:
    """The numbers in ``text``, normalised (``1,050.00`` and ``1050`` are the same number)."""
    found: set[str] = set()
    for match in _NUMBER.findall(text):
        try:
            found.add(f"{float(match.replace(',', '')):g}")
        except ValueError:
            found.add(match)
    return found


def _ungrounded(text: str, results: list[ToolResult], customer_text: str, lang: Lang) -> str:
    """Why an LLM reply cannot be trusted, or "" when it can.

    Every looked-up order must be named with its real status; citations must point at passages
    found this turn; and every number in the reply (days, prices, hours) must appear in the facts
    or in the customer's message: small models invent delivery times and refund windows.
    """
    lowered = text.lower()
    for name, artifact, _error in results:
        if name != "lookup_order" or artifact is None:
            continue
        labels = {status_label(artifact["status"], lang).lower(), str(artifact["status"]).replace("_", " ")}
        if str(artifact["id"]).lower() not in lowered or not any(label in lowered for label in labels):
            return f"order {artifact['id']} is not stated with its status"
    passages = passages_of(results)
    stray = sorted({int(n) for n in _CITATION.findall(text)} - set(range(1, len(passages) + 1)))
    if stray:
        return f"cites [{stray[0]}], which was not retrieved"
    bare = _PLACEHOLDER.sub(" ", _LIST_MARKER.sub(" ", _CITATION.sub(" ", text)))
    known = _numbers("\n".join(fact_lines(results, lang)) + "\n" + customer_text)
    invented = sorted(_numbers(bare) - known)
    if invented:
        return f"states {invented[0]}, which is in no fact"
    return ""
