"""The τ²-bench retail database inside Kefu's store, and its hash.

τ²'s ``db.json`` (``{"users", "orders", "products"}``) is loaded into the same SQLAlchemy database
as Kefu's own tables, twice over:

- **losslessly**, one JSON record per user, order and product in three ``tau2_*`` tables defined
  here on their own ``MetaData`` (variants, payment methods, fulfilments, payment history kept as τ²
  wrote them). The τ² tools read and write these records, and the database hash is taken over them;
- **as Kefu's concepts**, where they match: a τ² user becomes a ``CustomerRow``, a product a
  ``ProductRow`` (one row per product, not per variant), an order an ``OrderRow`` with one
  ``OrderItemRow`` per item. Kefu's own tools (``lookup_order``, ``list_recent_orders``,
  ``get_customer_profile``) then read τ²'s orders. Every τ² write re-syncs the Kefu rows it touches.

Kefu has no status for τ²'s ``processed`` or ``exchange requested``: ``KEFU_STATUS`` maps them to
the nearest one (``shipped``, ``return_requested``). τ² has no times, phones or tiers: the Kefu rows
get a fixed date, an empty phone and the ``standard`` tier.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import JSON, Engine, String, delete, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from core.db import CustomerRow, OrderItemRow, OrderRow, ProductRow, TicketRow
from core.types import OrderStatus, Tier

__all__ = [
    "GUEST_CUSTOMER_ID",
    "KEFU_STATUS",
    "Tau2Base",
    "Tau2OrderRow",
    "Tau2ProductRow",
    "Tau2SessionRow",
    "Tau2UserRow",
    "authenticated_user",
    "copy_record",
    "dump_state",
    "install",
    "load_source",
    "state_hash",
    "sync_customer",
    "sync_order",
]

Record = dict[str, Any]

GUEST_CUSTOMER_ID: Final = "tau2_guest"
"""The Kefu customer a τ² conversation runs as until the agent has authenticated the user."""

KEFU_STATUS: Final[dict[str, OrderStatus]] = {
    "pending": OrderStatus.PAID,
    "pending (item modified)": OrderStatus.PAID,
    "processed": OrderStatus.SHIPPED,
    "delivered": OrderStatus.DELIVERED,
    "cancelled": OrderStatus.CANCELLED,
    "return requested": OrderStatus.RETURN_REQUESTED,
    "exchange requested": OrderStatus.RETURN_REQUESTED,
}
"""τ² order status → the Kefu status its ``OrderRow`` carries."""

_EPOCH: Final = datetime(2024, 1, 1)


class Tau2Base(DeclarativeBase):
    """Declarative base of the τ² tables: their own ``MetaData``, created in Kefu's database file."""


class Tau2UserRow(Tau2Base):
    """One τ² user record, exactly as in ``db.json``."""

    __tablename__ = "tau2_users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record: Mapped[Record] = mapped_column(JSON)


class Tau2OrderRow(Tau2Base):
    """One τ² order record (items, fulfilments, payment history), exactly as in ``db.json``."""

    __tablename__ = "tau2_orders"

    order_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    record: Mapped[Record] = mapped_column(JSON)


class Tau2ProductRow(Tau2Base):
    """One τ² product record with all its variants, exactly as in ``db.json``."""

    __tablename__ = "tau2_products"

    product_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    record: Mapped[Record] = mapped_column(JSON)


class Tau2SessionRow(Tau2Base):
    """Which τ² user a conversation authenticated (by e-mail or name + zip); not part of the τ² state."""

    __tablename__ = "tau2_sessions"

    conversation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))


def load_source(path: Path) -> Record:
    """Read a τ² retail ``db.json``.

    Raises:
        ValueError: the file does not hold ``users``, ``orders`` and ``products``.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(data.get(k), dict) for k in ("users", "orders", "products")):
        raise ValueError(f"{path} is not a τ² retail database (users, orders, products)")
    return data


def install(engine: Engine, source: Record) -> None:
    """Replace the τ² state in ``engine``'s database with ``source`` (and the Kefu rows mirroring it).

    Kefu's tables must exist (``core.db.make_engine``). Tickets Kefu opened in earlier conversations
    are removed with the customers they belong to; the guest customer is (re)created.
    """
    Tau2Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for table in (Tau2UserRow, Tau2OrderRow, Tau2ProductRow, Tau2SessionRow):
            session.execute(delete(table))
        session.execute(delete(OrderItemRow))
        session.execute(delete(OrderRow))
        session.execute(delete(TicketRow))
        session.execute(delete(CustomerRow))
        session.execute(delete(ProductRow))
        session.execute(
            insert(Tau2ProductRow),
            [{"product_id": pid, "record": product} for pid, product in source["products"].items()],
        )
        session.execute(
            insert(Tau2UserRow), [{"user_id": uid, "record": user} for uid, user in source["users"].items()]
        )
        session.execute(
            insert(Tau2OrderRow),
            [
                {"order_id": oid, "user_id": order["user_id"], "record": order}
                for oid, order in source["orders"].items()
            ],
        )
        session.execute(insert(ProductRow), [_kefu_product(product) for product in source["products"].values()])
        session.execute(insert(CustomerRow), [_kefu_customer(user) for user in source["users"].values()])
        session.execute(insert(CustomerRow), [_guest()])
        session.execute(insert(OrderRow), [_kefu_order(order) for order in source["orders"].values()])
        session.execute(
            insert(OrderItemRow), [item for order in source["orders"].values() for item in _kefu_items(order)]
        )


def dump_state(engine: Engine) -> Record:
    """The τ² state held in ``engine``'s database: ``{"users", "orders", "products"}`` as in ``db.json``."""
    with Session(engine) as session:
        return {
            "users": {row.user_id: row.record for row in session.scalars(select(Tau2UserRow))},
            "orders": {row.order_id: row.record for row in session.scalars(select(Tau2OrderRow))},
            "products": {row.product_id: row.record for row in session.scalars(select(Tau2ProductRow))},
        }


def state_hash(state: Record) -> str:
    """SHA-256 of the canonical JSON of a τ² state (sorted keys, no whitespace), as τ² compares databases.

    Example:
        >>> state_hash({"users": {}, "orders": {}, "products": {}}) == state_hash(
        ...     {"products": {}, "orders": {}, "users": {}}
        ... )
        True
    """
    canonical = {key: state.get(key, {}) for key in ("users", "orders", "products")}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def authenticated_user(engine: Engine, conversation_id: str) -> str | None:
    """The τ² user ``conversation_id`` authenticated, if it did."""
    with Session(engine) as session:
        row = session.get(Tau2SessionRow, conversation_id)
        return row.user_id if row else None


def sync_order(session: Session, order: Record) -> None:
    """Make the Kefu ``OrderRow`` and its items mirror a changed τ² order."""
    row = session.get(OrderRow, order["order_id"])
    if row is None:
        return
    fields = _kefu_order(order)
    row.status, row.total = fields["status"], fields["total"]
    row.tracking_number, row.updated_at = fields["tracking_number"], fields["updated_at"]
    session.execute(delete(OrderItemRow).where(OrderItemRow.order_id == order["order_id"]))
    items = _kefu_items(order)
    if items:
        session.execute(insert(OrderItemRow), items)


def sync_customer(session: Session, user: Record) -> None:
    """Make the Kefu ``CustomerRow`` mirror a changed τ² user (its city is the only field that can change)."""
    row = session.get(CustomerRow, user["user_id"])
    if row is not None:
        row.city = str(user["address"].get("city", ""))[:40]


def _kefu_customer(user: Record) -> dict[str, Any]:
    name = user.get("name") or {}
    return {
        "id": user["user_id"],
        "name": f"{name.get('first_name', '')} {name.get('last_name', '')}".strip(),
        "email": user["email"],
        "phone": "",
        "tier": Tier.STANDARD.value,
        "lang": "en",
        "city": str((user.get("address") or {}).get("city", ""))[:40],
        "created_at": _EPOCH,
    }


def _guest() -> dict[str, Any]:
    return {
        "id": GUEST_CUSTOMER_ID,
        "name": "Guest",
        "email": "guest@tau2.invalid",
        "phone": "",
        "tier": Tier.STANDARD.value,
        "lang": "en",
        "city": "",
        "created_at": _EPOCH,
    }


def _kefu_product(product: Record) -> dict[str, Any]:
    variants = list(product["variants"].values())
    options: dict[str, set[str]] = {}
    for variant in variants:
        for key, value in variant["options"].items():
            options.setdefault(key, set()).add(str(value))
    features = [f"{key}: {', '.join(sorted(values))}" for key, values in sorted(options.items())]
    return {
        "sku": product["product_id"],
        "name_en": product["name"],
        "name_zh": product["name"],
        "category": "tau2-retail",
        "price": min((float(v["price"]) for v in variants), default=0.0),
        "stock": sum(1 for v in variants if v.get("available")),
        "features_en": features,
        "features_zh": features,
        "scenarios_en": [],
        "scenarios_zh": [],
    }


def _kefu_order(order: Record) -> dict[str, Any]:
    tracking = next((t for f in order.get("fulfillments") or [] for t in f.get("tracking_id") or []), None)
    return {
        "id": order["order_id"],
        "customer_id": order["user_id"],
        "status": KEFU_STATUS.get(order["status"], OrderStatus.PAID).value,
        "created_at": _EPOCH,
        "updated_at": _EPOCH,
        "total": round(sum(float(item["price"]) for item in order["items"]), 2),
        "carrier": None,
        "tracking_number": str(tracking)[:32] if tracking is not None else None,
        "estimated_delivery": None,
    }


def _kefu_items(order: Record) -> list[dict[str, Any]]:
    return [
        {"order_id": order["order_id"], "sku": item["product_id"], "quantity": 1, "unit_price": float(item["price"])}
        for item in order["items"]
    ]


def copy_record(record: Record) -> Record:
    """A deep copy to mutate: a JSON column is only written back when it is assigned a new value."""
    return copy.deepcopy(record)
