"""Tests of ``core.seed``: volumes, determinism, idempotence and the demo customers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import CustomerRow, OrderItemRow, OrderRow, ProductRow, TicketRow, make_engine
from core.seed import DEMO_CUSTOMER_EN, DEMO_CUSTOMER_ZH, REFERENCE_DATE, SeedSummary, seed
from core.store import SqlStore
from core.types import CustomerId, Lang, OrderId, OrderStatus, TicketKind, TicketStatus, Tier

_UNSHIPPED = {OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value, OrderStatus.CANCELLED.value}


@pytest.fixture(scope="module")
def new_engine(make_database_url: Callable[..., str]) -> Callable[[], Engine]:
    """Engines on new, empty databases of the module's backend."""
    return lambda: make_engine(make_database_url())


@pytest.fixture(scope="module")
def seeded(new_engine: Callable[[], Engine]) -> tuple[Engine, SeedSummary]:
    engine = new_engine()
    return engine, seed(engine)


def _orders(engine: Engine) -> list[OrderRow]:
    with Session(engine) as session:
        return list(session.scalars(select(OrderRow).order_by(OrderRow.id)))


def _order_tuples(engine: Engine) -> list[tuple[object, ...]]:
    return [
        (o.id, o.customer_id, o.status, o.total, o.created_at, o.updated_at, o.carrier, o.tracking_number)
        for o in _orders(engine)
    ]


def _product_tuples(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as session:
        return [
            (p.sku, p.name_en, p.name_zh, p.category, p.price, p.stock, p.features_en, p.features_zh, p.scenarios_zh)
            for p in session.scalars(select(ProductRow).order_by(ProductRow.sku))
        ]


def test_counts_meet_the_minimums(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, summary = seeded
    assert summary.created
    assert summary.products >= 45
    assert summary.customers >= 220
    assert summary.orders >= 1100
    assert summary.order_items >= summary.orders
    with Session(engine) as session:
        assert len(session.scalars(select(ProductRow)).all()) == summary.products
        assert len(session.scalars(select(OrderRow)).all()) == summary.orders
        assert len(session.scalars(select(OrderItemRow)).all()) == summary.order_items
        categories = set(session.scalars(select(ProductRow.category)))
        customers = session.scalars(select(CustomerRow)).all()
        tickets = session.scalars(select(TicketRow)).all()
    assert len(categories) >= 6
    assert all(c.islower() for c in categories)
    tiers = Counter(c.tier for c in customers)
    assert tiers[Tier.VIP.value] >= 15
    assert tiers[Tier.STANDARD.value] > tiers[Tier.SILVER.value] > 0 and tiers[Tier.GOLD.value] > 0
    langs = Counter(c.lang for c in customers)
    assert abs(langs[Lang.ZH.value] - langs[Lang.EN.value]) <= len(customers) // 10
    assert len({c.email for c in customers}) == len(customers)
    assert all(c.email.endswith(("@example.com", "@example.cn")) for c in customers)
    assert all(c.created_at < REFERENCE_DATE for c in customers)
    assert [c.id for c in customers][:3] == ["C0001", "C0002", "C0003"]
    assert tickets and all(t.status == TicketStatus.OPEN.value and t.conversation_id is None for t in tickets)
    assert {t.kind for t in tickets} <= {TicketKind.GENERAL.value, TicketKind.COMPLAINT.value, TicketKind.RETURN.value}


def test_catalog_is_bilingual_and_well_formed(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    with Session(engine) as session:
        products = session.scalars(select(ProductRow)).all()
    assert any(p.stock == 0 for p in products)
    for p in products:
        assert p.sku[:3].isupper() and p.sku[3] == "-" and p.sku[4:].isdigit()
        assert p.price > 0 and p.stock >= 0
        assert 2 <= len(p.features_en) <= 4 and len(p.features_zh) == len(p.features_en)
        assert 1 <= len(p.scenarios_en) <= 3 and len(p.scenarios_zh) == len(p.scenarios_en)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in p.name_zh)
    assert len({p.name_en for p in products}) == len(products)


def test_every_status_is_well_represented(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    orders = _orders(engine)
    statuses = Counter(o.status for o in orders)
    for status in OrderStatus:
        assert statuses[status.value] >= 30, status
    assert statuses.most_common(1)[0][0] == OrderStatus.DELIVERED.value


def test_orders_are_consistent(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    with Session(engine) as session:
        prices = dict(session.execute(select(ProductRow.sku, ProductRow.price)).all())
        orders = session.scalars(select(OrderRow).order_by(OrderRow.id)).all()
        ids = [o.id for o in orders]
        assert ids == [f"KF{100_001 + i}" for i in range(len(orders))]
        earliest = min(o.created_at for o in orders)
        assert (REFERENCE_DATE - earliest).days <= 740
        for order in orders:
            assert 1 <= len(order.items) <= 4
            assert all(item.unit_price == prices[item.sku] for item in order.items)
            assert order.total == pytest.approx(sum(i.unit_price * i.quantity for i in order.items))
            assert order.created_at <= order.updated_at <= REFERENCE_DATE
            assert order.created_at >= order.customer.created_at
            if order.status in _UNSHIPPED:
                assert (order.carrier, order.tracking_number, order.estimated_delivery) == (None, None, None)
            else:
                assert order.carrier in {"SF Express", "JD Logistics", "ZTO", "EMS", "DHL"}
                assert order.tracking_number
                assert order.estimated_delivery is not None and order.estimated_delivery > order.created_at


def test_recent_orders_are_open_and_old_ones_settled(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    orders = _orders(engine)
    recent = {OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value, OrderStatus.SHIPPED.value}
    for order in orders:
        age = (REFERENCE_DATE - order.created_at).days
        if age > 30:
            assert order.status not in recent
    old = [o.status for o in orders if (REFERENCE_DATE - o.created_at).days > 60]
    assert Counter(old).most_common(1)[0][0] == OrderStatus.DELIVERED.value


def test_seed_is_deterministic(new_engine: Callable[[], Engine]) -> None:
    first, second = new_engine(), new_engine()
    assert seed(first) == seed(second)
    assert _order_tuples(first) == _order_tuples(second)
    assert _product_tuples(first) == _product_tuples(second)
    with Session(first) as a, Session(second) as b:
        customers_a = [(c.id, c.name, c.email, c.phone, c.created_at) for c in a.scalars(select(CustomerRow))]
        customers_b = [(c.id, c.name, c.email, c.phone, c.created_at) for c in b.scalars(select(CustomerRow))]
        assert customers_a == customers_b


def test_another_seed_value_gives_other_orders_but_the_same_catalog(new_engine: Callable[[], Engine]) -> None:
    first, second = new_engine(), new_engine()
    seed(first)
    seed(second, seed_value=7)
    assert _order_tuples(first) != _order_tuples(second)
    assert _product_tuples(first) == _product_tuples(second)


def test_seed_is_idempotent_and_reset_recreates(new_engine: Callable[[], Engine]) -> None:
    engine = new_engine()
    summary = seed(engine)
    before = _order_tuples(engine)
    again = seed(engine)
    assert not again.created
    assert (again.products, again.customers, again.orders, again.order_items) == (
        summary.products,
        summary.customers,
        summary.orders,
        summary.order_items,
    )
    with Session(engine) as session, session.begin():
        session.delete(session.get(TicketRow, 1))
        order = session.get(OrderRow, before[0][0])
        assert order is not None
        order.status = OrderStatus.CANCELLED.value
    assert seed(engine).created is False
    reset = seed(engine, reset=True)
    assert reset == summary
    assert _order_tuples(engine) == before


def test_seed_creates_missing_tables(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    assert seed(engine).created


def test_demo_customers(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    store = SqlStore(engine)
    zh = store.get_customer(CustomerId(DEMO_CUSTOMER_ZH))
    en = store.get_customer(CustomerId(DEMO_CUSTOMER_EN))
    assert zh is not None and en is not None
    assert (zh.name, zh.lang, zh.tier) == ("王芳", Lang.ZH, Tier.VIP)
    assert (en.name, en.lang, en.tier) == ("Emma Clark", Lang.EN, Tier.GOLD)
    for customer_id in (DEMO_CUSTOMER_ZH, DEMO_CUSTOMER_EN):
        orders = store.list_orders(CustomerId(customer_id), limit=50)
        assert len(orders) >= 5
        statuses = {o.status for o in orders}
        assert {OrderStatus.SHIPPED, OrderStatus.DELIVERED} <= statuses
        shipped = next(o for o in orders if o.status is OrderStatus.SHIPPED)
        assert shipped.carrier and shipped.tracking_number
        assert shipped.estimated_delivery is not None and shipped.estimated_delivery > REFERENCE_DATE
        fetched = store.get_order(OrderId(shipped.id.lower()))
        assert fetched == shipped
        assert fetched.items and fetched.items[0].name_zh
    profile = store.customer_profile(CustomerId(DEMO_CUSTOMER_ZH))
    assert profile is not None and profile.order_count >= 5 and profile.lifetime_value > 0


def test_shipped_and_pending_orders(seeded: tuple[Engine, SeedSummary]) -> None:
    engine, _ = seeded
    orders = _orders(engine)
    shipped = [o for o in orders if o.status == OrderStatus.SHIPPED.value]
    pending = [o for o in orders if o.status == OrderStatus.PENDING_PAYMENT.value]
    assert shipped and pending
    assert all(o.carrier and o.tracking_number and o.estimated_delivery for o in shipped)
    assert all(o.carrier is None and o.tracking_number is None and o.estimated_delivery is None for o in pending)


@pytest.mark.parametrize("query", ["noise cancelling", "跑步"])
def test_catalog_is_searchable(seeded: tuple[Engine, SeedSummary], query: str) -> None:
    engine, _ = seeded
    assert SqlStore(engine).search_products(query)


def test_seeding_is_fast(tmp_path: Path) -> None:
    import time

    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    started = time.perf_counter()
    seed(engine)
    assert time.perf_counter() - started < 5.0


def test_the_store_names_its_carriers(seeded: tuple[Engine, SeedSummary]) -> None:
    """The redactor is told these are no one's names (spaCy takes "JD Logistics" for a person)."""
    engine, _ = seeded
    assert SqlStore(engine).carrier_names() == ["DHL", "EMS", "JD Logistics", "SF Express", "ZTO"]
