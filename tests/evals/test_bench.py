"""``kefu bench`` and its ReAct baseline run end to end on the fake LLM endpoint; no timing is asserted.

The full run (``python -m evals.bench``) starts ``kefu serve`` as its own process; here the bench's
parts drive the suite's in-thread server, wired to ``FakeLlm`` over real HTTP, at tiny sizes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from agent.intents import IntentModel
from agent.llm import make_chat_model
from core.settings import Settings
from core.types import Lang
from evals.bench import (
    PATH_TEXTS,
    MeteredTarget,
    build_parser,
    overhead_json,
    real_turns,
    run_baseline_level,
    run_kefu_level,
    side_by_side_json,
    summarize_target,
    write_results,
)
from evals.fake_llm import FakeLlm
from evals.llm_proxy import LlmProxy
from evals.react_baseline import ReactTarget, baseline_prompt
from serving.app import create_app
from serving.llm_server import free_port
from serving.service import KefuService
from tools import ToolRegistry


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLlm]:
    with FakeLlm() as server:
        yield server


@pytest.fixture(scope="module")
def react_target(
    tmp_path_factory: pytest.TempPathFactory, seeded_db: Path, seeded_kb: Path, intent_model: IntentModel, fake: FakeLlm
) -> Iterator[tuple[ReactTarget, LlmProxy]]:
    """The baseline on its own copy of the demo data, talking to the fake through a recording proxy (built once)."""
    data_dir = tmp_path_factory.mktemp("react")
    shutil.copy(seeded_db, data_dir / "kefu.db")
    shutil.copytree(seeded_kb, data_dir / "kb")
    intent_model.save(data_dir / "models" / "intents")  # InprocAgent.open would train one otherwise
    with LlmProxy(fake.base_url) as proxy:
        target = ReactTarget.open(data_dir, llm_base_url=proxy.base_url, max_steps=6, _env_file=None)
        yield target, proxy
        target.close()


@pytest.fixture
def react(react_target: tuple[ReactTarget, LlmProxy], loopback_llm: None) -> tuple[ReactTarget, LlmProxy]:
    """The module's baseline, with the fake reachable in this test."""
    return react_target


@pytest.fixture
def kefu_proxy(fake: FakeLlm) -> Iterator[LlmProxy]:
    """A recording proxy in front of the fake, for Kefu."""
    with LlmProxy(fake.base_url) as proxy:
        yield proxy


@pytest.fixture
def kefu_on_fake(
    settings: Settings, intent_model: IntentModel, kefu_proxy: LlmProxy, loopback_llm: None, api_key: str
) -> Iterator[tuple[str, dict[str, str]]]:
    """The real app with its LLM on the fake endpoint (through the proxy), served by uvicorn on a free port."""
    url = kefu_proxy.base_url
    local = settings.model_copy(update={"llm_backend": "openai", "llm_base_url": url})

    def start(s: Settings) -> KefuService:
        return KefuService.start(s, chat_model=make_chat_model(s, url), intent_model=intent_model)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(local, service_factory=start), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {api_key}"}
    server.should_exit = True
    thread.join(10)


def test_the_baseline_answers_a_conversation_with_real_tools_and_counts_what_the_endpoint_saw(
    react: tuple[ReactTarget, LlmProxy],
) -> None:
    target, proxy = react
    metered = MeteredTarget(target, proxy)
    texts = ["Hi there", "Where is my order?", "My phone is 13812345678", "bye"]
    observed = [metered.turn("conv-react", "C0001", text) for text in texts]

    assert [o.error for o in observed] == [None] * len(texts)
    names = set(ToolRegistry().names)
    assert observed[1].tools and set(observed[1].tools) <= names  # the fake asked for a tool; it really ran
    assert all(o.state is None and o.route == "llm" and o.reply for o in observed)
    for turn in metered.turns:  # what the agent reports is what reached the endpoint
        assert turn.observation.llm_calls == len(turn.calls) >= 1
        assert turn.observation.prompt_tokens == sum(c.prompt_tokens for c in turn.calls) > 0
        assert turn.observation.completion_tokens == sum(c.completion_tokens for c in turn.calls) > 0
    requests = proxy.requests
    assert all("13812345678" not in json.dumps(body, ensure_ascii=False) for body in requests)  # redacted on input
    last = requests[-1]["messages"]
    assert last[0]["role"] == "system" and last[0]["content"] == baseline_prompt(Lang.EN)
    assert any(m.get("content") == "Hi there" for m in last)  # the checkpointer kept the conversation
    assert "<CN_MOBILE_1>" in json.dumps(requests, ensure_ascii=False)


def test_a_chinese_message_gets_kefus_chinese_prompt(react: tuple[ReactTarget, LlmProxy]) -> None:
    target, proxy = react
    observation = target.turn("conv-zh", "C0001", "你好")
    assert observation.error is None and observation.reply
    assert proxy.requests[-1]["messages"][0]["content"] == baseline_prompt(Lang.ZH)


def test_the_overhead_part_measures_both_paths_for_kefu_and_the_baseline(
    kefu_on_fake: tuple[str, dict[str, str]], react: tuple[ReactTarget, LlmProxy], tmp_path: Path
) -> None:
    base_url, headers = kefu_on_fake
    kefu = [asyncio.run(run_kefu_level(base_url, headers, path, level, 2)) for path in PATH_TEXTS for level in (1, 2)]
    baseline = [run_baseline_level(react[0], path, 2, 2) for path in PATH_TEXTS]
    out = tmp_path / "results" / "bench.json"
    write_results(out, {"overhead": overhead_json(kefu, baseline)})

    data = json.loads(out.read_text())["overhead"]
    levels = {(row["path"], row["concurrency"]): row for row in data["levels"]}
    assert set(levels) == {("rules", 1), ("rules", 2), ("llm", 1), ("llm", 2)}
    for (_path, concurrency), row in levels.items():
        assert row["errors"] == 0 and row["turns"] == 2 * concurrency and row["turns_per_s"] > 0
        assert set(row["latency_ms"]) == {"p50", "p90", "p99"} and row["latency_ms"]["p50"] > 0
    assert levels[("rules", 2)]["rules_share"] == 1.0 and levels[("rules", 2)]["llm_calls_per_turn"] == 0
    assert levels[("llm", 2)]["llm_calls_per_turn"] > 0
    assert {row["path"] for row in data["baseline"]} == {"rules", "llm"}
    assert all(row["target"] == "react-baseline" and row["turns"] == 4 for row in data["baseline"])
    assert all(row["llm_calls_per_turn"] >= 1 for row in data["baseline"])  # the baseline has no rule path


def test_the_real_part_streams_turns_as_a_customer_app_and_reads_the_model_calls_at_the_proxy(
    kefu_on_fake: tuple[str, dict[str, str]], kefu_proxy: LlmProxy
) -> None:
    base_url, headers = kefu_on_fake
    conversations = [("C0001", ["你好", "我的订单到哪了？"]), ("C0002", ["Where is my order?"])]
    mark = kefu_proxy.mark()
    data = asyncio.run(real_turns(base_url, headers, kefu_proxy, conversations))

    assert data["errors"] == 0 and data["turns"] == len(data["latencies"]) == 3
    assert data["ttft_ms"]["p50"] is not None and data["ttft_ms"]["p99"] <= data["latency_ms"]["p99"]
    assert data["llm_calls"] == len(kefu_proxy.since(mark)) >= 2  # the two order questions went to the model
    assert data["llm_ttft_ms"]["p50"] is None  # Kefu does not stream from the model: nothing to time
    assert data["llm_call_ms"]["p50"] is not None


def test_the_side_by_side_summary_reads_the_endpoint_counts_and_divides_baseline_by_kefu(
    react: tuple[ReactTarget, LlmProxy],
) -> None:
    target, proxy = react
    metered = MeteredTarget(target, proxy)
    for text in ("Hi there", "Where is my order?"):
        metered.turn("conv-sum", "C0002", text)
    baseline = summarize_target(metered.turns, 0.5, 1)
    calls = sum(len(t.calls) for t in metered.turns)
    assert baseline["turns"] == 2 and baseline["llm_calls_per_turn"] == round(calls / 2, 2)
    assert len(baseline["latencies"]) == 2
    kefu = {**baseline, "llm_calls_per_turn": 1.0, "pass_rate": 1.0}
    data = side_by_side_json(kefu, baseline, endpoint="fake", llm="fake", scenarios=1, k=1)
    assert data["ratios"]["llm_calls_per_turn"] == round(baseline["llm_calls_per_turn"] / 1.0, 2)
    assert data["ratios"]["pass_rate"] == 0.5
    assert "says nothing about quality" in data["note"]


def test_every_option_of_kefu_bench_is_explained() -> None:
    parser = build_parser()
    options = [action for action in parser._actions if action.option_strings and action.dest != "help"]
    assert {a.dest for a in options} >= {"part", "concurrency", "llm_url", "model", "fake_llm", "limit", "k", "out"}
    assert all(action.help for action in options)
    args = parser.parse_args(["--part", "overhead", "--concurrency", "1,2", "--baseline-concurrency", ""])
    assert args.concurrency == [1, 2] and args.baseline_concurrency == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--concurrency", "0"])
