"""The shared eval machinery: pass^k, percentiles, the recording LLM proxy and ``kefu report``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from langchain_openai import ChatOpenAI

from evals import report
from evals.fake_llm import FakeLlm
from evals.harness import free_port, percentiles
from evals.llm_proxy import LlmProxy
from evals.targets import pass_hat_k


def test_pass_hat_k_matches_tau_bench_estimator() -> None:
    # One task always passes, one passes 2 of 4, one never: pass^1 = (1 + .5 + 0) / 3.
    assert pass_hat_k([4, 2, 0], trials=4, k=1) == pytest.approx(0.5)
    assert pass_hat_k([4, 2, 0], trials=4, k=2) == pytest.approx((1 + 1 / 6) / 3)
    assert pass_hat_k([4, 2, 0], trials=4, k=4) == pytest.approx(1 / 3)
    values = [pass_hat_k([3, 1, 4, 2], trials=4, k=k) for k in range(1, 5)]
    assert values == sorted(values, reverse=True)  # never rises with k
    with pytest.raises(ValueError, match="between 1"):
        pass_hat_k([1], trials=2, k=3)


def test_percentiles_nearest_rank() -> None:
    assert percentiles(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99}
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None}


def test_proxy_counts_calls_and_tokens_as_the_endpoint_reports_them() -> None:
    with FakeLlm() as fake, LlmProxy(fake.base_url) as proxy:
        mark = proxy.mark()
        body = {"model": "m", "messages": [{"role": "user", "content": "Where is my order?"}]}
        reply = httpx.post(f"{proxy.base_url}/chat/completions", json=body).json()
        assert reply["choices"][0]["message"]["content"]
        calls = proxy.since(mark)
        assert len(calls) == 1 and calls[0].status == 200 and not calls[0].stream
        assert calls[0].prompt_tokens == reply["usage"]["prompt_tokens"] > 0
        assert calls[0].completion_tokens == reply["usage"]["completion_tokens"] > 0
        assert proxy.requests[-1]["messages"][-1]["content"] == "Where is my order?"
        assert len(fake.requests) == 1  # forwarded once, not retried
        assert httpx.get(f"{proxy.base_url}/models").status_code == 200


def test_proxy_reports_a_dead_upstream_as_502() -> None:
    with LlmProxy(f"http://127.0.0.1:{free_port()}/v1") as proxy:
        response = httpx.post(f"{proxy.base_url}/chat/completions", json={"model": "m", "messages": []})
        assert response.status_code == 502
        assert "upstream" in response.json()["error"]["message"]
        assert [call.status for call in proxy.calls] == [502]


class _Streaming(BaseHTTPRequestHandler):
    """An upstream that streams three tokens and a usage chunk, as llama-server and vLLM do."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for token in ("Hel", "lo", "!"):
            chunk = {"choices": [{"index": 0, "delta": {"content": token}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def streaming_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Streaming)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_proxy_passes_streams_through_and_times_the_first_token(streaming_upstream: str) -> None:
    with LlmProxy(streaming_upstream) as proxy:
        model = ChatOpenAI(base_url=proxy.base_url, api_key="x", model="m", max_retries=0)  # type: ignore[arg-type]
        assert "".join(str(chunk.content) for chunk in model.stream("hi")) == "Hello!"  # the client sees a stream
        (call,) = proxy.calls
        assert call.stream and call.ttft_s is not None and call.ttft_s <= call.seconds
        assert (call.prompt_tokens, call.completion_tokens) == (11, 3)
    assert _Streaming.seen[-1]["stream_options"] == {"include_usage": True}


# -- kefu report -----------------------------------------------------------------------------------

MACHINE = {"cores": 2, "memory_gib": 24.0, "gpu": None, "date": "2026-11-23"}


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    scenarios = {
        "suite": "scenarios",
        "model": "qwen2.5-coder-0.5b",
        "llm": "embedded",
        "k": 2,
        "machine": MACHINE,
        "date": "2026-11-23",
        "command": "kefu eval scenarios --k 2",
        "scenarios_total": 3,
        "pass_hat_k": {"1": 0.5, "2": 0.3333},
        "by_category": {"orders": {"n": 2, "pass_hat_k": {"1": 0.75, "2": 0.5}}},
        "by_lang": {"zh": {"n": 1, "pass_hat_k": {"1": 0.0, "2": 0.0}}},
        "turns": {"count": 12, "latency_ms": {"p50": 2400, "p90": 4100}, "llm_calls_per_turn": 0.8, "rules_share": 0.4},
    }
    bench = {
        "machine": MACHINE,
        "model": "qwen2.5-coder-0.5b",
        "command": "kefu bench",
        "overhead": {
            "levels": [
                {
                    "path": "rules",
                    "concurrency": 1,
                    "turns": 20,
                    "turns_per_s": 9.5,
                    "latency_ms": {"p50": 90, "p99": 150},
                },
                {
                    "path": "rules",
                    "concurrency": 10,
                    "turns": 200,
                    "turns_per_s": 12.0,
                    "latency_ms": {"p50": 700, "p99": 1900},
                },
            ],
            "baseline": [{"concurrency": 1, "turns": 20, "turns_per_s": 30.0, "latency_ms": {"p50": 30, "p99": 60}}],
        },
        "side_by_side": {
            "endpoint": "fake",
            "scenarios": 3,
            "k": 1,
            "targets": {
                "kefu": {"llm_calls_per_turn": 0.8, "prompt_tokens_per_turn": 500, "pass_rate": 0.5},
                "react-baseline": {"llm_calls_per_turn": 2.4, "prompt_tokens_per_turn": 3000, "pass_rate": 0.25},
            },
            "ratios": {"llm_calls_per_turn": 3.0, "prompt_tokens_per_turn": 6.0},
        },
    }
    reliability = {"machine": MACHINE, "kill9": {"passed": True, "lost": 0, "duplicated": 0, "restart_s": 11.5}}
    for name, data in {"scenarios": scenarios, "bench": bench, "reliability": reliability}.items():
        (results / f"{name}.json").write_text(json.dumps(data))
    return results


def test_report_renders_every_results_file_and_says_what_is_missing(tmp_path: Path) -> None:
    text = report.render(report.load(_results(tmp_path)))
    assert text.startswith(report.START) and text.rstrip().endswith(report.END)
    assert "| **all** | 3 | 50% | 33% |" in text
    assert "| orders | 2 | 75% | 50% |" in text
    assert "| LLM calls per turn | 0.80 | 2.40 | 3.00× |" in text
    assert "| Kefu, rules path | 10 | 200 | 12.0 | 700 ms | 1.9 s |" in text
    assert "| kill9 | passed | lost: 0; duplicated: 0; restart s: 11.50 |" in text
    assert "model: qwen2.5-coder-0.5b · 2 CPU cores, 24 GiB, no GPU · 2026-11-23" in text
    assert "Not run yet: `kefu eval tau2" in text  # no tau2.json: no invented numbers
    assert "Not run yet: `kefu bench --part real`" in text


def test_report_rewrites_only_its_section_and_check_notices_drift(tmp_path: Path) -> None:
    results = _results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# Kefu\n\nintro\n\n## Development\n\nmake test\n")
    args = ["--results", str(results), "--readme", str(readme), "--plots", str(tmp_path / "plots")]
    assert report.main(args) == 0
    first = readme.read_text()
    assert first.startswith("# Kefu\n\nintro\n\n" + report.START) and first.endswith("## Development\n\nmake test\n")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["overhead.png", "pass_k.png"]
    assert "docs/results/pass_k.png" in first
    assert report.main(args) == 0 and readme.read_text() == first  # idempotent
    assert report.main([*args, "--check"]) == 0
    (results / "scenarios.json").write_text(json.dumps({"k": 1, "pass_hat_k": {"1": 0.9}, "machine": MACHINE}))
    assert report.main([*args, "--check"]) == 1
