"""Slots found by regex and catalog lookup: order ids, quantities, dates, payment methods, products."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import pytest

from agent.slots import CatalogMatcher, Slots, extract_slots
from core.store import SqlStore

# ---------------------------------------------------------------- order ids


def test_order_ids_are_found_upper_cased_and_deduplicated() -> None:
    slots = extract_slots("订单kf100234和KF100234还有KF100999怎么还没到？")
    assert slots.order_ids == ["KF100234", "KF100999"]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("where is KF100234?", ["KF100234"]),
        ("我的订单KF100234到哪了", ["KF100234"]),
        ("order KF123456.", ["KF123456"]),
        ("(KF100001,KF100002)", ["KF100001", "KF100002"]),
    ],
)
def test_order_ids_in_text(text: str, ids: list[str]) -> None:
    assert extract_slots(text).order_ids == ids


@pytest.mark.parametrize("text", ["XKF1234567", "XKF123456", "KF1234567", "KF123456X", "KF12345", "order 100234"])
def test_order_ids_are_not_found_inside_longer_tokens(text: str) -> None:
    assert extract_slots(text).order_ids == []


# ---------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "quantities"),
    [
        ("我要买2个", [2]),
        ("来两件", [2]),
        ("买三台", [3]),
        ("Lumo Boom x3", [3]),
        ("add ×4 please", [4]),
        ("5 pcs", [5]),
        ("I want 12 units", [12]),
        ("3 items please, and 2 pieces of the other", [3, 2]),
        ("2个和x3", [2, 3]),
    ],
)
def test_quantities(text: str, quantities: list[int]) -> None:
    assert extract_slots(text).quantities == quantities


@pytest.mark.parametrize("text", ["v2个", "1.5个", "Pulsa Watch 3", "Kefu 65W charger", "box3"])
def test_numbers_that_are_not_quantities(text: str) -> None:
    assert extract_slots(text).quantities == []


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("11月5日能到吗", ["11-05"]),
        ("11月5号能到吗", ["11-05"]),
        ("2026年11月5日下的单", ["2026-11-05"]),
        ("ordered on 2026-11-05", ["2026-11-05"]),
        ("ordered on 2026-1-5", ["2026-01-05"]),
        ("can it arrive by Nov 5?", ["11-05"]),
        ("can it arrive by november 5?", ["11-05"]),
        ("明天能发货吗", ["明天"]),
        ("will it ship tomorrow", ["tomorrow"]),
        ("Tomorrow please", ["tomorrow"]),
        ("不是今天，是明天", ["今天", "明天"]),
        ("明天或者明天", ["明天"]),
    ],
)
def test_dates(text: str, dates: list[str]) -> None:
    assert extract_slots(text).dates == dates


@pytest.mark.parametrize("text", ["may I ask something", "see you in 5 minutes", "hello"])
def test_text_without_dates(text: str) -> None:
    assert extract_slots(text).dates == []


# ---------------------------------------------------------------- payment methods


@pytest.mark.parametrize(
    ("text", "methods"),
    [
        ("可以用支付宝吗", ["alipay"]),
        ("I'll pay with WeChat Pay", ["wechat_pay"]),
        ("微信支付可以吗", ["wechat_pay"]),
        ("能用花呗吗", ["installments"]),
        ("can I pay in installments", ["installments"]),
        ("by credit card", ["credit_card"]),
        ("信用卡分期", ["credit_card", "installments"]),
        ("货到付款", ["cash_on_delivery"]),
        ("PayPal or Alipay?", ["alipay", "paypal"]),
    ],
)
def test_payment_methods(text: str, methods: list[str]) -> None:
    assert extract_slots(text).payment_methods == methods


# ---------------------------------------------------------------- the whole message


def test_as_dict_keeps_only_what_was_found() -> None:
    slots = extract_slots("订单KF100234，明天用支付宝再买2个")
    assert slots.as_dict() == {
        "order_ids": ["KF100234"],
        "quantities": [2],
        "dates": ["明天"],
        "payment_methods": ["alipay"],
    }


def test_nothing_found() -> None:
    slots = extract_slots("hello there")
    assert slots == Slots()
    assert slots.as_dict() == {}


def test_skus_need_a_catalog() -> None:
    assert extract_slots("Lumo Air Pro ANC Earbuds").skus == []


# ---------------------------------------------------------------- catalog


def _two_products(store: SqlStore) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    products = {sku: (sku, en, zh) for sku, en, zh in store.product_names()}
    return products["AUD-001"], products["PHN-001"]


def test_catalog_finds_products_named_in_english(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    (sku_a, en_a, _), (sku_b, en_b, _) = _two_products(store)
    text = f"Is the {en_b} compatible with the {en_a.upper()}? I want one of each."
    assert catalog.find(text) == [sku_b, sku_a]
    assert extract_slots(text, catalog).skus == [sku_b, sku_a]


def test_catalog_finds_products_named_in_chinese(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    (sku_a, _, zh_a), (sku_b, _, zh_b) = _two_products(store)
    text = f"我想买{zh_a}两副，再加一个{zh_b}，能便宜点吗？"
    assert catalog.find(text) == [sku_a, sku_b]
    slots = extract_slots(text, catalog)
    assert slots.skus == [sku_a, sku_b]
    assert slots.as_dict()["skus"] == [sku_a, sku_b]


def test_catalog_finds_a_model_name_without_its_brand(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    (sku_a, en_a, _), _ = _two_products(store)
    without_brand = " ".join(en_a.split()[1:])
    assert catalog.find(f"do the {without_brand} fit small ears?") == [sku_a]


def test_catalog_ignores_text_naming_no_product(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    assert catalog.find("where is my order KF100234?") == []
    assert catalog.find("我想退货") == []
    assert catalog.find("") == []


def test_catalog_reports_a_product_once(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    (sku_a, en_a, zh_a), _ = _two_products(store)
    text = f"{en_a} vs {zh_a}: and the {en_a} again"
    assert catalog.find(text) == [sku_a]


def test_catalog_does_not_report_overlapping_shorter_names() -> None:
    catalog = CatalogMatcher(
        [
            ("WEA-PRO", "Pulsa Watch 3 Pro", "Pulsa Watch 3 Pro 智能手表"),
            ("WEA-003", "Pulsa Watch 3", "Pulsa Watch 3 智能手表"),
        ]
    )
    assert catalog.find("I love my Pulsa Watch 3 Pro") == ["WEA-PRO"]
    assert catalog.find("is the watch 3 pro waterproof?") == ["WEA-PRO"]
    assert catalog.find("Pulsa Watch 3 Pro 智能手表多少钱") == ["WEA-PRO"]
    assert catalog.find("I love my Pulsa Watch 3") == ["WEA-003"]
    assert catalog.find("Pulsa Watch 3 or Pulsa Watch 3 Pro?") == ["WEA-003", "WEA-PRO"]


def test_catalog_ignores_names_shorter_than_four_characters() -> None:
    catalog = CatalogMatcher([("X-1", "Zap", "电")])
    assert catalog.find("Zap 电") == []


def test_catalog_finds_the_start_of_a_name_only_one_product_has(store: SqlStore) -> None:
    catalog = CatalogMatcher(store.product_names())
    assert catalog.find("Lumo Air Pro 和 Lumo Studio 哪个好？") == ["AUD-001", "AUD-003"]
    assert catalog.find("is the Kefu Book any good?") == ["CMP-001"]
    assert catalog.find("a Nestia Smart thing") == []  # the plug and the bulb both start that way
