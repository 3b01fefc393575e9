"""The WebSocket benchmark runs end to end against a live server: a smoke test, no timing asserted.

The full run (``python -m evals.ws_bench --sessions 500``) starts its own server with a fake LLM;
here its core, ``run_bench``, drives the suite's in-thread server (rules only) with a few sessions.
"""

from __future__ import annotations

import asyncio

from rich.console import Console

from core.db import make_engine
from core.desk import DeskStore
from core.settings import Settings
from evals.ws_bench import BenchResult, load_customers, print_report, run_bench
from serving.auth import hash_password

PASSWORD = "correct horse battery"


def test_the_bench_holds_sessions_answers_turns_and_times_handoffs(
    live_server: str, api_key: str, settings: Settings
) -> None:
    engine = make_engine(settings.resolved_database_url)
    DeskStore(engine).add_agent("bench", "Bench", "lead", hash_password(PASSWORD))
    engine.dispose()
    customers = load_customers(settings.resolved_database_url)
    assert [c.id for c in customers[:2]] == ["C0001", "C0002"]

    result = asyncio.run(
        run_bench(
            live_server,
            api_key,
            customers,
            sessions=5,
            turns=1,
            handoffs=2,
            baseline_turns=2,
            agent=("bench", PASSWORD),
        )
    )

    assert isinstance(result, BenchResult)
    assert result.failures == []
    assert result.held == result.open_after_turns == 5
    assert result.server_held == 5
    assert len(result.turn_ms) == len(result.added_ms) == len(result.server_ms) == 5
    assert len(result.idle_ms) == len(result.idle_added_ms) == 2
    assert [h.handoff_id for h in result.handoffs] and len(result.handoffs) == 2
    summary = result.to_json()["summary"]
    assert set(summary) >= {
        "sessions",
        "held",
        "turns",
        "turns_per_s",
        "idle_turn_ms",
        "idle_added_ms",
        "turn_ms",
        "added_ms",
        "handoff_queue_ms",
        "handoff_packet_ms",
        "failures",
    }
    assert set(summary["turn_ms"]) == {"p50", "p90", "p99"}
    assert summary["turns"] == 5 and summary["failures"] == 0


def test_the_report_prints_without_samples() -> None:
    console = Console(record=True, width=120)
    print_report(BenchResult(sessions=0, turns_per_session=0, llm_latency_ms=0), console)
    assert "turns per second" in console.export_text()
