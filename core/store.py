"""``SqlStore``: the SQLAlchemy adapter of the ``SupportStore`` port."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, String, cast, func, or_, select
from sqlalchemy.orm import Session, selectinload

from core.db import ConversationLogRow, CustomerRow, OrderItemRow, OrderRow, ProductRow, TicketRow, TurnAuditRow
from core.errors import InvalidInputError, NotFoundError
from core.types import (
    ConversationId,
    Customer,
    CustomerId,
    CustomerProfile,
    Lang,
    Order,
    OrderId,
    OrderItem,
    OrderStatus,
    Product,
    Sku,
    Ticket,
    TicketId,
    TicketKind,
    TicketStatus,
    Tier,
    TurnAudit,
)

__all__ = ["SqlStore"]

_NEGATIVE_EMOTIONS = frozenset({"dissatisfied", "angry"})
_NOT_SPENT = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value, OrderStatus.RETURNED.value)


def _customer(row: CustomerRow) -> Customer:
    return Customer(
        id=CustomerId(row.id),
        name=row.name,
        email=row.email,
        phone=row.phone,
        tier=Tier(row.tier),
        lang=Lang(row.lang),
        city=row.city,
        created_at=row.created_at,
    )


def _order(row: OrderRow) -> Order:
    return Order(
        id=OrderId(row.id),
        customer_id=CustomerId(row.customer_id),
        status=OrderStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        total=row.total,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
        estimated_delivery=row.estimated_delivery,
        items=[
            OrderItem(
                sku=Sku(item.sku),
                name_en=item.product.name_en,
                name_zh=item.product.name_zh,
                quantity=item.quantity,
                unit_price=item.unit_price,
            )
            for item in row.items
        ],
    )


def _product(row: ProductRow) -> Product:
    return Product(
        sku=Sku(row.sku),
        name_en=row.name_en,
        name_zh=row.name_zh,
        category=row.category,
        price=row.price,
        stock=row.stock,
        features_en=list(row.features_en),
        features_zh=list(row.features_zh),
        scenarios_en=list(row.scenarios_en),
        scenarios_zh=list(row.scenarios_zh),
    )


def _ticket(row: TicketRow) -> Ticket:
    return Ticket(
        id=TicketId(row.id),
        customer_id=CustomerId(row.customer_id),
        conversation_id=ConversationId(row.conversation_id) if row.conversation_id else None,
        kind=TicketKind(row.kind),
        status=TicketStatus(row.status),
        priority=row.priority,
        subject=row.subject,
        created_at=row.created_at,
    )


class SqlStore:
    """The shop's CRM, catalog, orders and tickets in any SQLAlchemy database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine``; its tables must exist (see ``core.db.make_engine``)."""
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The engine the store runs on (shared with the desk store)."""
        return self._engine

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def get_customer(self, customer_id: CustomerId) -> Customer | None:
        """Return the customer, or None."""
        with self._session() as session:
            row = session.get(CustomerRow, customer_id)
            return _customer(row) if row else None

    def get_order(self, order_id: OrderId) -> Order | None:
        """Return the order with its items, or None; ids are matched case-insensitively."""
        query = (
            select(OrderRow)
            .where(OrderRow.id == order_id.strip().upper())
            .options(selectinload(OrderRow.items).selectinload(OrderItemRow.product))
        )
        with self._session() as session:
            row = session.scalars(query).first()
            return _order(row) if row else None

    def list_orders(self, customer_id: CustomerId, limit: int = 5) -> list[Order]:
        """Return the customer's most recent orders, newest first."""
        query = (
            select(OrderRow)
            .where(OrderRow.customer_id == customer_id)
            .order_by(OrderRow.created_at.desc())
            .limit(limit)
            .options(selectinload(OrderRow.items).selectinload(OrderItemRow.product))
        )
        with self._session() as session:
            return [_order(row) for row in session.scalars(query)]

    def customer_profile(self, customer_id: CustomerId) -> CustomerProfile | None:
        """Return the 360° view of the customer, or None."""
        with self._session() as session:
            row = session.get(CustomerRow, customer_id)
            if row is None:
                return None
            lifetime_value, order_count = session.execute(
                select(
                    func.coalesce(func.sum(OrderRow.total).filter(OrderRow.status.not_in(_NOT_SPENT)), 0.0),
                    func.count(OrderRow.id),
                ).where(OrderRow.customer_id == customer_id)
            ).one()
            tickets = session.scalars(
                select(TicketRow)
                .where(TicketRow.customer_id == customer_id, TicketRow.status == TicketStatus.OPEN.value)
                .order_by(TicketRow.created_at.desc())
            )
            open_tickets = [_ticket(t) for t in tickets]
            customer = _customer(row)
        return CustomerProfile(
            customer=customer,
            lifetime_value=round(float(lifetime_value), 2),
            order_count=int(order_count),
            recent_orders=self.list_orders(customer_id, limit=3),
            open_tickets=open_tickets,
        )

    def carrier_names(self) -> list[str]:
        """Every carrier that appears on an order, for telling them apart from people's names."""
        with self._session() as session:
            return sorted(c for c in session.scalars(select(OrderRow.carrier).distinct()) if c)

    def update_contact(self, customer_id: CustomerId, *, phone: str | None, email: str | None) -> Customer:
        """Change the customer's phone number and/or e-mail address; None leaves a field as it is.

        Raises:
            NotFoundError: no such customer.
            InvalidInputError: the e-mail address is already another customer's.
        """
        with self._session() as session, session.begin():
            row = session.get(CustomerRow, customer_id)
            if row is None:
                raise NotFoundError(f"unknown customer {customer_id!r}")
            if email is not None:
                taken = session.scalar(
                    select(CustomerRow.id).where(
                        func.lower(CustomerRow.email) == email.lower(), CustomerRow.id != row.id
                    )
                )
                if taken is not None:
                    raise InvalidInputError("that e-mail address belongs to another account")
                row.email = email
            if phone is not None:
                row.phone = phone
            session.flush()
            return _customer(row)

    def open_ticket(
        self,
        customer_id: CustomerId,
        conversation_id: ConversationId | None,
        kind: TicketKind,
        subject: str,
        priority: int,
    ) -> Ticket:
        """Open a ticket; an open ticket of the same kind for the same conversation is reused.

        Reuse makes the call idempotent, so a node that re-runs (a retry, a resumed graph) never
        opens a second ticket.
        """
        with self._session() as session, session.begin():
            if conversation_id is not None:
                existing = session.scalars(
                    select(TicketRow).where(
                        TicketRow.conversation_id == conversation_id,
                        TicketRow.kind == kind.value,
                        TicketRow.status == TicketStatus.OPEN.value,
                    )
                ).first()
                if existing is not None:
                    return _ticket(existing)
            row = TicketRow(
                customer_id=customer_id,
                conversation_id=conversation_id,
                kind=kind.value,
                status=TicketStatus.OPEN.value,
                priority=priority,
                subject=subject[:200],
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
            session.add(row)
            session.flush()
            return _ticket(row)

    def search_products(self, query: str, limit: int = 5) -> list[Product]:
        """Return catalog entries whose names, category, features or scenarios contain a query term.

        Terms are whitespace-separated words; Chinese text without spaces is matched as a whole
        and by its two-character windows, so 跑步耳机 finds 跑步 and 耳机. Results are ranked by how
        many terms they contain.
        """
        terms = _terms(query)
        if not terms:
            return []
        columns = (
            ProductRow.name_en,
            ProductRow.name_zh,
            ProductRow.category,
            cast(ProductRow.features_en, String),
            cast(ProductRow.features_zh, String),
            cast(ProductRow.scenarios_en, String),
            cast(ProductRow.scenarios_zh, String),
        )
        with self._session() as session:
            candidates = session.scalars(
                select(ProductRow).where(
                    or_(*(func.lower(column).contains(term) for term in terms for column in columns))
                )
            ).all()
            ranked = sorted(
                candidates,
                key=lambda row: (-_score(row, terms), row.sku),
            )
            return [_product(row) for row in ranked[:limit]]

    def list_products(self) -> list[Product]:
        """The whole catalog, ordered by SKU."""
        with self._session() as session:
            return [_product(row) for row in session.scalars(select(ProductRow).order_by(ProductRow.sku))]

    def product_names(self) -> list[tuple[str, str, str]]:
        """Every product as ``(sku, name_en, name_zh)``."""
        with self._session() as session:
            rows = session.execute(select(ProductRow.sku, ProductRow.name_en, ProductRow.name_zh)).all()
            return [(str(sku), str(en), str(zh)) for sku, en, zh in rows]

    def handoff_queue(self) -> list[Ticket]:
        """Open handoff tickets, most urgent first (priority, then age)."""
        query = (
            select(TicketRow)
            .where(TicketRow.kind == TicketKind.HANDOFF.value, TicketRow.status == TicketStatus.OPEN.value)
            .order_by(TicketRow.priority, TicketRow.created_at, TicketRow.id)
        )
        with self._session() as session:
            return [_ticket(row) for row in session.scalars(query)]

    def record_turn(self, audit: TurnAudit) -> None:
        """Append one turn to the audit trail and fold it into the conversation's service-log row."""
        with self._session() as session, session.begin():
            session.add(TurnAuditRow(**audit.model_dump(exclude={"lang"})))
            log = session.get(ConversationLogRow, audit.conversation_id)
            if log is not None and log.customer_id != audit.customer_id:
                # An id reused by someone else after the conversation expired: the old row keeps its
                # history under a dated id, and the new customer starts their own.
                log.conversation_id = f"{audit.conversation_id[:44]}~{log.started_at:%Y%m%d%H%M%S}"
                session.flush()
                log = None
            if log is None:
                log = ConversationLogRow(
                    conversation_id=audit.conversation_id,
                    customer_id=audit.customer_id,
                    channel=audit.channel or "web",
                    lang=audit.lang or "zh",
                    started_at=audit.created_at,
                    last_at=audit.created_at,
                    turns=0,
                    intents={},
                    negative_turns=0,
                    fallback_turns=0,
                    reached_close_deal=False,
                    seeded=False,
                )
                session.add(log)
            log.last_at = max(log.last_at, audit.created_at)
            log.turns += 1
            log.intents = {**log.intents, audit.intent: log.intents.get(audit.intent, 0) + 1}
            log.negative_turns += audit.emotion in _NEGATIVE_EMOTIONS
            log.fallback_turns += audit.fallback is not None
            if audit.state == "handoff" and log.handoff_reason is None:
                log.handoff_reason = (audit.fallback or audit.decision or "handoff").removeprefix("handoff: ")[:300]
            log.reached_close_deal = log.reached_close_deal or audit.state == "close_deal"
            if audit.variant:
                log.variant = audit.variant

    def rate_conversation(self, conversation_id: ConversationId, customer_id: CustomerId, rating: int) -> None:
        """Record the customer's satisfaction rating (1-5) on their conversation; a new rating replaces the old.

        Raises:
            InvalidInputError: a rating outside 1-5.
            NotFoundError: no turn of this customer's in that conversation yet.
        """
        if not 1 <= rating <= 5:
            raise InvalidInputError("rating must be 1 to 5")
        with self._session() as session, session.begin():
            log = session.get(ConversationLogRow, conversation_id)
            if log is None or log.customer_id != customer_id:
                raise NotFoundError(f"no conversation {conversation_id!r} to rate")
            log.satisfaction = rating

    def turn_audits(self, conversation_id: ConversationId) -> list[TurnAudit]:
        """The audit trail of a conversation, oldest first."""
        query = select(TurnAuditRow).where(TurnAuditRow.conversation_id == conversation_id).order_by(TurnAuditRow.id)
        with self._session() as session:
            return [_audit(row) for row in session.scalars(query)]


# Words that say nothing about a product; without this list "for" or "you" match half the catalog.
_STOPWORDS = frozenset(
    "a an and any are can could do does for have i is it me my of on or some the to what which with would you "
    "your want need looking recommend suggest good best there".split()
)


def _audit(row: TurnAuditRow) -> TurnAudit:
    return TurnAudit.model_validate(row, from_attributes=True)


def _terms(query: str) -> list[str]:
    terms: list[str] = []
    for word in query.lower().split():
        word = word.strip(".,!?;:'\"，。！？；：、（）()")
        if len(word) < 2 or word in _STOPWORDS:
            continue
        terms.append(word)
        if any("\u4e00" <= ch <= "\u9fff" for ch in word) and len(word) > 2:
            terms.extend(word[i : i + 2] for i in range(len(word) - 1))
    return list(dict.fromkeys(terms))


def _score(row: ProductRow, terms: list[str]) -> int:
    haystack = " ".join(
        [
            row.name_en,
            row.name_zh,
            row.category,
            *row.features_en,
            *row.features_zh,
            *row.scenarios_en,
            *row.scenarios_zh,
        ]
    ).lower()
    return sum(term in haystack for term in terms)
