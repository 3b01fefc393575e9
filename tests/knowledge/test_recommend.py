"""Recommendations and comparisons from the product graph (the fixture graph of test_graph)."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError, NotFoundError
from core.types import Lang
from knowledge.graph import ProductGraph
from tests.knowledge.test_graph import fixture_products, write_triples


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> ProductGraph:
    return ProductGraph.build(fixture_products(), write_triples(tmp_path_factory.mktemp("triples")), None)


# -------------------------------------------------------------------------------------------- recommend


def test_pet_need_ranks_the_robot_vacuum_first_with_its_graph_path(graph: ProductGraph) -> None:
    ranked = graph.recommend("家里有猫，掉毛严重", lang=Lang.ZH)
    best = ranked[0]
    assert best.sku == "HOM-001"
    assert best.rationale == "养宠家庭 ← SUITS ← 毛发防缠绕 ← HAS_FEATURE ← Nestia X1 扫拖一体机器人"
    assert best.path == ["scenario:pets", "feature:anti-tangle-brush", "HOM-001"]
    assert best.in_stock and best.price == 2499
    assert 0.8 < best.confidence <= 1.0
    assert {r.sku for r in ranked} == {"HOM-001", "HOM-003", "HOM-005"}
    assert len(ranked) <= 3


def test_lang_controls_the_rationale_names(graph: ProductGraph) -> None:
    best = graph.recommend("家里有猫，掉毛严重", lang=Lang.EN)[0]
    assert best.rationale == "pet owners ← SUITS ← anti-tangle brush ← HAS_FEATURE ← Nestia X1 Robot Vacuum and Mop"
    assert best.name_zh == "Nestia X1 扫拖一体机器人"  # both names come back either way


def test_owned_products_are_not_recommended(graph: ProductGraph) -> None:
    ranked = graph.recommend("my cat sheds everywhere", lang=Lang.EN, owned=["HOM-001"])
    assert ranked and "HOM-001" not in {r.sku for r in ranked}


def test_owning_everything_the_need_reaches_gives_nothing(graph: ProductGraph) -> None:
    assert graph.recommend("游泳", lang=Lang.ZH, owned=["AUD-008", "AUD-002"]) == []


def test_out_of_stock_ranks_after_in_stock_even_when_more_relevant(graph: ProductGraph) -> None:
    ranked = graph.recommend("晚上睡不着", lang=Lang.ZH)
    assert [r.sku for r in ranked] == ["WEA-003", "HOM-005"]
    band, purifier = ranked
    assert band.in_stock and not purifier.in_stock
    assert purifier.confidence > band.confidence  # a direct SUITS beats a path through a feature
    assert band.rationale == "睡眠 ← SUITS ← 睡眠监测 ← HAS_FEATURE ← Pulsa Band 7 智能手环"


def test_accessories_of_owned_products_get_a_boost_and_say_so(graph: ProductGraph) -> None:
    plain = graph.recommend("working from home", lang=Lang.EN)
    assert [r.sku for r in plain] == ["CMP-001", "CMP-008"]
    owner = graph.recommend("working from home", lang=Lang.EN, owned=["CMP-001"])
    assert [r.sku for r in owner] == ["CMP-008"]
    assert owner[0].rationale.endswith("(an accessory for your Kefu Book 14 Laptop)")
    assert owner[0].confidence > plain[1].confidence
    zh = graph.recommend("在家办公", lang=Lang.ZH, owned=["CMP-001"])[0]
    assert zh.rationale.endswith("（可搭配您已有的 Kefu Book 14 轻薄笔记本）")


def test_preferred_categories_break_near_ties(graph: ProductGraph) -> None:
    assert [r.sku for r in graph.recommend("健身", lang=Lang.ZH)][:2] == ["AUD-002", "WEA-003"]  # tie → SKU
    assert [r.sku for r in graph.recommend("健身", lang=Lang.ZH, preferred_categories=["wearables"])][:2] == [
        "WEA-003",
        "AUD-002",
    ]


def test_a_named_product_is_recommended_itself(graph: ProductGraph) -> None:
    best = graph.recommend("I want a robot vacuum", lang=Lang.EN)[0]
    assert best.sku == "HOM-001"
    assert best.path == ["HOM-001"]
    assert best.rationale == "Nestia X1 Robot Vacuum and Mop"


def test_nothing_matching_gives_no_recommendation(graph: ProductGraph) -> None:
    assert graph.recommend("qwzx plokm vbnrt", lang=Lang.EN) == []


def test_recommendations_are_deterministic(graph: ProductGraph) -> None:
    needs = ("家里有猫，掉毛严重", "something for running", "健身")
    assert [graph.recommend(n, lang=Lang.ZH, limit=5) for n in needs] == [
        graph.recommend(n, lang=Lang.ZH, limit=5) for n in needs
    ]


@pytest.mark.parametrize(("need", "limit"), [("", 3), ("   ", 3), ("猫", 0)])
def test_recommend_rejects_bad_input(graph: ProductGraph, need: str, limit: int) -> None:
    with pytest.raises(InvalidInputError):
        graph.recommend(need, lang=Lang.ZH, limit=limit)


# ---------------------------------------------------------------------------------------------- compare


def test_compare_rows_in_english(graph: ProductGraph) -> None:
    comparison = graph.compare(["AUD-002", "AUD-008"], lang=Lang.EN)
    assert comparison.skus == ["AUD-002", "AUD-008"]
    assert comparison.names == ["Lumo Run Sport Earbuds", "Lumo Open Bone Conduction Headphones"]
    rows = {row.attribute: row.values for row in comparison.rows}
    assert list(rows) == [
        "price",
        "in stock",
        "category",
        "brand",
        "features",
        "scenarios",
        "alternatives",
        "accessories",
    ]
    assert rows["price"] == ["¥399", "¥699"]
    assert rows["in stock"] == ["yes (540)", "out of stock"]
    assert rows["category"] == ["audio", "audio"]
    assert rows["brand"] == ["Lumo", "Lumo"]
    assert rows["features"] == ["secure ear hooks, 10-hour battery", "open-ear design, 10-hour battery"]
    assert rows["scenarios"] == ["running, fitness", "running, swimming"]
    assert rows["alternatives"] == ["Lumo Open Bone Conduction Headphones", "Lumo Run Sport Earbuds"]
    assert rows["accessories"] == ["—", "—"]
    assert comparison.shared_features == ["10-hour battery"]


def test_compare_in_chinese_with_accessories(graph: ProductGraph) -> None:
    comparison = graph.compare(["CMP-001", "CMP-008", "HOM-001"], lang=Lang.ZH)
    rows = {row.attribute: row.values for row in comparison.rows}
    assert rows["价格"] == ["¥5,999", "¥229", "¥2,499"]
    assert rows["配件"] == ["Kefu 七合一 USB-C 扩展坞", "—", "—"]
    assert rows["类别"][2] == "智能家居"
    assert rows["功能"][2] == "激光导航、自动集尘、毛发防缠绕"  # catalog order, then the triples file
    assert rows["库存"][0] == "有货（60）"
    assert comparison.shared_features == []


@pytest.mark.parametrize(
    ("skus", "error"),
    [
        (["AUD-002"], InvalidInputError),
        (["AUD-002", "AUD-008", "HOM-001", "HOM-003", "HOM-005"], InvalidInputError),
        (["AUD-002", "AUD-002"], InvalidInputError),
        (["AUD-002", "XXX-404"], NotFoundError),
        (["AUD-002", "scenario:pets"], NotFoundError),
    ],
)
def test_compare_errors(graph: ProductGraph, skus: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        graph.compare(skus, lang=Lang.EN)
