"""``AuditLog``: the access audit; who viewed what, who saw unredacted values, and automated decisions.

Who viewed which conversation or profile, who saw the values behind placeholders, and the reason
of every automated decision that is not a dialogue turn (those are in the turn audit). Rows live
in the ``access_audit`` table (``core.db.AccessAuditRow``) for ``Settings.audit_retention_days``;
a row names what was seen (a conversation id, the placeholders revealed), never the personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.db import AccessAuditRow
from core.errors import InvalidInputError
from core.types import AccessAuditEntry

__all__ = ["MAX_QUERY_LIMIT", "AuditLog"]

MAX_QUERY_LIMIT = 1000
"""The most rows one query returns; page with ``until`` for more."""

_LENGTHS = {"actor": 64, "role": 16, "action": 40, "target": 80}
"""Column widths of ``access_audit``; longer values are refused rather than cut (they name things)."""
_DETAIL_LENGTH = 1000


def _entry(row: AccessAuditRow) -> AccessAuditEntry:
    return AccessAuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        role=row.role,
        action=row.action,
        target=row.target,
        detail=row.detail,
    )


def _naive_utc(moment: datetime) -> datetime:
    """``moment`` as the store keeps times: UTC without a zone; a naive time is taken to be UTC already.

    Raises:
        InvalidInputError: a time whose UTC equivalent is outside the years 1 to 9999.
    """
    try:
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
    except OverflowError as exc:
        raise InvalidInputError(f"{moment.isoformat()} is out of range in UTC") from exc


def _checked(name: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInputError(f"audit {name} is empty")
    if len(value) > _LENGTHS[name]:
        raise InvalidInputError(f"audit {name} is longer than {_LENGTHS[name]} characters")
    return value


def _matching(
    query: Select[AccessAuditRow], column: InstrumentedAttribute[str], pattern: str
) -> Select[AccessAuditRow]:
    """Exact match, or a prefix match when ``pattern`` ends with ``*`` (``agent:*``, ``decision:*``)."""
    if not pattern.endswith("*"):
        return query.where(column == pattern)
    prefix = pattern[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return query.where(column.like(f"{prefix}%", escape="\\"))


class AuditLog:
    """Append-only access audit over one store database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine``; its tables must exist (see ``core.db.make_engine``)."""
        self._engine = engine

    def record(
        self, actor: str, role: str, action: str, target: str, detail: str = "", *, at: datetime | None = None
    ) -> AccessAuditEntry:
        """Append one row and return it.

        Args:
            actor: Who: ``agent:<id>``, ``key:<id>``, ``session:<customer>``, ``open`` or ``kefu``.
            role: The actor's role: ``agent``, ``lead``, ``key``, ``customer``, ``open`` or ``system``.
            action: What: ``view_conversation``, ``view_profile``, ``view_unredacted``, ``decision:nba``, ...
            target: The conversation, customer or handoff concerned.
            detail: What was seen (never the values) or the decision's reason; cut to 1,000 characters.
            at: When; defaults to now (UTC).

        Raises:
            InvalidInputError: an empty actor, role, action or target, or one longer than its column.
        """
        row = AccessAuditRow(
            at=_naive_utc(at) if at is not None else datetime.now(UTC).replace(tzinfo=None),
            actor=_checked("actor", actor),
            role=_checked("role", role),
            action=_checked("action", action),
            target=_checked("target", target),
            detail=detail[:_DETAIL_LENGTH],
        )
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return _entry(row)

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AccessAuditEntry]:
        """Rows matching every filter given, newest first.

        ``actor``, ``action`` and ``target`` match exactly, or by prefix when they end with ``*``.

        Args:
            actor: Only this actor (``agent:lin``) or actors with this prefix (``key:*``).
            action: Only this action, or a prefix (``view_*``).
            target: Only this conversation, customer or handoff id, or a prefix.
            since: Only rows at or after this time (a naive time is UTC).
            until: Only rows before this time.
            limit: At most this many rows, 1 to ``MAX_QUERY_LIMIT``.

        Raises:
            InvalidInputError: a limit out of range, or ``since`` after ``until``.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise InvalidInputError(f"limit must be 1 to {MAX_QUERY_LIMIT}")
        start = _naive_utc(since) if since is not None else None
        end = _naive_utc(until) if until is not None else None
        if start is not None and end is not None and start > end:
            raise InvalidInputError("since is after until")
        query = select(AccessAuditRow)
        for column, pattern in (
            (AccessAuditRow.actor, actor),
            (AccessAuditRow.action, action),
            (AccessAuditRow.target, target),
        ):
            if pattern:
                query = _matching(query, column, pattern)
        if start is not None:
            query = query.where(AccessAuditRow.at >= start)
        if end is not None:
            query = query.where(AccessAuditRow.at < end)
        query = query.order_by(AccessAuditRow.at.desc(), AccessAuditRow.id.desc()).limit(limit)
        with Session(self._engine) as session:
            return [_entry(row) for row in session.scalars(query)]
