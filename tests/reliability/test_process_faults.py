"""The server and the LLM backend killed with SIGKILL, as real processes: nothing acknowledged is lost.

Smaller than ``python -m evals.reliability`` (``make soak``): one server for the module, on the
fake LLM running as its own process, with the suite's trained intent model and knowledge base so
start-up skips the training.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.intents import IntentModel
from evals.harness import KefuServer
from evals.reliability import FakeLlmProcess, kill9_scenario, llm_down_scenario

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeLlmProcess]:
    """The fake LLM as a process of its own, which the tests kill and start again."""
    process = FakeLlmProcess().start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeLlmProcess, intent_model: IntentModel, seeded_kb: Path
) -> Iterator[KefuServer]:
    """``kefu serve`` on a fresh data directory, answering with the fake LLM (short timeout and cooldown)."""
    root = tmp_path_factory.mktemp("faults")
    intent_model.save(root / "intents")
    shutil.copytree(seeded_kb, root / "kb")
    env = {
        "KEFU_INTENT_MODEL_DIR": str(root / "intents"),
        "KEFU_KB_DIR": str(root / "kb"),
        "KEFU_LLM_TIMEOUT_S": str(TIMEOUT_S),
        "KEFU_LLM_COOLDOWN_S": "1",
    }
    with KefuServer(root / "var", llm_base_url=backend.base_url, extra_env=env, ready_timeout_s=300) as running:
        yield running


def test_kill_9_under_load_loses_and_duplicates_nothing_and_every_conversation_resumes(server: KefuServer) -> None:
    result = asyncio.run(kill9_scenario(server, conversations=12, turns=3, kill_at=0.4))

    assert result["errors"] == []
    assert result["acknowledged"] == result["messages"] == 12 * 3 + 12
    assert result["acknowledged_before_kill"] < result["messages"]
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["unpaired_conversations"] == 0
    assert result["resumed"] == 12
    assert result["passed"]


def test_a_killed_llm_gives_rule_replies_and_the_llm_is_used_again_once_it_returns(
    server: KefuServer, backend: FakeLlmProcess
) -> None:
    result = llm_down_scenario(server, backend, timeout_s=TIMEOUT_S, overhead_s=5.0, down_turns=2)

    assert result["first_route"] == "llm"
    assert [turn["route"] for turn in result["down_turns"]] == ["rules", "rules"]
    assert all(turn["fallback"] for turn in result["down_turns"])
    assert result["recovery_s"] is not None
    assert result["history_customer_messages"] == 1 + 2 + result["turns_until_recovery"]
    assert result["passed"]
