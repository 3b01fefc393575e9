"""Three API replicas behind nginx on one PostgreSQL and one Redis, all real processes on loopback.

The scenarios of ``python -m evals.cluster`` at test size (``make cluster`` runs them full size):
an agent on one replica takes over a customer connected to another, and 200 customers chatting
over WebSockets through nginx lose, duplicate and reorder nothing they were answered while one
replica is SIGKILLed. The replicas answer with the fake LLM (its own process); they start on the
suite's trained intent model and knowledge base, so start-up skips training and ingestion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.intents import IntentModel
from evals.cluster import Cluster, check_history, failover, handoff
from evals.localservers import missing


def _logs(cluster: Cluster) -> str:
    return "\n".join(f"--- replica {i}\n{cluster.log_tail(i, 25)}" for i in range(len(cluster.replicas)))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, intent_model: IntentModel, seeded_kb: Path) -> Iterator[Cluster]:
    """PostgreSQL, Redis, the fake LLM, three replicas and nginx, for the module (logs stay in its folder)."""
    absent = missing()
    assert not absent, f"the cluster tests need {', '.join(absent)}: `make services` installs them"
    root = tmp_path_factory.mktemp("cluster")
    intent_model.save(root / "intents")
    with Cluster(
        3,
        workdir=root / "replicas",
        kb_template=seeded_kb,
        intents_dir=root / "intents",
        durable=False,  # the kill hits a replica, never the database
        turn_lock_ttl_s=3.0,
        ready_timeout_s=300,
    ) as running:
        yield running


@pytest.mark.cluster
def test_an_agent_on_one_replica_takes_over_and_answers_a_customer_on_another(cluster: Cluster) -> None:
    result = asyncio.run(handoff(cluster, console_replica=0, customer_replica=1))

    assert result["error"] is None, f"{result}\n{_logs(cluster)}"
    assert result["handoff_id"] is not None  # replica 0's console saw the queue event of replica 1's turn
    assert result["agent_seen_by_customer"] == "Bench Lead"  # the customer on replica 1 saw the agent join
    assert result["agent_reply_ms"] is not None  # ... and got the reply sent on replica 0
    assert result["customer_message_ms"] is not None  # replica 0's console got the customer's next message
    assert result["passed"]


@pytest.mark.cluster
def test_a_replica_killed_mid_run_loses_duplicates_and_reorders_nothing(cluster: Cluster) -> None:
    result = asyncio.run(failover(cluster, conversations=200, turns=3, kill_at=1 / 3, deadline_s=600))

    assert result["errors"] == [], f"{result}\n{_logs(cluster)}"
    assert result["acknowledged"] == result["messages"] == 600
    assert result["acknowledged_before_kill"] < 600
    assert result["conversations_on_killed_replica"] > 0
    assert result["recovered"] == result["conversations_on_killed_replica"]
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["out_of_order"] == 0
    assert result["unpaired"] == 0
    assert result["restarted_replica_answers"] is True
    assert result["passed"]


# The checker must be able to fail: these need no cluster.
def _history(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"role": role, "text": text} for role, text in pairs]


def test_the_history_check_passes_each_answered_message_once_in_order_with_its_reply() -> None:
    entries = _history(("customer", "a"), ("agent", "A"), ("notice", "n"), ("customer", "b"), ("agent", "B"))

    check = check_history(entries, ["a", "b"], answered=2)

    assert check.ok and check.unacknowledged_stored == 0


def test_the_history_check_counts_lost_duplicated_reordered_and_unpaired_messages() -> None:
    lost = check_history(_history(("customer", "a"), ("agent", "A")), ["a", "b"], answered=2)
    doubled = check_history(
        _history(("customer", "a"), ("agent", "A"), ("customer", "a"), ("agent", "A")), ["a"], answered=1
    )
    swapped = check_history(
        _history(("customer", "b"), ("agent", "B"), ("customer", "a"), ("agent", "A")), ["a", "b"], answered=2
    )
    unanswered = check_history(_history(("customer", "a"), ("customer", "b"), ("agent", "B")), ["a", "b"], answered=2)

    assert (lost.lost, lost.ok) == (1, False)
    assert (doubled.duplicated, doubled.ok) == (1, False)
    assert (swapped.in_order, swapped.lost, swapped.ok) == (False, 0, False)
    assert (unanswered.paired, unanswered.ok) == (False, False)


def test_a_message_stored_but_never_answered_is_neither_lost_nor_duplicated() -> None:
    check = check_history(_history(("customer", "a"), ("agent", "A"), ("customer", "b")), ["a", "b"], answered=1)

    assert check.ok
    assert check.unacknowledged_stored == 1
