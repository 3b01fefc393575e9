"""The tolerant tool-call reader in ``agent.toolcalls``: native calls, JSON text, and stripping it."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, ToolCall

from agent.toolcalls import parse_tool_calls, strip_tool_text

KNOWN = frozenset({"lookup_order", "search_products", "list_recent_orders"})

LOOKUP = {"name": "lookup_order", "arguments": {"order_id": "KF101170"}}
LOOKUP_JSON = json.dumps(LOOKUP)


def _calls(text: str, known: frozenset[str] = KNOWN) -> list[tuple[str, dict[str, object]]]:
    return [(call["name"], call["args"]) for call in parse_tool_calls(AIMessage(content=text), known)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(LOOKUP_JSON, [("lookup_order", {"order_id": "KF101170"})], id="name-arguments"),
        pytest.param(
            '{"tool": "search_products", "args": {"query": "耳机"}}',
            [("search_products", {"query": "耳机"})],
            id="tool-args",
        ),
        pytest.param(
            '{"name": "search_products", "parameters": {"query": "running"}}',
            [("search_products", {"query": "running"})],
            id="name-parameters",
        ),
        pytest.param(
            json.dumps({"function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "KF100979"})}}),
            [("lookup_order", {"order_id": "KF100979"})],
            id="openai-function-with-json-string-arguments",
        ),
        pytest.param(
            '{"name": "list_recent_orders", "arguments": ""}',
            [("list_recent_orders", {})],
            id="empty-string-arguments",
        ),
        pytest.param(
            '{"name": "list_recent_orders"}',
            [("list_recent_orders", {})],
            id="no-arguments",
        ),
        pytest.param(
            json.dumps([LOOKUP, {"name": "search_products", "arguments": {"query": "speaker"}}]),
            [("lookup_order", {"order_id": "KF101170"}), ("search_products", {"query": "speaker"})],
            id="list-of-calls",
        ),
        pytest.param(
            f"<tool_call>\n{LOOKUP_JSON}\n</tool_call>",
            [("lookup_order", {"order_id": "KF101170"})],
            id="hermes-tags",
        ),
        pytest.param(
            f"<tool_call>{LOOKUP_JSON}",
            [("lookup_order", {"order_id": "KF101170"})],
            id="unterminated-hermes-tag",
        ),
        pytest.param(
            f"<tool_call>{LOOKUP_JSON}</tool_call>\n"
            '<tool_call>{"name": "search_products", "arguments": {"query": "tea"}}</tool_call>',
            [("lookup_order", {"order_id": "KF101170"}), ("search_products", {"query": "tea"})],
            id="two-hermes-tags",
        ),
        pytest.param(
            f"```json\n{LOOKUP_JSON}\n```",
            [("lookup_order", {"order_id": "KF101170"})],
            id="json-fence",
        ),
        pytest.param(
            f"```\n{LOOKUP_JSON}\n```",
            [("lookup_order", {"order_id": "KF101170"})],
            id="bare-fence",
        ),
        pytest.param(
            f"Let me check that order for you. {LOOKUP_JSON}",
            [("lookup_order", {"order_id": "KF101170"})],
            id="json-after-prose",
        ),
        pytest.param(
            f"好的，我帮您查一下：{LOOKUP_JSON} 请稍等。",
            [("lookup_order", {"order_id": "KF101170"})],
            id="json-inside-chinese-prose",
        ),
        pytest.param(
            f"The price [1,2] first, then {LOOKUP_JSON}",
            [("lookup_order", {"order_id": "KF101170"})],
            id="non-call-json-before-call",
        ),
    ],
)
def test_reads_tool_calls_written_as_text(text: str, expected: list[tuple[str, dict[str, object]]]) -> None:
    assert _calls(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"name": "delete_all_orders", "arguments": {}}', id="unknown-tool"),
        pytest.param('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', id="unknown-tool-tagged"),
        pytest.param('{"name": "lookup_order", "arguments": {"order_id": "KF1"}', id="unbalanced-braces"),
        pytest.param("{'name': 'lookup_order', 'arguments': {}}", id="single-quotes"),
        pytest.param('{"name": "lookup_order", "arguments": "{not json"}', id="arguments-string-not-json"),
        pytest.param('{"name": "lookup_order", "arguments": [1, 2]}', id="arguments-not-an-object"),
        pytest.param('{"name": 42, "arguments": {}}', id="name-not-a-string"),
        pytest.param("The price is [1,2] and the rating {5}.", id="prose-with-brackets"),
        pytest.param('{"order_id": "KF101170"}', id="object-without-a-name"),
        pytest.param("Your order KF101170 has shipped.", id="plain-text"),
        pytest.param("", id="empty"),
    ],
)
def test_ignores_unknown_and_malformed_calls(text: str) -> None:
    assert _calls(text) == []


def test_native_tool_calls_win_over_text() -> None:
    native = ToolCall(name="lookup_order", args={"order_id": "KF100979"}, id="call_native", type="tool_call")
    message = AIMessage(content='{"name": "search_products", "arguments": {"query": "x"}}', tool_calls=[native])
    calls = parse_tool_calls(message, KNOWN)
    assert len(calls) == 1
    assert calls[0]["name"] == "lookup_order"
    assert calls[0]["args"] == {"order_id": "KF100979"}
    assert calls[0]["id"] == "call_native"


def test_native_calls_to_unknown_tools_are_dropped() -> None:
    message = AIMessage(
        content="",
        tool_calls=[
            ToolCall(name="drop_tables", args={}, id="a", type="tool_call"),
            ToolCall(name="search_products", args={"query": "tea"}, id="b", type="tool_call"),
        ],
    )
    assert [(c["name"], c["id"]) for c in parse_tool_calls(message, KNOWN)] == [("search_products", "b")]


def test_only_known_names_are_kept_from_a_mixed_list() -> None:
    text = json.dumps([{"name": "format_disk", "arguments": {}}, LOOKUP])
    assert _calls(text) == [("lookup_order", {"order_id": "KF101170"})]


def test_known_set_is_respected() -> None:
    assert _calls(LOOKUP_JSON, known=frozenset({"search_products"})) == []
    assert _calls(LOOKUP_JSON, known=frozenset()) == []


def test_text_calls_get_unique_tool_call_ids() -> None:
    text = json.dumps([LOOKUP, LOOKUP])
    calls = parse_tool_calls(AIMessage(content=text), KNOWN)
    assert len(calls) == 2
    ids = [call["id"] for call in calls]
    assert all(isinstance(i, str) and i.startswith("call_") for i in ids)
    assert ids[0] != ids[1]
    assert all(call["type"] == "tool_call" for call in calls)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(LOOKUP_JSON, "", id="bare-call"),
        pytest.param(f"Let me check. {LOOKUP_JSON}", "Let me check.", id="prose-then-call"),
        pytest.param(f"{LOOKUP_JSON}\nOne moment please.", "One moment please.", id="call-then-prose"),
        pytest.param(f"Sure <tool_call>{LOOKUP_JSON}</tool_call>", "Sure", id="hermes-tag"),
        pytest.param(f"Sure\n<tool_call>\n{LOOKUP_JSON}", "Sure", id="unterminated-hermes-tag"),
        pytest.param(f"Here you go:\n```json\n{LOOKUP_JSON}\n```", "Here you go:", id="json-fence"),
        pytest.param(json.dumps([LOOKUP, LOOKUP]), "", id="list-of-calls"),
        pytest.param(f"好的，我帮您查一下。{LOOKUP_JSON}", "好的，我帮您查一下。", id="chinese-prose"),
    ],
)
def test_strip_removes_calls_and_keeps_the_prose(text: str, expected: str) -> None:
    assert strip_tool_text(text, KNOWN) == expected


def test_strip_keeps_prose_on_both_sides() -> None:
    stripped = strip_tool_text(f"Let me check. {LOOKUP_JSON} One moment.", KNOWN)
    assert "lookup_order" not in stripped
    assert "{" not in stripped
    assert stripped.startswith("Let me check.")
    assert stripped.endswith("One moment.")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("The price [1,2] is a range.", id="list-in-prose"),
        pytest.param('Specs: {"battery": "30h", "weight": 5}', id="object-without-name"),
        pytest.param('```json\n{"a": 1}\n``` is an example', id="fence-without-call"),
        pytest.param("```python\nprint('hi')\n```", id="code-fence"),
        pytest.param("Your order KF101170 has shipped.", id="plain-text"),
        pytest.param("Broken {json here", id="unbalanced"),
    ],
)
def test_strip_keeps_non_call_json(text: str) -> None:
    assert strip_tool_text(text, KNOWN) == text


def test_strip_keeps_non_call_json_next_to_a_call() -> None:
    stripped = strip_tool_text(f"price [1,2] {LOOKUP_JSON}", KNOWN)
    assert stripped == "price [1,2]"


def test_strip_trims_whitespace() -> None:
    assert strip_tool_text("   hello  \n", KNOWN) == "hello"


def test_strip_keeps_json_that_names_no_known_tool() -> None:
    text = 'Top pick: {"name": "Lumo Air Pro", "price": 899}. Want it?'
    assert strip_tool_text(text, KNOWN) == text


def test_strip_drops_echoed_chat_template_markup() -> None:
    """The 1.5B model once answered "<tools></tools>" (its chat template's markup) as the reply."""
    assert strip_tool_text("<tools></tools>", {"lookup_order"}) == ""
    assert strip_tool_text("Your order shipped.</tool_call>", {"lookup_order"}) == "Your order shipped."
