"""``core.audit.AuditLog`` on a real SQLite database: rows written, filtered, ordered and bounded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from core.audit import MAX_QUERY_LIMIT, AuditLog
from core.db import make_engine
from core.errors import InvalidInputError

T0 = datetime(2026, 11, 1, 12, 0)


@pytest.fixture
def engine(make_database_url: Callable[..., str]) -> Engine:
    return make_engine(make_database_url())


@pytest.fixture
def log(engine: Engine) -> AuditLog:
    """An audit with one row of each kind Kefu records, a minute apart."""
    audit = AuditLog(engine)
    rows = [
        ("agent:lin", "agent", "view_conversation", "h1", "handoff 1"),
        ("agent:zhao", "lead", "view_unredacted", "h1", "handoff 1: <CN_MOBILE_1>"),
        ("key:ab12", "key", "view_profile", "C0001", ""),
        ("session:C0002", "customer", "view_profile", "C0002", ""),
        ("kefu", "system", "decision:nba", "C0001", "retention_offer (confidence 0.80): churn risk"),
        ("key:ab12", "key", "view_conversation", "h2", "history"),
    ]
    for minute, (actor, role, action, target, detail) in enumerate(rows):
        audit.record(actor, role, action, target, detail, at=T0 + timedelta(minutes=minute))
    return audit


def test_a_recorded_row_comes_back_whole(engine: Engine) -> None:
    audit = AuditLog(engine)
    written = audit.record("agent:zhao", "lead", "view_unredacted", "conv-9", "handoff 3: <EMAIL_1>", at=T0)
    assert written.id > 0 and written.at == T0
    (read,) = audit.query()
    assert read == written
    assert (read.actor, read.role, read.action, read.target, read.detail) == (
        "agent:zhao",
        "lead",
        "view_unredacted",
        "conv-9",
        "handoff 3: <EMAIL_1>",
    )


def test_rows_are_newest_first_and_the_clock_is_utc(engine: Engine) -> None:
    audit = AuditLog(engine)
    before = datetime.now(UTC).replace(tzinfo=None)
    audit.record("key:a", "key", "view_profile", "C0001")
    audit.record("key:a", "key", "view_profile", "C0002")
    rows = audit.query()
    assert [row.target for row in rows] == ["C0002", "C0001"]
    assert all(before - timedelta(seconds=1) <= row.at <= before + timedelta(minutes=1) for row in rows)


def test_filters_match_exactly_or_by_prefix(log: AuditLog) -> None:
    assert [r.action for r in log.query(actor="key:ab12")] == ["view_conversation", "view_profile"]
    assert [r.actor for r in log.query(action="view_profile")] == ["session:C0002", "key:ab12"]
    assert {r.action for r in log.query(target="h1")} == {"view_conversation", "view_unredacted"}
    assert [r.actor for r in log.query(actor="agent:*")] == ["agent:zhao", "agent:lin"]
    assert [r.action for r in log.query(action="decision:*")] == ["decision:nba"]
    assert [r.target for r in log.query(actor="key:*", action="view_profile")] == ["C0001"]
    assert log.query(actor="agent") == [], "without a star the match is exact"


def test_a_prefix_treats_sql_wildcards_literally(engine: Engine) -> None:
    audit = AuditLog(engine)
    audit.record("key:a_b", "key", "view_profile", "C0001", at=T0)
    audit.record("key:axb", "key", "view_profile", "C0002", at=T0)
    assert [r.actor for r in audit.query(actor="key:a_*")] == ["key:a_b"]
    assert audit.query(actor="key:%*") == []


def test_time_window_and_limit(log: AuditLog) -> None:
    window = log.query(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [r.action for r in window] == ["view_profile", "view_unredacted"], "since inclusive, until exclusive"
    assert len(log.query(limit=2)) == 2
    assert log.query(limit=2)[0].action == "view_conversation", "the newest rows"
    # An aware time is converted to UTC: 20:02 in UTC+8 is 12:02 UTC.
    china = timezone(timedelta(hours=8))
    assert [r.actor for r in log.query(since=datetime(2026, 11, 1, 20, 4, tzinfo=china))] == ["key:ab12", "kefu"]


@pytest.mark.parametrize("limit", [0, -1, MAX_QUERY_LIMIT + 1])
def test_a_limit_out_of_range_is_refused(log: AuditLog, limit: int) -> None:
    with pytest.raises(InvalidInputError, match=f"limit must be 1 to {MAX_QUERY_LIMIT}"):
        log.query(limit=limit)


def test_since_after_until_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInputError, match="since is after until"):
        log.query(since=T0 + timedelta(hours=1), until=T0)


def test_bad_rows_are_refused_and_long_details_are_cut(engine: Engine) -> None:
    audit = AuditLog(engine)
    with pytest.raises(InvalidInputError, match="actor is empty"):
        audit.record("  ", "key", "view_profile", "C0001")
    with pytest.raises(InvalidInputError, match="target is longer than 80"):
        audit.record("key:a", "key", "view_profile", "x" * 81)
    with pytest.raises(InvalidInputError, match="role is longer than 16"):
        audit.record("key:a", "k" * 17, "view_profile", "C0001")
    assert audit.query() == [], "nothing half-written"
    row = audit.record("kefu", "system", "decision:nba", "C0001", "why " * 400)
    assert len(row.detail) == 1000 and audit.query()[0].detail == row.detail


def test_a_time_beyond_the_calendar_in_utc_is_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidInputError, match="out of range in UTC"):
        log.query(since=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))))
