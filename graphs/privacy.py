"""Personal data around tool calls: real values in, placeholders out.

The model writes tool calls with placeholders (it never saw anything else). ``PrivateTools``
wraps every tool call of the ``act`` node: the arguments a tool declares in its ``pii_args``
metadata get the real values from the conversation's vault; the result (the text the model reads
and the artifact the templates read) is redacted with the same vault before it is stored in the
conversation, so a customer's phone number from the CRM becomes ``<CN_MOBILE_1>`` there and the
customer still sees the number after ``restore``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from agent.pii import PiiRedactor, restore
from agent.understanding import detect_lang
from core.context import SupportContext
from core.errors import ConfigError
from core.ports import PiiVaultPort
from core.types import Lang
from tools import PII_ARGS

__all__ = ["PrivateTools", "conversation_vault", "redact_payload"]


def conversation_vault(context: SupportContext) -> PiiVaultPort:
    """The vault of the turn's conversation.

    Raises:
        ConfigError: the turn was started without a vault; the graph never runs in the clear.
    """
    if context.vault is None:
        raise ConfigError("the support graph needs a PII vault in its context (SupportContext.vault)")
    return context.vault


def redact_payload(
    redactor: PiiRedactor, lang: Lang, vault: Mapping[str, str], text: str, artifact: Any
) -> tuple[str, Any, dict[str, str]]:
    """Redact a tool result's text and every string in its artifact, with one analysis of both.

    Returns:
        The redacted text, the redacted artifact and the extended vault.
    """
    combined = text + "\n" + json.dumps(artifact, ensure_ascii=False, default=str)
    redaction = redactor.redact(combined, lang.value, vault)
    found = {span.text: _placeholder_for(span.text, redaction.vault) for span in redaction.spans}
    by_value = {value: placeholder for value, placeholder in found.items() if placeholder is not None}
    if not by_value:
        return text, artifact, redaction.vault
    pattern = re.compile("|".join(re.escape(value) for value in sorted(by_value, key=len, reverse=True)))

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(lambda match: by_value[match.group()], value)
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        return value

    return scrub(text), scrub(artifact), redaction.vault


def _placeholder_for(value: str, vault: Mapping[str, str]) -> str | None:
    return next((placeholder for placeholder, known in vault.items() if known == value), None)


class PrivateTools:
    """``wrap_tool_call`` for the ``act`` node's ToolNode: resolves declared arguments, redacts results."""

    def __init__(self, redactor: PiiRedactor) -> None:
        """Redact tool results with ``redactor``."""
        self._redactor = redactor

    def __call__(
        self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], ToolMessage | Command[Any]]
    ) -> ToolMessage | Command[Any]:
        """Run one tool call with real values in its ``pii_args`` and a redacted result."""
        runtime: Runtime[SupportContext] = request.runtime  # type: ignore[assignment]
        context = runtime.context
        vault = conversation_vault(context)
        known = vault.entries(context.conversation_id)
        wanted = set((request.tool.metadata or {}).get(PII_ARGS, ())) if request.tool is not None else set()
        if wanted and known:
            args = {
                name: restore(value, known) if name in wanted and isinstance(value, str) else value
                for name, value in request.tool_call["args"].items()
            }
            request = request.override(tool_call={**request.tool_call, "args": args})
        result = execute(request)
        if not isinstance(result, ToolMessage):
            return result
        state = request.state if isinstance(request.state, dict) else {}
        lang = Lang(state["lang"]) if state.get("lang") else detect_lang(result.text)
        text, artifact, extended = redact_payload(self._redactor, lang, known, result.text, result.artifact)
        new = {placeholder: value for placeholder, value in extended.items() if placeholder not in known}
        if new:
            vault.add(context.conversation_id, new)
        return result.model_copy(update={"content": text, "artifact": artifact})
