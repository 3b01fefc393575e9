"""End to end through the real llama-server with a real model (0.5B by default, as in CI).

Needs the binary from ``scripts/build-llama-server.sh`` and ``kefu models fetch --model
qwen2.5-coder-0.5b``; ``make test`` does both first. Choose another model with ``KEFU_E2E_MODEL``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from agent.intents import IntentModel
from agent.replies import status_label
from core.settings import Settings
from core.store import SqlStore
from core.types import CustomerId, Lang, OrderStatus
from core.vault import generate_key
from serving.llm_server import LlamaServer, default_binary
from serving.models import resolve_model
from serving.service import KefuService

pytestmark = pytest.mark.e2e

MODEL = os.environ.get("KEFU_E2E_MODEL", "qwen2.5-coder-0.5b")
CACHE_DIR = Path(os.environ.get("KEFU_CACHE_DIR", Path.home() / ".cache" / "kefu"))


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, seeded_db: Path, seeded_kb: Path, intent_model: IntentModel
) -> Iterator[KefuService]:
    data_dir = tmp_path_factory.mktemp("e2e")
    (data_dir / "kefu.db").write_bytes(seeded_db.read_bytes())
    shutil.copytree(seeded_kb, data_dir / "kb")
    settings = Settings(  # type: ignore[call-arg]
        data_dir=data_dir, cache_dir=CACHE_DIR, llm_model=MODEL, vault_key=SecretStr(generate_key()), _env_file=None
    )
    service = KefuService.start(settings, intent_model=intent_model)
    assert service.llm_server is not None and service.llm_server.pid, "llama-server did not start"
    started = time.monotonic()
    if service.warm_up_thread is not None:  # as a user would: the chat is fast once the prompt cache is warm
        service.warm_up_thread.join(timeout=300)
    print(f"\nprompt-cache warm-up took {time.monotonic() - started:.1f} s")
    yield service
    pid = service.llm_server.pid
    service.close()
    assert pid is not None and not _alive(pid), "llama-server outlived the service"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _shipped(store: SqlStore, customer: str) -> tuple[str, OrderStatus]:
    order = next(o for o in store.list_orders(CustomerId(customer), 20) if o.status is OrderStatus.SHIPPED)
    return order.id, order.status


@pytest.mark.parametrize(
    ("customer", "lang", "turns"),
    [
        ("C0001", Lang.ZH, ["你好", "我的订单 {order} 到哪了？", "那它什么时候能送到？"]),
        ("C0002", Lang.EN, ["Hi there", "Where is my order {order}?", "When will it arrive?"]),
    ],
)
def test_three_turn_order_conversation_returns_the_real_status(
    service: KefuService, customer: str, lang: Lang, turns: list[str]
) -> None:
    order_id, status = _shipped(service.store, customer)
    conversation = f"e2e-{lang.value}"
    results = [service.chat(conversation, customer, text.format(order=order_id)) for text in turns]
    greeting, question, follow_up = results
    assert greeting.state == "need_confirm"
    assert greeting.intent == "greeting"
    for result in (question, follow_up):
        assert result.state == "answer"
        assert result.tools == ["lookup_order"]
        assert order_id in result.reply
        assert status_label(status, lang) in result.reply or status.value in result.reply.lower()
    assert question.intent == "order_status"
    assert question.confidence > 0.5
    assert question.llm_calls >= 1, "the real model was not asked"
    print(f"\n{lang.value} latencies (ms): {[r.latency_ms for r in results]}; routes: {[r.route for r in results]}")


@pytest.mark.parametrize(
    ("customer", "text", "document"),
    [("C0001", "退货运费谁出？", "returns"), ("C0002", "Do you ship to Hong Kong?", "shipping")],
)
def test_a_policy_question_is_answered_by_the_model_from_cited_documents(
    service: KefuService, customer: str, text: str, document: str
) -> None:
    result = service.chat(f"e2e-kb-{customer}", customer, text)
    assert result.tools == ["search_knowledge"]
    assert result.llm_calls >= 1, "the real model was not asked"
    assert result.sources and all(source["kind"] == "document" for source in result.sources)
    assert any(document in source["source"] or source["source"] == "faq/faq.csv" for source in result.sources)
    # The model's words reach the customer only when the guard finds them grounded; otherwise the template does.
    assert (
        result.route == "llm" or (result.fallback or "").startswith("LLM reply ungrounded") or result.fallback is None
    )
    print(f"\n{text} -> {result.route} ({result.fallback}): {result.reply[:200]!r} {[s['id'] for s in result.sources]}")


def test_llama_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """No orphaned llama-server even when the app is SIGKILLed (not just on Ctrl-C)."""
    model = resolve_model(CACHE_DIR, MODEL)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from serving.llm_server import LlamaServer\n"
        f"s = LlamaServer(Path({str(default_binary(CACHE_DIR))!r}), Path({str(model)!r}), alias='t').start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child_pid)


def test_stop_on_exit_and_health(tmp_path: Path) -> None:
    server = LlamaServer(
        default_binary(CACHE_DIR), resolve_model(CACHE_DIR, MODEL), alias="t", log_path=tmp_path / "l.log"
    )
    with server:
        assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200
        pid = server.pid
    assert pid is not None and not _alive(pid)
