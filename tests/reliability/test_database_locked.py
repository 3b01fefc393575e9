"""A locked database: the turn is refused with 503 and a reason, the conversation stays intact, the retry works.

A second connection holds ``BEGIN EXCLUSIVE`` on the server's checkpoint file or on its store file
(they are separate SQLite files) while a customer message arrives.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.errors import RateLimitError
from core.settings import Settings
from serving.errors import StorageUnavailableError, retry_after_of, status_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with a short wait for locks, so a refused turn comes back quickly."""
    return settings.model_copy(update={"db_busy_timeout_s": 0.5})


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def _send(client: httpx.Client, conversation: str, text: str, message_id: str) -> httpx.Response:
    return client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"text": text, "customer_id": "C0002", "message_id": message_id, "lang": "en"},
    )


def _customer_texts(client: httpx.Client, conversation: str) -> list[str]:
    response = client.get(f"/v1/conversations/{conversation}", params={"customer_id": "C0002"})
    response.raise_for_status()
    return [m["text"] for m in response.json()["messages"] if m["role"] == "customer"]


@pytest.mark.sqlite_only  # SQLite's file locks; PostgreSQL locks rows, and waits
@pytest.mark.parametrize("database", ["conversations.sqlite", "kefu.db"])
def test_a_locked_database_gives_503_and_the_same_message_then_goes_through_once(
    live_server: str, api_key: str, settings: Settings, database: str
) -> None:
    conversation = f"locked-{database.split('.')[0]}"
    with httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as client:
        assert _send(client, conversation, "Hi there", "m0").status_code == 200

        with locked(settings.data_dir / database):
            refused = _send(client, conversation, "Where is my order?", "m1")
            assert refused.status_code == 503
            assert "database is locked" in refused.json()["detail"]
            assert "same message_id" in refused.json()["detail"]
            if database == "kefu.db":
                # An API key's read is recorded in the access audit, in the locked file: no unaudited
                # view, so it is refused the same way, and a retry later goes through.
                read = client.get(f"/v1/conversations/{conversation}", params={"customer_id": "C0002"})
                assert read.status_code == 503 and read.headers["Retry-After"]
            else:
                # Reads still work while a writer holds the checkpoints (WAL), and show the state before
                # the message, or with the whole turn when only the store's write failed after the checkpoint.
                assert _customer_texts(client, conversation) in (["Hi there"], ["Hi there", "Where is my order?"])

        retried = _send(client, conversation, "Where is my order?", "m1")
        assert retried.status_code == 200 and retried.json()["reply"]
        again = _send(client, conversation, "Where is my order?", "m1")
        assert again.json()["reply"] == retried.json()["reply"]
        assert _send(client, conversation, "Thanks, that helps", "m2").status_code == 200
        assert _customer_texts(client, conversation) == ["Hi there", "Where is my order?", "Thanks, that helps"]


def test_storage_errors_are_503_with_a_retry_after() -> None:
    error = StorageUnavailableError("database is locked", retry_after_s=0.2)
    assert status_of(error) == 503
    assert retry_after_of(error) == 1
    assert retry_after_of(RateLimitError("slow down", retry_after_s=7.4)) == 7
