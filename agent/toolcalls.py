"""A tolerant reader of tool calls: native ones, and the JSON text small models write instead.

Small local models often answer a tool request with a JSON object in the message text (bare,
in a Markdown fence, or inside ``<tool_call>`` tags as in Qwen's Hermes format) instead of a
structured tool call. This module turns all of those into LangChain ``ToolCall`` dicts and can
strip them from the visible text.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any

from langchain_core.messages import AIMessage, ToolCall

__all__ = ["parse_tool_calls", "strip_tool_text"]

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_TEMPLATE_TAGS = re.compile(r"</?(?:tools|tool_call|tool_response)>")
"""Chat-template markup small models echo (Qwen's ``<tools></tools>``): never text for a customer."""


def parse_tool_calls(message: AIMessage, known: Collection[str]) -> list[ToolCall]:
    """Return the tool calls in ``message`` that name one of the ``known`` tools.

    Native ``tool_calls`` win; otherwise JSON objects in the text are read in the shapes
    ``{"name", "arguments"|"args"|"parameters"}``, ``{"tool", ...}`` and
    ``{"function": {"name", "arguments"}}``, alone or in a list. Arguments given as a JSON
    string are decoded. Anything else is ignored.
    """
    if message.tool_calls:
        return [call for call in message.tool_calls if call["name"] in known]
    calls: list[ToolCall] = []
    for obj in _json_objects(message.text):
        call = _as_call(obj)
        if call is not None and call["name"] in known:
            calls.append(call)
    return calls


def strip_tool_text(text: str, known: Collection[str]) -> str:
    """Remove calls of the ``known`` tools (tagged, fenced or bare JSON) from ``text``.

    Other JSON, such as a product written as ``{"name": "Lumo Air", "price": 899}``, stays.
    """
    text = _TAGGED.sub(lambda m: "" if _looks_like_call(m.group(1), known) else m.group(0), text)
    text = _FENCED.sub(lambda m: "" if _looks_like_call(m.group(1), known) else m.group(0), text)
    for _value, start, end in reversed(list(_spans(text))):
        if _looks_like_call(text[start:end], known):
            text = text[:start] + text[end:]
    return _TEMPLATE_TAGS.sub("", text).strip()


def _looks_like_call(candidate: str, known: Collection[str]) -> bool:
    return any((call := _as_call(obj)) is not None and call["name"] in known for obj in _decode_all(candidate))


def _json_objects(text: str) -> Iterator[Any]:
    chunks = [m.group(1) for m in _TAGGED.finditer(text)] + [m.group(1) for m in _FENCED.finditer(text)]
    if not chunks:
        chunks = [text]
    for chunk in chunks:
        yield from _decode_all(chunk)


def _decode_all(text: str) -> Iterator[Any]:
    """Yield every JSON value that starts at a '{' or '[' in ``text``, flattening lists."""
    for value, _start, _end in _spans(text):
        if isinstance(value, list):
            yield from value
        else:
            yield value


def _spans(text: str) -> Iterator[tuple[Any, int, int]]:
    """Yield ``(value, start, end)`` for every top-level JSON object or list in ``text``."""
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        match = re.search(r"[\[{]", text[index:])
        if match is None:
            return
        start = index + match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        yield value, start, end
        index = end


def _as_call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name") or obj.get("tool") or obj.get("tool_name")
    if not isinstance(name, str):
        return None
    args: Any = next((obj[key] for key in ("arguments", "args", "parameters", "input") if key in obj), {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(name=name, args=args, id=f"call_{uuid.uuid4().hex[:12]}", type="tool_call")
