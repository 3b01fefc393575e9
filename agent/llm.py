"""The LLM layer: one OpenAI-compatible client for llama.cpp's server, vLLM and any OpenAI-style URL.

Nodes reach the model only through ``LlmGateway``. It asks for structured output with a JSON
schema (both llama-server and vLLM enforce it), reads token log-probabilities to turn the chosen
label into a confidence, and turns every transport failure or timeout into ``LlmUnavailable`` so
the graph can fall back to rule-based replies.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langchain_openai import ChatOpenAI

from agent.pii import PiiRedactor, mask
from agent.understanding import detect_lang
from core.settings import Settings

__all__ = ["WARM_UP_TIMEOUT_S", "Choice", "LlmGateway", "LlmUnavailable", "label_confidence", "make_chat_model"]

log = logging.getLogger(__name__)


class LlmUnavailable(Exception):
    """The model did not answer in time, or answered something unusable."""


@dataclass(frozen=True)
class Choice:
    """A label the model picked, with the probability it gave that label."""

    label: str
    confidence: float


def make_chat_model(settings: Settings, base_url: str) -> ChatOpenAI:
    """Build the OpenAI-compatible chat model every backend shares."""
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=base_url,
        api_key=settings.llm_api_key,
        timeout=settings.llm_timeout_s,
        max_retries=0,
        temperature=0.0,
        max_completion_tokens=settings.llm_max_tokens,
    )


def label_confidence(content: str, logprobs: Sequence[dict[str, Any]], value: str, field: str | None = None) -> float:
    """Joint probability of the tokens that spell ``value`` inside the generated ``content``.

    Tokens are located by their text; every token that overlaps the value's characters
    contributes its log-probability. The value is searched after ``field``'s key when given, so
    a label equal to the key name is not mistaken for it. Without usable log-probabilities the
    confidence is 0.
    """
    after = 0
    if field is not None:
        key = content.find(json.dumps(field, ensure_ascii=False))
        after = key + len(json.dumps(field, ensure_ascii=False)) if key >= 0 else 0
    start = content.find(json.dumps(value, ensure_ascii=False), after)
    if start < 0 or not logprobs:
        return 0.0
    start += 1  # skip the opening quote
    end = start + len(value)
    position = 0
    total = 0.0
    found = False
    for entry in logprobs:
        token = str(entry.get("token", ""))
        token_start, position = position, position + len(token)
        if position > start and token_start < end:
            total += float(entry.get("logprob", 0.0))
            found = True
        if token_start >= end:
            break
    return math.exp(total) if found else 0.0


WARM_UP_TIMEOUT_S = 300.0
"""How long a prompt-cache warm-up call may take (the 1.5B model's cold prefix takes ~40 s on 2 cores)."""


class LlmGateway:
    """The only way nodes talk to an LLM.

    A circuit breaker guards the backend: after a failure, calls fail fast for ``cooldown_s``
    seconds, so a dead or overloaded server costs one timeout, not one per turn.

    With a ``redactor`` it is also the privacy boundary: every message is analyzed before it is
    sent, and personal data a node forgot to redact is masked (``<CN_MOBILE>``) and counted in
    ``pii_blocked``; the raw text never leaves the process.
    """

    def __init__(self, model: BaseChatModel, cooldown_s: float = 15.0, redactor: PiiRedactor | None = None) -> None:
        """Wrap ``model``, an OpenAI-compatible chat model (or a scripted fake in tests)."""
        self._model = model
        self._cooldown_s = cooldown_s
        self._redactor = redactor
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.pii_blocked = 0
        """Personal-data spans masked at the boundary since start-up (each one is a bug upstream)."""
        self.calls = 0
        """Successful calls since start-up (warm-ups excluded)."""
        self.prompt_tokens = 0
        """Prompt tokens the backend reported since start-up (warm-ups excluded)."""
        self.completion_tokens = 0

    @property
    def available(self) -> bool:
        """False while the breaker is open after a recent failure."""
        return time.monotonic() >= self._open_until

    def choose(
        self, messages: Sequence[BaseMessage], field: str, options: Sequence[str], *, warm_up: bool = False
    ) -> Choice:
        """Ask the model to pick one of ``options`` for ``field``; confidence from log-probabilities.

        ``warm_up`` marks a call that only fills the server's prompt cache (see ``_invoke``).

        Raises:
            LlmUnavailable: the backend failed, timed out or returned no valid label.
        """
        schema = {
            "type": "object",
            "properties": {field: {"type": "string", "enum": list(options)}},
            "required": [field],
            "additionalProperties": False,
        }
        response_format = {"type": "json_schema", "json_schema": {"name": field, "strict": True, "schema": schema}}
        message = self._invoke(messages, warm_up=warm_up, response_format=response_format, logprobs=True)
        content = message.text
        try:
            label = json.loads(content)[field]
        except (ValueError, KeyError, TypeError) as exc:
            raise LlmUnavailable(f"unparseable structured output: {content[:200]!r}") from exc
        if label not in options:
            raise LlmUnavailable(f"label {label!r} is not one of the options")
        logprobs = (message.response_metadata.get("logprobs") or {}).get("content") or []
        return Choice(label=label, confidence=label_confidence(content, logprobs, label, field))

    def reply(
        self,
        messages: Sequence[BaseMessage],
        tools: Sequence[BaseTool] = (),
        max_tokens: int | None = None,
        *,
        warm_up: bool = False,
    ) -> AIMessage:
        """Let the model write the next message, optionally with ``tools`` it may call.

        ``warm_up`` marks a call that only fills the server's prompt cache (see ``_invoke``).

        Raises:
            LlmUnavailable: the backend failed or timed out.
        """
        kwargs: dict[str, Any] = {}
        if tools:
            kwargs["tools"] = [_tool_schema(tool) for tool in tools]
        if max_tokens is not None:
            kwargs["max_completion_tokens"] = max_tokens
        return self._invoke(messages, warm_up=warm_up, **kwargs)

    def _guard(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Mask personal data still present in any text about to leave: contents and tool-call arguments."""
        if self._redactor is None:
            return list(messages)
        guarded: list[BaseMessage] = []
        for message in messages:
            update: dict[str, Any] = {}
            kinds: set[str] = set()
            content, found_in_content = self._mask_content(message.content)
            if found_in_content:
                update["content"] = content
                kinds.update(found_in_content)
            calls = message.tool_calls if isinstance(message, AIMessage) else []
            masked_calls = []
            masked_args = 0
            for call in calls:
                args = json.dumps(call["args"], ensure_ascii=False)
                found = self._redactor.analyze(args, detect_lang(args).value)
                kinds.update(span.entity_type for span in found)
                masked_args += bool(found)
                masked_calls.append({**call, "args": json.loads(mask(args, found))} if found else call)
            if masked_args:
                update["tool_calls"] = masked_calls
            if not update:
                guarded.append(message)
                continue
            with self._lock:
                self.pii_blocked += len(found_in_content) + masked_args
            log.warning("personal data reached the LLM boundary unredacted; masked %s", sorted(kinds))
            guarded.append(message.model_copy(update=update))
        return guarded

    def _mask_content(self, content: str | list[Any]) -> tuple[str | list[Any], list[str]]:
        """The content with personal data masked (text blocks one by one) and the kinds found."""
        assert self._redactor is not None
        if isinstance(content, str):
            spans = self._redactor.analyze(content, detect_lang(content).value) if content else []
            return (mask(content, spans) if spans else content), [span.entity_type for span in spans]
        blocks: list[Any] = []
        kinds: list[str] = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                text, found = self._mask_content(block["text"])
                kinds += found
                block = {**block, "text": text} if found else block
            elif isinstance(block, str):
                block, found = self._mask_content(block)
                kinds += found
            blocks.append(block)
        return blocks, kinds

    def _invoke(self, messages: Sequence[BaseMessage], *, warm_up: bool = False, **kwargs: Any) -> AIMessage:
        """Call the model through the privacy boundary and the breaker.

        A warm-up call evaluates a long static prefix (system prompt and every tool schema) from a
        cold cache, which on 2 CPU cores can take longer than a customer's turn may: it gets
        ``WARM_UP_TIMEOUT_S`` instead of the per-turn timeout, and its failure does not open the
        breaker, so customers' turns are never answered by templates because of it.
        """
        if not self.available:
            raise LlmUnavailable("backend failed recently; circuit open")
        messages = self._guard(messages)
        if warm_up:
            kwargs["timeout"] = WARM_UP_TIMEOUT_S
        try:
            result = self._model.invoke(list(messages), **kwargs)
        except Exception as exc:  # any transport, timeout or server error means: no LLM this turn
            if not warm_up:
                with self._lock:
                    self._open_until = time.monotonic() + self._cooldown_s
            raise LlmUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, AIMessage):
            raise LlmUnavailable(f"unexpected model output {type(result).__name__}")
        if not warm_up:
            usage: dict[str, Any] = dict(result.usage_metadata or {})
            with self._lock:
                self.calls += 1
                self.prompt_tokens += int(usage.get("input_tokens", 0))
                self.completion_tokens += int(usage.get("output_tokens", 0))
        return result


def _tool_schema(tool: BaseTool) -> dict[str, Any]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return convert_to_openai_tool(tool)
