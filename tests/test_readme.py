"""README snippets run, so they cannot rot; the state-machine picture matches the definition."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolCall
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from agent.machine import mermaid
from core.context import SupportContext
from core.store import SqlStore
from core.types import Channel, ConversationId, CustomerId
from tools import explain

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
JS_SNIPPETS = re.findall(r"```js\n(.*?)```", README, re.DOTALL)


def snippet(marker: str, snippets: list[str] = SNIPPETS) -> str:
    return next(code for code in snippets if marker in code)


def test_api_snippet_runs_against_a_live_server(
    live_server: str, api_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEFU_API_KEY", api_key)
    code = snippet("/v1/conversations/").replace("http://127.0.0.1:8000", live_server)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "KF" in printed
    assert "answer order_status" in printed
    assert "list_recent_orders" in printed


def test_javascript_api_snippet_runs_against_a_live_server(live_server: str, api_key: str, tmp_path: Path) -> None:
    assert shutil.which("node"), "Node is missing: `make test` installs it (apt-get install nodejs)"
    script = tmp_path / "readme.mjs"  # .mjs: top-level await
    script.write_text(snippet("text/event-stream", JS_SNIPPETS).replace("http://127.0.0.1:8000", live_server))
    done = subprocess.run(
        ["node", str(script)],
        env={**os.environ, "KEFU_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    streamed, summary, roles = done.stdout.strip().rsplit("\n", 2)
    assert "KF" in streamed  # the reply, streamed piece by piece: the customer's orders
    assert summary.split()[:3] == ["answer", "order_status", "rules"]
    assert "list_recent_orders" in summary
    assert roles == "customer agent"


def test_add_a_tool_snippet(store: SqlStore) -> None:
    namespace: dict[str, object] = {}
    exec(compile(snippet("check_warranty"), "README.md", "exec"), namespace)
    registry = namespace["registry"]
    tool = namespace["check_warranty"]
    assert "check_warranty" in registry.names  # type: ignore[attr-defined]
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[attr-defined]
    assert list(schema["properties"]) == ["order_id"]

    graph = StateGraph(MessagesState, context_schema=SupportContext)
    graph.add_node("act", ToolNode(registry.tools, handle_tool_errors=explain))  # type: ignore[attr-defined]
    graph.add_edge(START, "act")
    compiled = graph.compile()
    context = SupportContext(CustomerId("C0002"), ConversationId("readme"), Channel.WEB, store)
    own = store.list_orders(CustomerId("C0002"), limit=1)[0].id
    foreign = store.list_orders(CustomerId("C0001"), limit=1)[0].id
    for order_id, expected in ((own, "warranty"), (foreign, "No order")):
        call = ToolCall(name="check_warranty", args={"order_id": order_id}, id="w1", type="tool_call")
        result = compiled.invoke({"messages": [AIMessage("", tool_calls=[call])]}, context=context)
        assert expected in result["messages"][-1].text


def test_readme_state_machine_matches_kefu_graph() -> None:
    block = re.search(r"```mermaid\n(.*?)```", README, re.DOTALL)
    assert block is not None
    assert block.group(1).strip() == mermaid().strip()
