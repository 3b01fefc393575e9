"""The baseline Kefu is compared with: LangGraph's prebuilt ReAct agent with Kefu's tools, prompt, model and data.

``ReactTarget`` is ``langgraph.prebuilt.create_react_agent`` (LangGraph 1.x marks it deprecated in
favour of ``langchain.agents.create_agent``, but the ``langchain`` package is not installed here and
``create_react_agent`` is still LangGraph's own prebuilt ReAct agent; the warning is silenced where
it is built). Everything else is Kefu's, so that the comparison measures the architecture, not the
parts:

- **tools**: ``tools.ToolRegistry().tools``, the same functions Kefu's ``act`` node runs, with the
  same ``SupportContext`` (``context_schema``) and the same ``ToolNode`` settings: tool errors
  explained to the model (``tools.explain``) and ``graphs.privacy.PrivateTools`` around each call
  (real values into declared personal-data arguments, results redacted);
- **model**: ``agent.llm.make_chat_model`` (same client, temperature 0, token cap, timeout, no retries);
- **prompt**: Kefu's reply prompt (``prompts/{lang}/respond.md``) in the message's language, plus
  one paragraph saying that the tools are where the "Facts" come from (Kefu puts the facts into the
  message itself; a ReAct agent has to fetch them);
- **data**: the store, PII vault, knowledge base and redactor of ``evals.inproc.InprocAgent`` on the
  baseline's own data directory (the same seeded demo store as Kefu's);
- **memory**: a SQLite checkpointer, ``thread_id`` = conversation id, written once per turn
  (``durability="exit"``), as in Kefu.

Privacy choice: the customer's message is redacted with the same redactor and vault before the agent
sees it, and placeholders are restored in the reply, so the model gets the same kind of input as
Kefu's and the customer the same kind of output. What a plain ReAct agent does not have is left out
on purpose: no output guard (foreign personal data in a reply is not masked), no grounding check,
no intent classifier, no templates, no dialogue state (``state`` is None) and no fallback when the
model fails (the turn fails). The loop stops where LangGraph's own limit stops it: with
``recursion_limit`` = ``max_steps`` the agent ends the turn with "Sorry, need more steps…" once it
still wants tools and fewer than two steps remain.

Observations count what the agent produced this turn: every ``AIMessage`` is one model call; tokens
are the ``usage_metadata`` of every model answer, collected by a callback (reading them off the
messages would miss the last call of a turn that hit the step limit: LangGraph replaces that answer
with its "need more steps" message, usage and all); tools are the ``ToolMessage`` names.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Final

from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, create_react_agent

from agent.llm import make_chat_model
from agent.pii import restore
from agent.understanding import detect_lang
from core.context import SupportContext
from core.types import Lang
from evals.inproc import InprocAgent, turn_messages
from evals.targets import TurnObservation
from graphs import sqlite_checkpointer
from graphs.privacy import PrivateTools
from prompts import load_prompt
from tools import ToolRegistry, explain

__all__ = ["DEFAULT_MAX_STEPS", "TOOLS_ARE_THE_FACTS", "ReactTarget", "baseline_prompt"]

DEFAULT_MAX_STEPS: Final = 10
"""The agent's ``recursion_limit``: at most 5 model calls a turn (4 tool rounds, then the answer).

Generous for the demo store, where no question needs more than two rounds (list the orders, then
look one up); LangGraph's own default (25) only makes a looping model cost more.
"""

TOOLS_ARE_THE_FACTS: Final[dict[Lang, str]] = {
    Lang.EN: (
        'Nothing is listed under "Facts" in this conversation: your tools are the shop\'s systems. '
        "Call them to get the facts you need, and treat what they return as the facts."
    ),
    Lang.ZH: (
        "本次对话中顾客消息后没有\u201c事实\u201d部分：你的工具就是店铺系统。"
        "需要信息时调用工具，把工具返回的内容当作事实。"
    ),
}
"""What the baseline is told on top of Kefu's reply prompt, which expects facts after the message."""


def baseline_prompt(lang: Lang) -> str:
    """Kefu's reply prompt in ``lang`` with the paragraph that points the agent at its tools."""
    return f"{load_prompt('respond', lang.value)}\n\n{TOOLS_ARE_THE_FACTS[lang]}"


class ReactTarget:
    """A ``Target`` answering with LangGraph's prebuilt ReAct agent, in-process.

    Example:
        target = ReactTarget.open(tmp / "react", llm_base_url=proxy.base_url)
        observation = target.turn("conv-1", "C0001", "Where is my order?")
    """

    name = "react-baseline"

    def __init__(self, parts: InprocAgent, llm_base_url: str, *, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        """Build one agent per language on ``parts`` (store, vault, knowledge, redactor) and one checkpointer.

        Args:
            parts: Kefu's assembled pieces; only its store, vault, knowledge base, redactor and settings are used.
            llm_base_url: The OpenAI-compatible endpoint (``.../v1``).
            max_steps: The ``recursion_limit`` of each turn (see ``DEFAULT_MAX_STEPS``).
        """
        self.parts = parts
        self.max_steps = max_steps
        self.database_url = parts.settings.resolved_database_url
        """The baseline's own SQLite store."""
        self._checkpointer = sqlite_checkpointer(parts.settings.data_dir / "react-baseline.sqlite")
        model = make_chat_model(parts.settings, llm_base_url)
        registry = ToolRegistry()
        self._agents: dict[Lang, CompiledStateGraph[Any, Any, Any, Any]] = {}
        for lang in Lang:
            tool_node = ToolNode(
                registry.tools, handle_tool_errors=explain, wrap_tool_call=PrivateTools(parts.redactor)
            )
            with warnings.catch_warnings():
                # Deprecated in favour of langchain.agents.create_agent, which is not installed (see the module doc).
                warnings.simplefilter("ignore")
                self._agents[lang] = create_react_agent(
                    model,
                    tool_node,
                    prompt=baseline_prompt(lang),
                    context_schema=SupportContext,
                    checkpointer=self._checkpointer,
                    name=f"react-baseline-{lang.value}",
                )

    @classmethod
    def open(
        cls, data_dir: Path, *, llm_base_url: str, max_steps: int = DEFAULT_MAX_STEPS, **overrides: Any
    ) -> ReactTarget:
        """Assemble the data on ``data_dir`` (seeded demo store, vault, knowledge base) and build the agent.

        ``overrides`` are ``Settings`` fields, as for ``InprocAgent.open``.
        """
        parts = InprocAgent.open(data_dir, llm_base_url=None, **overrides)
        return cls(parts, llm_base_url, max_steps=max_steps)

    def turn(self, conversation_id: str, customer_id: str, text: str, lang: Lang | None = None) -> TurnObservation:
        """One customer message through the ReAct agent; a failure is reported in ``error``, not raised."""
        started = time.perf_counter()
        lang = lang or detect_lang(text)
        context = self.parts.context(conversation_id, customer_id, lang)
        usage = UsageMetadataCallbackHandler()
        try:
            messages = self._run(conversation_id, text, lang, context, usage)
        except Exception as exc:  # a plain ReAct agent has no fallback: the turn fails
            return TurnObservation(
                reply="",
                route="llm",
                latency_ms=(time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
        return self._observe(conversation_id, messages, usage, (time.perf_counter() - started) * 1000)

    def _run(
        self,
        conversation_id: str,
        text: str,
        lang: Lang,
        context: SupportContext,
        usage: UsageMetadataCallbackHandler,
    ) -> list[BaseMessage]:
        """Redact the message into the vault, run the agent, and return this turn's new messages."""
        vault = self.parts.vault
        known = vault.entries(conversation_id)
        redaction = self.parts.redactor.redact(text, lang.value, known)
        new = {placeholder: value for placeholder, value in redaction.vault.items() if placeholder not in known}
        if new:
            vault.add(conversation_id, new)
        config: RunnableConfig = {
            "configurable": {"thread_id": conversation_id},
            "recursion_limit": self.max_steps,
            "callbacks": [usage],
        }
        state: dict[str, Any] = self._agents[lang].invoke(
            {"messages": [HumanMessage(redaction.text)]}, config, context=context, durability="exit"
        )
        return turn_messages(state["messages"])

    def _observe(
        self,
        conversation_id: str,
        messages: list[BaseMessage],
        usage: UsageMetadataCallbackHandler,
        latency_ms: float,
    ) -> TurnObservation:
        answers = [m for m in messages if isinstance(m, AIMessage)]
        final = next((m for m in reversed(answers) if not m.tool_calls), None)
        reply = restore(final.text, self.parts.vault.entries(conversation_id)) if final is not None else ""
        counted = list(usage.usage_metadata.values())
        return TurnObservation(
            reply=reply,
            tools=[m.name or "" for m in messages if isinstance(m, ToolMessage)],
            state=None,
            route="llm",
            llm_calls=len(answers),
            prompt_tokens=sum(u["input_tokens"] for u in counted),
            completion_tokens=sum(u["output_tokens"] for u in counted),
            latency_ms=latency_ms,
            handed_off=any(isinstance(m, ToolMessage) and m.name == "request_human" for m in messages),
        )

    def close(self) -> None:
        """Close the checkpointer's database connection and the store's engine."""
        self._checkpointer.conn.close()
        self.parts.store.engine.dispose()
