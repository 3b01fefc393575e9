"""Fakes for the model boundary only: a scripted chat model and helpers to script it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from agent.intents import Ranked

Step = AIMessage | Exception | Callable[[list[BaseMessage], dict[str, Any]], AIMessage]


@dataclass
class Call:
    """One call the graph made to the model."""

    messages: list[BaseMessage]
    kwargs: dict[str, Any]

    @property
    def structured(self) -> bool:
        """Whether the call asked for JSON-schema output (the intent call)."""
        return "response_format" in self.kwargs

    @property
    def text(self) -> str:
        """Everything the model was shown."""
        return "\n".join(message.text for message in self.messages)


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script, one step per call, and records every call."""

    steps: list[Any] = Field(default_factory=list)
    calls: list[Call] = Field(default_factory=list)

    def __init__(self, steps: Sequence[Step] = (), **kwargs: Any) -> None:
        """Answer the calls with ``steps`` in order."""
        super().__init__(steps=list(steps), calls=[], **kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        """Tools are passed per call; binding changes nothing."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(Call(list(messages), dict(kwargs)))
        if not self.steps:
            raise AssertionError(f"unexpected model call #{len(self.calls)}: {messages[-1].text[:120]!r}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        message = step(list(messages), kwargs) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])

    def assert_complete(self) -> None:
        """Every scripted step was used."""
        assert not self.steps, f"{len(self.steps)} scripted steps were never used"


def intent(label: str, probability: float = 0.95) -> AIMessage:
    """The structured answer to the intent call, with log-probabilities giving ``probability``."""
    content = json.dumps({"intent": label})
    prefix, value_tokens = '{"intent": "', [label[: len(label) // 2], label[len(label) // 2 :]]
    logprob = math.log(probability) / len(value_tokens)
    tokens = [{"token": prefix, "logprob": 0.0}]
    tokens += [{"token": token, "logprob": logprob} for token in value_tokens]
    tokens += [{"token": '"}', "logprob": 0.0}]
    return AIMessage(content=content, response_metadata={"logprobs": {"content": tokens}})


def reply(text: str, tool_calls: Sequence[ToolCall] = ()) -> AIMessage:
    """A free-text answer, optionally with native tool calls."""
    return AIMessage(content=text, tool_calls=list(tool_calls))


def echo_facts(messages: list[BaseMessage], _kwargs: dict[str, Any]) -> AIMessage:
    """A reply that repeats the facts given with the customer's message, like a faithful model would."""
    last = messages[-1].text
    return AIMessage(content="Here is what I found: " + last.split(":\n", 1)[-1][-600:])


class ScriptedIntents:
    """Stage 1 of the intent engine, scripted: the first key found in a message decides its ranking.

    ``rules`` maps a substring to ``[(label, probability), ...]``; messages matching no key get
    ``default``. Probabilities are completed to a full ranking so margins are what the test says.
    """

    def __init__(self, rules: dict[str, list[tuple[str, float]]], default: list[tuple[str, float]] | None = None):
        self.rules = rules
        self.default = default or [("out_of_scope", 0.30), ("chitchat", 0.25), ("greeting", 0.20)]

    def rank(self, texts: Sequence[str]) -> list[Ranked]:
        out = []
        for text in texts:
            pairs = next((v for k, v in self.rules.items() if k.lower() in text.lower()), self.default)
            out.append(Ranked(labels=tuple(p[0] for p in pairs), probs=tuple(p[1] for p in pairs)))
        return out


def sure(label: str, probability: float = 0.95) -> list[tuple[str, float]]:
    """A ranking the classifier accepts alone."""
    return [(label, probability), ("chitchat", (1 - probability) / 2), ("out_of_scope", (1 - probability) / 2)]


def ambiguous(first: str, second: str, third: str = "chitchat") -> list[tuple[str, float]]:
    """A ranking that goes to the LLM stage (top 0.5, margin 0.2)."""
    return [(first, 0.5), (second, 0.3), (third, 0.2)]


def lost(first: str = "chitchat", second: str = "product_inquiry") -> list[tuple[str, float]]:
    """A ranking that stays unsure without an LLM (top 0.3)."""
    return [(first, 0.30), (second, 0.28), ("greeting", 0.22), ("out_of_scope", 0.20)]


_REAL_GENERATE = ChatOpenAI._generate  # taken at import, before the autouse fixture replaces it per test


def loopback_only(self: ChatOpenAI, *args: Any, **kwargs: Any) -> Any:
    """``ChatOpenAI._generate`` that reaches only a fake LLM on 127.0.0.1 (``evals.fake_llm``), nothing else."""
    base = str(self.openai_api_base or "")
    if not base.startswith("http://127.0.0.1:"):
        raise AssertionError(f"only the loopback fake LLM may be called here, not {base!r}")
    return _REAL_GENERATE(self, *args, **kwargs)
