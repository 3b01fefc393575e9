"""``DeskStore``: handoffs, agents, API keys, channel identities and the answered-message log.

The answered-message log makes a retried message idempotent.

Everything here is about people and channels around the agent, not about the shop, so it lives
beside ``SqlStore`` rather than inside it. Secrets arrive already hashed: hashing is ``serving``'s job.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import (
    AgentRow,
    ApiKeyRow,
    ChannelIdentityRow,
    CustomerRow,
    HandoffNoteRow,
    HandoffRow,
    InboundMessageRow,
)
from core.errors import ConflictError, NotFoundError
from core.types import (
    AgentAccount,
    ApiKey,
    Channel,
    ConversationId,
    CustomerId,
    Handoff,
    HandoffNote,
    HandoffStatus,
    Lang,
    TicketId,
    Tier,
)

__all__ = ["OPEN_STATUSES", "DeskStore"]

OPEN_STATUSES = (HandoffStatus.WAITING.value, HandoffStatus.ACTIVE.value)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_MAX_ROW_ID = 2**31 - 1
"""The largest id an ``Integer`` key holds on PostgreSQL (SQLite's go further; Kefu's never get there)."""


def _storable(row_id: int) -> bool:
    """Whether an id can name a row at all: a larger one names nothing, and PostgreSQL refuses to compare it."""
    return 1 <= row_id <= _MAX_ROW_ID


def _note(row: HandoffNoteRow) -> HandoffNote:
    return HandoffNote(id=row.id, agent_id=row.agent_id, text=row.text, created_at=row.created_at)


def _handoff(row: HandoffRow, notes: list[HandoffNoteRow] | None = None) -> Handoff:
    return Handoff(
        id=row.id,
        conversation_id=ConversationId(row.conversation_id),
        customer_id=CustomerId(row.customer_id),
        channel=Channel(row.channel),
        ticket_id=TicketId(row.ticket_id) if row.ticket_id is not None else None,
        status=HandoffStatus(row.status),
        reason=row.reason,
        tier=Tier(row.tier),
        emotion=row.emotion,
        packet=dict(row.packet),
        agent_id=row.agent_id,
        created_at=row.created_at,
        taken_at=row.taken_at,
        ended_at=row.ended_at,
        notes=[_note(n) for n in notes or []],
    )


def _agent(row: AgentRow) -> AgentAccount:
    return AgentAccount(id=row.id, name=row.name, role=row.role, active=row.active)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id, name=row.name, channel=Channel(row.channel), created_at=row.created_at, revoked_at=row.revoked_at
    )


class DeskStore:
    """SQLAlchemy persistence of the human desk and the channels."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    # -- handoffs ---------------------------------------------------------------------------
    def open_handoff(
        self,
        *,
        conversation_id: ConversationId,
        customer_id: CustomerId,
        channel: Channel,
        ticket_id: TicketId | None,
        reason: str,
        tier: Tier,
        emotion: str,
        packet: dict[str, Any],
    ) -> Handoff:
        """Queue a conversation for a human; an already open handoff of it is refreshed, not duplicated."""
        with self._session() as session, session.begin():
            row = session.scalars(
                select(HandoffRow).where(
                    HandoffRow.conversation_id == conversation_id, HandoffRow.status.in_(OPEN_STATUSES)
                )
            ).first()
            if row is None:
                row = HandoffRow(
                    conversation_id=conversation_id,
                    customer_id=customer_id,
                    channel=channel.value,
                    status=HandoffStatus.WAITING.value,
                    created_at=_now(),
                )
                session.add(row)
            row.ticket_id = ticket_id if ticket_id is not None else row.ticket_id
            row.reason = reason[:300]
            row.tier = tier.value
            row.emotion = emotion
            row.packet = packet
            session.flush()
            return _handoff(row)

    def get_handoff(self, handoff_id: int) -> Handoff:
        """A handoff with its notes.

        Raises:
            NotFoundError: no such handoff.
        """
        with self._session() as session:
            row = session.get(HandoffRow, handoff_id) if _storable(handoff_id) else None
            if row is None:
                raise NotFoundError(f"no handoff {handoff_id}")
            notes = session.scalars(
                select(HandoffNoteRow).where(HandoffNoteRow.handoff_id == handoff_id).order_by(HandoffNoteRow.id)
            ).all()
            return _handoff(row, list(notes))

    def open_handoff_for(self, conversation_id: str) -> Handoff | None:
        """The waiting or active handoff of a conversation, if there is one."""
        with self._session() as session:
            row = session.scalars(
                select(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.status.in_(OPEN_STATUSES))
                .order_by(HandoffRow.id.desc())
            ).first()
            return _handoff(row) if row is not None else None

    def list_handoffs(self, statuses: tuple[str, ...] = OPEN_STATUSES, limit: int = 200) -> list[Handoff]:
        """Handoffs in the given statuses, oldest first."""
        with self._session() as session:
            rows = session.scalars(
                select(HandoffRow).where(HandoffRow.status.in_(statuses)).order_by(HandoffRow.id).limit(limit)
            ).all()
            return [_handoff(row) for row in rows]

    def take_handoff(self, handoff_id: int, agent_id: str) -> Handoff:
        """Give a waiting handoff to an agent (taking one's own again is a no-op).

        Raises:
            NotFoundError: no such handoff.
            ConflictError: another agent has it, or it is no longer open.
        """
        with self._session() as session, session.begin():
            row = session.get(HandoffRow, handoff_id, with_for_update=True) if _storable(handoff_id) else None
            if row is None:
                raise NotFoundError(f"no handoff {handoff_id}")
            if row.status == HandoffStatus.ACTIVE.value and row.agent_id == agent_id:
                return _handoff(row)
            if row.status != HandoffStatus.WAITING.value:
                owner = f" by {row.agent_id}" if row.status == HandoffStatus.ACTIVE.value else ""
                raise ConflictError(f"handoff {handoff_id} is already {row.status}{owner}")
            row.status = HandoffStatus.ACTIVE.value
            row.agent_id = agent_id
            row.taken_at = _now()
            return _handoff(row)

    def end_handoff(self, handoff_id: int, agent_id: str, status: HandoffStatus) -> Handoff:
        """Hand a conversation back to the bot (``RETURNED``) or close it (``CLOSED``).

        Raises:
            NotFoundError: no such handoff.
            ConflictError: it is not open, or another agent owns it.
        """
        with self._session() as session, session.begin():
            row = session.get(HandoffRow, handoff_id, with_for_update=True) if _storable(handoff_id) else None
            if row is None:
                raise NotFoundError(f"no handoff {handoff_id}")
            if row.status not in OPEN_STATUSES:
                raise ConflictError(f"handoff {handoff_id} is already {row.status}")
            if row.status == HandoffStatus.ACTIVE.value and row.agent_id != agent_id:
                raise ConflictError(f"handoff {handoff_id} belongs to {row.agent_id}")
            row.status = status.value
            row.agent_id = row.agent_id or agent_id
            row.ended_at = _now()
            return _handoff(row)

    def add_note(self, handoff_id: int, agent_id: str, text: str) -> HandoffNote:
        """Attach a private note to a handoff.

        Raises:
            NotFoundError: no such handoff.
        """
        with self._session() as session, session.begin():
            if not _storable(handoff_id) or session.get(HandoffRow, handoff_id) is None:
                raise NotFoundError(f"no handoff {handoff_id}")
            row = HandoffNoteRow(handoff_id=handoff_id, agent_id=agent_id, text=text[:2000], created_at=_now())
            session.add(row)
            session.flush()
            return _note(row)

    # -- agents -----------------------------------------------------------------------------
    def add_agent(self, agent_id: str, name: str, role: str, password_hash: str) -> AgentAccount:
        """Create a console account, or reset the name, role and password of an existing one."""
        with self._session() as session, session.begin():
            row = session.get(AgentRow, agent_id)
            if row is None:
                row = AgentRow(id=agent_id, created_at=_now())
                session.add(row)
            row.name, row.role, row.password_hash, row.active = name, role, password_hash, True
            return _agent(row)

    def agent_credentials(self, agent_id: str) -> tuple[AgentAccount, str] | None:
        """An agent and their password hash, for logging in; None if unknown."""
        with self._session() as session:
            row = session.get(AgentRow, agent_id)
            return (_agent(row), row.password_hash) if row is not None else None

    def get_agent(self, agent_id: str) -> AgentAccount | None:
        """An agent account, or None."""
        with self._session() as session:
            row = session.get(AgentRow, agent_id)
            return _agent(row) if row is not None else None

    def list_agents(self) -> list[AgentAccount]:
        """Every console account."""
        with self._session() as session:
            return [_agent(row) for row in session.scalars(select(AgentRow).order_by(AgentRow.id))]

    def set_agent_active(self, agent_id: str, active: bool) -> None:
        """Disable (or re-enable) a console account.

        Raises:
            NotFoundError: no such agent.
        """
        with self._session() as session, session.begin():
            row = session.get(AgentRow, agent_id)
            if row is None:
                raise NotFoundError(f"no agent {agent_id!r}")
            row.active = active

    # -- API keys ---------------------------------------------------------------------------
    def add_api_key(self, key_id: str, name: str, channel: Channel, digest: str) -> ApiKey:
        """Store a new key's digest."""
        with self._session() as session, session.begin():
            row = ApiKeyRow(id=key_id, name=name, channel=channel.value, digest=digest, created_at=_now())
            session.add(row)
            return _key(row)

    def api_key_by_digest(self, digest: str) -> ApiKey | None:
        """The live (not revoked) key with this SHA-256 digest."""
        with self._session() as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.digest == digest)).first()
            return _key(row) if row is not None and row.revoked_at is None else None

    def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included."""
        with self._session() as session:
            return [_key(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key by its id.

        Raises:
            NotFoundError: no such key.
        """
        with self._session() as session, session.begin():
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"no API key {key_id!r}")
            row.revoked_at = row.revoked_at or _now()
            return _key(row)

    # -- channel identities -----------------------------------------------------------------
    def channel_customer(self, channel: Channel, external_id: str, lang: Lang = Lang.ZH) -> CustomerId:
        """The customer behind an outside identity, created as a guest on first contact.

        A guest has no real contact data: ``<external id>@<channel>.invalid`` keeps the e-mail unique
        and routable nowhere, and the agent asks for an order number as it would anyone's.
        """
        key = hashlib.sha256(f"{channel.value}:{external_id}".encode()).hexdigest()
        with self._session() as session, session.begin():
            row = session.get(ChannelIdentityRow, (channel.value, external_id))
            if row is not None:
                return CustomerId(row.customer_id)
            customer_id = f"G{key[:10].upper()}"
            if session.get(CustomerRow, customer_id) is None:
                session.add(
                    CustomerRow(
                        id=customer_id,
                        name=f"{channel.value} guest",
                        email=f"{key[:24]}@{channel.value}.invalid",
                        phone="",
                        tier=Tier.STANDARD.value,
                        lang=lang.value,
                        city="",
                        created_at=_now(),
                    )
                )
                session.flush()  # no relationship() orders the inserts: the customer must exist first
            session.add(
                ChannelIdentityRow(
                    channel=channel.value, external_id=external_id, customer_id=customer_id, created_at=_now()
                )
            )
            return CustomerId(customer_id)

    # -- answered messages ------------------------------------------------------------------
    def answered(self, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        """The stored answer to a message already processed, if any."""
        with self._session() as session:
            row = session.get(InboundMessageRow, (conversation_id, message_id))
            return dict(row.result) if row is not None else None

    def remember_answer(self, conversation_id: str, message_id: str, result: dict[str, Any]) -> bool:
        """Store the answer to a message; False if one was stored already (a concurrent retry)."""
        try:
            with self._session() as session, session.begin():
                session.add(
                    InboundMessageRow(
                        conversation_id=conversation_id, message_id=message_id, result=result, created_at=_now()
                    )
                )
        except IntegrityError:
            return False
        return True

    def prune_answers(self, older_than: timedelta) -> int:
        """Forget answers older than ``older_than``; returns how many."""
        with self._session() as session, session.begin():
            result = session.execute(
                delete(InboundMessageRow).where(InboundMessageRow.created_at < _now() - older_than)
            )
            return int(getattr(result, "rowcount", 0) or 0)
