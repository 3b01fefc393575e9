"""The product graph: building from data, entity search, paths, persistence, the triples file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_index.core import Settings
from llama_index.core.graph_stores.types import EntityNode

from core.errors import NotFoundError
from core.store import SqlStore
from core.types import Lang, Product, Sku
from knowledge.embedding import NoLlm, UseEmbedding
from knowledge.graph import DEFAULT_TRIPLES, GraphPath, ProductGraph, TriplesFileError


def _product(
    sku: str,
    en: str,
    zh: str,
    category: str,
    price: float,
    stock: int,
    features: list[tuple[str, str]],
    scenarios: list[tuple[str, str]],
) -> Product:
    return Product(
        sku=Sku(sku),
        name_en=en,
        name_zh=zh,
        category=category,
        price=price,
        stock=stock,
        features_en=[f[0] for f in features],
        features_zh=[f[1] for f in features],
        scenarios_en=[s[0] for s in scenarios],
        scenarios_zh=[s[1] for s in scenarios],
    )


def fixture_products() -> list[Product]:
    """A small catalog: pets, sleep, running, fitness and a laptop with an accessory."""
    pets, family, sleep = ("pets", "宠物"), ("family", "家庭"), ("sleep", "睡眠")
    running, fitness, home_office = ("running", "跑步"), ("fitness", "健身"), ("home office", "居家办公")
    battery = ("10-hour battery", "10小时续航")
    return [
        _product(
            "HOM-001", "Nestia X1 Robot Vacuum and Mop", "Nestia X1 扫拖一体机器人", "smart_home", 2499, 75,
            [("laser navigation", "激光导航"), ("auto-empty dock", "自动集尘")], [family, pets],
        ),
        _product(
            "HOM-003", "Nestia 2K Indoor Security Camera", "Nestia 2K 家用监控摄像头", "smart_home", 229, 460,
            [("night vision", "红外夜视"), ("two-way audio", "双向通话")], [("home security", "家庭安防"), pets],
        ),
        _product(
            "HOM-005", "Nestia 400 Air Purifier", "Nestia 400 空气净化器", "smart_home", 1299, 0,
            [("H13 HEPA filter", "H13级HEPA滤网"), ("22 dB sleep mode", "22分贝静音睡眠模式")], [sleep, pets],
        ),
        _product(
            "AUD-002", "Lumo Run Sport Earbuds", "Lumo Run 跑步运动耳机", "audio", 399, 540,
            [("secure ear hooks", "稳固耳挂"), battery], [running, fitness],
        ),
        _product(
            "AUD-008", "Lumo Open Bone Conduction Headphones", "Lumo Open 骨传导运动耳机", "audio", 699, 0,
            [("open-ear design", "开放式不入耳"), battery], [running, ("swimming", "游泳")],
        ),
        _product(
            "WEA-003", "Pulsa Band 7", "Pulsa Band 7 智能手环", "wearables", 249, 1100,
            [("sleep tracking", "睡眠监测"), ("heart-rate monitoring", "心率监测")], [fitness],
        ),
        _product(
            "CMP-001", "Kefu Book 14 Laptop", "Kefu Book 14 轻薄笔记本", "computing", 5999, 60,
            [("1.2 kg", "1.2公斤"), ("12-hour battery", "12小时续航")], [home_office, ("business trips", "商务出差")],
        ),
        _product(
            "CMP-008", "Kefu 7-in-1 USB-C Hub", "Kefu 七合一 USB-C 扩展坞", "computing", 229, 540,
            [("4K HDMI output", "4K HDMI输出")], [home_office],
        ),
    ]  # fmt: skip


FIXTURE_TRIPLES = """\
entities:
  - {id: "scenario:pets", label: Scenario, en: "pet owners", zh: "养宠家庭",
     aliases: ["猫", "狗", "掉毛", "cat", "dog", "pet hair"]}
  - {id: "scenario:sleep", label: Scenario, aliases: ["失眠", "睡不着", "insomnia"]}
  - {id: "feature:anti-tangle-brush", label: Feature, en: "anti-tangle brush", zh: "毛发防缠绕",
     aliases: ["缠毛", "hair tangle"]}
  - {id: "category:smart_home", label: Category, en: "smart home", zh: "智能家居"}
  - {id: "HOM-001", label: Product, aliases: ["扫地机器人", "robot vacuum"]}
relations:
  - ["HOM-001", "HAS_FEATURE", "feature:anti-tangle-brush"]
  - ["feature:anti-tangle-brush", "SUITS", "scenario:pets"]
  - ["feature:sleep-tracking", "SUITS", "scenario:sleep"]
  - ["AUD-002", "ALTERNATIVE_TO", "AUD-008"]
  - ["CMP-008", "ACCESSORY_OF", "CMP-001"]
"""


def write_triples(directory: Path, text: str = FIXTURE_TRIPLES) -> Path:
    """Write a triples file into ``directory``."""
    path = directory / "triples.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> ProductGraph:
    """The fixture graph, built once per module in memory."""
    return ProductGraph.build(fixture_products(), write_triples(tmp_path_factory.mktemp("triples")), None)


# ------------------------------------------------------------------------------------------ building


def test_build_stores_labelled_entities_and_relations(graph: ProductGraph) -> None:
    stats = graph.stats()
    assert stats.nodes == {"Product": 8, "Feature": 15, "Scenario": 9, "Category": 4, "Brand": 4}
    assert stats.relations["HAS_FEATURE"] == 16  # 15 from the catalog + the anti-tangle brush
    assert stats.relations["SUITS"] == 16  # 14 from the catalog + two feature → scenario
    assert stats.relations["ALTERNATIVE_TO"] == 2  # stored both ways
    assert stats.relations["ACCESSORY_OF"] == 1
    assert stats.relations["BELONGS_TO"] == stats.relations["MADE_BY"] == 8
    assert stats.source_chunks == 9  # one per product, one for the triples file

    store = graph.index.property_graph_store
    (pets,) = store.get(ids=["scenario:pets"])
    assert isinstance(pets, EntityNode)
    assert pets.label == "Scenario"
    assert pets.properties["name_en"] == "pet owners"
    assert pets.properties["name_zh"] == "养宠家庭"
    assert {"猫", "cat", "pets", "宠物"} <= set(pets.properties["aliases"])  # the catalog names became aliases
    triplets = {(s.id, r.label, t.id) for s, r, t in store.get_triplets(ids=["HOM-001"])}
    assert {
        ("HOM-001", "HAS_FEATURE", "feature:anti-tangle-brush"),
        ("HOM-001", "HAS_FEATURE", "feature:laser-navigation"),
        ("HOM-001", "SUITS", "scenario:pets"),
        ("HOM-001", "BELONGS_TO", "category:smart_home"),
        ("HOM-001", "MADE_BY", "brand:nestia"),
    } <= triplets
    assert graph.entity("category:smart_home").name(Lang.ZH) == "智能家居"
    assert graph.entity("brand:kefu").name_en == "Kefu"
    assert graph.alternatives_for("AUD-008") == ["AUD-002"]
    assert graph.accessories_for("CMP-001") == ["CMP-008"]


def test_entities_are_embedded_into_the_index_vector_store(graph: ProductGraph) -> None:
    vector_store = graph.index.vector_store
    assert vector_store is not None
    stored = vector_store.to_dict()["embedding_dict"]
    assert "scenario:pets" in stored  # the index's own vector for the entity
    assert len(stored["scenario:pets"]) == 512
    assert graph.stats().vectors > sum(graph.stats().nodes.values())  # plus one per name and alias


def test_llama_index_defaults_are_kefus_after_building(graph: ProductGraph) -> None:
    assert isinstance(Settings.llm, NoLlm)
    assert isinstance(Settings.embed_model, UseEmbedding)


def test_build_and_query_touch_no_network(tmp_path: Path, no_network: list[str]) -> None:
    graph = ProductGraph.build(fixture_products(), write_triples(tmp_path), tmp_path / "graph")
    loaded = ProductGraph.load_or_build(fixture_products(), tmp_path / "triples.yaml", tmp_path / "graph")
    assert loaded.recommend("家里有猫，掉毛严重", lang=Lang.ZH)[0].sku == "HOM-001"
    assert graph.find_entities("robot vacuum")[0][0].id == "HOM-001"
    assert no_network == []


# -------------------------------------------------------------------------------------- entity search


@pytest.mark.parametrize(
    ("text", "entity_id", "score"),
    [
        ("养宠家庭", "scenario:pets", 1.0),  # zh name
        ("Nestia X1 Robot Vacuum and Mop", "HOM-001", 1.0),  # en name
        ("hom-001 还有货吗", "HOM-001", 1.0),  # SKU
        ("想买个扫地机器人", "HOM-001", 0.9),  # zh alias
        ("my two cats", "scenario:pets", 0.9),  # en alias, plural
        ("Nestia X1", "HOM-001", 0.8),  # part of a name
    ],
)
def test_find_entities_by_name_and_alias(graph: ProductGraph, text: str, entity_id: str, score: float) -> None:
    found = {ref.id: s for ref, s in graph.find_entities(text, limit=10)}
    assert found.get(entity_id) == score


def test_latin_aliases_match_whole_words_only(graph: ProductGraph) -> None:
    found = {ref.id for ref, score in graph.find_entities("what is the location of my order", limit=10) if score >= 0.9}
    assert "scenario:pets" not in found  # "location" holds "cat"


def test_find_entities_by_embedding_similarity(graph: ProductGraph) -> None:
    # no name or alias of the graph occurs in the text: only USE similarity can find it
    found = graph.find_entities("earphones that stay put while I'm jogging", limit=3)
    assert found[0][0].id in {"scenario:running", "feature:secure-ear-hooks", "AUD-002"}
    assert 0.4 < found[0][1] < 0.9


def test_find_entities_orders_best_first(graph: ProductGraph) -> None:
    found = graph.find_entities("家里有猫，扫地机器人", limit=5)
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    assert [ref.id for ref, _ in found[:2]] == ["HOM-001", "scenario:pets"]  # ties by id


# ---------------------------------------------------------------------------------------------- paths


def test_paths_reach_products_through_features_within_two_hops(graph: ProductGraph) -> None:
    paths = graph.paths(["scenario:pets"], depth=2)
    assert GraphPath(("scenario:pets", "HOM-001"), ("SUITS",)) in paths
    via_feature = GraphPath(("scenario:pets", "feature:anti-tangle-brush", "HOM-001"), ("SUITS", "HAS_FEATURE"))
    assert via_feature in paths
    assert (
        graph.render(via_feature, Lang.ZH) == "养宠家庭 ← SUITS ← 毛发防缠绕 ← HAS_FEATURE ← Nestia X1 扫拖一体机器人"
    )
    assert all(graph.entity(p.end).label == "Product" for p in paths)
    assert via_feature not in graph.paths(["scenario:pets"], depth=1)
    assert graph.products_for(["scenario:sleep"], relations={"SUITS", "HAS_FEATURE"}) == ["HOM-005", "WEA-003"]


def test_paths_from_a_product_include_its_alternatives_and_accessories(graph: ProductGraph) -> None:
    ends = {p.end for p in graph.paths(["AUD-008", "CMP-001"], depth=1)}
    assert ends == {"AUD-008", "AUD-002", "CMP-001", "CMP-008"}


def test_paths_reject_unknown_entities(graph: ProductGraph) -> None:
    with pytest.raises(NotFoundError, match="scenario:nope"):
        graph.paths(["scenario:nope"])


# ---------------------------------------------------------------------------------------- persistence


def test_persisted_graph_loads_back_and_answers_the_same(graph: ProductGraph, tmp_path: Path) -> None:
    triples = write_triples(tmp_path)
    built = ProductGraph.build(fixture_products(), triples, tmp_path / "graph")
    loaded = ProductGraph.load(tmp_path / "graph")
    assert loaded.fingerprint == built.fingerprint
    assert loaded.stats() == built.stats()
    for need, lang in (("家里有猫，掉毛严重", Lang.ZH), ("something for running", Lang.EN), ("睡不着", Lang.ZH)):
        assert loaded.recommend(need, lang=lang) == built.recommend(need, lang=lang)
        assert loaded.find_entities(need) == built.find_entities(need)
    assert loaded.compare(["AUD-002", "AUD-008"], lang=Lang.EN) == built.compare(["AUD-002", "AUD-008"], lang=Lang.EN)


def test_load_or_build_reuses_until_the_triples_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    triples, persist = write_triples(tmp_path), tmp_path / "graph"
    first = ProductGraph.load_or_build(fixture_products(), triples, persist)
    assert (persist / "property_graph_store.json").is_file()

    def no_build(*_args: object) -> ProductGraph:
        raise AssertionError("rebuilt an unchanged graph")

    with monkeypatch.context() as patch:
        patch.setattr(ProductGraph, "build", classmethod(no_build))
        again = ProductGraph.load_or_build(fixture_products(), triples, persist)
    assert again.fingerprint == first.fingerprint

    triples.write_text(FIXTURE_TRIPLES.replace('"hair tangle"', '"hair tangle", "头发缠住"'), encoding="utf-8")
    rebuilt = ProductGraph.load_or_build(fixture_products(), triples, persist)
    assert rebuilt.fingerprint != first.fingerprint
    assert "头发缠住" in rebuilt.aliases("feature:anti-tangle-brush")
    assert ProductGraph.load(persist).fingerprint == rebuilt.fingerprint


def test_load_or_build_rebuilds_when_the_catalog_changes(tmp_path: Path) -> None:
    triples, persist = write_triples(tmp_path), tmp_path / "graph"
    first = ProductGraph.load_or_build(fixture_products(), triples, persist)
    products = [p.model_copy(update={"stock": 0}) if p.sku == "HOM-001" else p for p in fixture_products()]
    rebuilt = ProductGraph.load_or_build(products, triples, persist)
    assert rebuilt.fingerprint != first.fingerprint
    ranked = rebuilt.recommend("家里有猫", lang=Lang.ZH)
    assert ranked[0].sku == "HOM-003"  # the only pet product still in stock
    assert [r.in_stock for r in ranked if r.sku == "HOM-001"] == [False]


def test_load_or_build_rebuilds_a_damaged_directory(tmp_path: Path) -> None:
    triples, persist = write_triples(tmp_path), tmp_path / "graph"
    ProductGraph.load_or_build(fixture_products(), triples, persist)
    (persist / "default__vector_store.json").write_text("{", encoding="utf-8")
    graph = ProductGraph.load_or_build(fixture_products(), triples, persist)
    assert graph.find_entities("扫地机器人")[0][0].id == "HOM-001"
    shutil.rmtree(persist)


# -------------------------------------------------------------------------------------- triples file


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _replace('"HAS_FEATURE", "feature:anti', '"HAS_FEATURES", "feature:anti'),
            r":10 relations\[0\].*'HAS_FEATURES'",
        ),
        (_replace('["CMP-008", "ACCESSORY_OF"', '["CMP-009", "ACCESSORY_OF"'), r":14 relations\[4\].*'CMP-009'"),
        (_replace("label: Category", "label: Department"), r":7 entities\[3\].*'Department'"),
        (_replace('"AUD-002", "ALTERNATIVE_TO", "AUD-008"', '"AUD-002", "SUITS", "AUD-008"'), r"SUITS goes from"),
        (
            _replace('{id: "HOM-001", label: Product', '{id: "HOM-999", label: Product'),
            r"HOM-999 is not in the catalog",
        ),
        (_replace('zh: "毛发防缠绕",', ""), r"needs both 'en' and 'zh'"),
        (_replace('id: "category:smart_home"', 'id: "smart_home"'), r"ids look like 'category:<slug>'"),
        (_replace("label: Scenario, aliases", "label: Feature, aliases"), r"is a Scenario in the catalog"),
        (_replace("relations:", "relation:"), r"unknown top-level keys \['relation'\]"),
        (_replace('"失眠", ', '["失眠"], '), r"'aliases' must be a list of strings"),
        (_replace('- ["CMP-008", "ACCESSORY_OF", "CMP-001"]', '- ["CMP-008", "ACCESSORY_OF"]'), r"relations\[4\]"),
        (_replace("entities:", "entities: [oops"), r"not valid YAML"),
    ],
)
def test_bad_triples_file_names_the_entry(tmp_path: Path, edit: Callable[[str], str], message: str) -> None:
    triples = write_triples(tmp_path, edit(FIXTURE_TRIPLES))
    with pytest.raises(TriplesFileError, match=message):
        ProductGraph.build(fixture_products(), triples, None)


# ------------------------------------------------------------------------------ the shipped demo data


def test_shipped_triples_validate_against_the_seeded_catalog(store: SqlStore) -> None:
    products = store.list_products()
    graph = ProductGraph.build(products, DEFAULT_TRIPLES, None)
    stats = graph.stats()
    assert stats.nodes["Product"] == len(products)
    assert stats.relations["ALTERNATIVE_TO"] >= 20 and stats.relations["ACCESSORY_OF"] >= 10
    suits = graph.index.property_graph_store.get_triplets(relation_names=["SUITS"])
    assert sum(source.label == "Feature" for source, _, _ in suits) >= 20
    scenarios = [e.id for e in graph.entities("Scenario")]
    assert all(len(graph.aliases(s)) >= 3 for s in scenarios)
    top = graph.recommend("家里有猫，掉毛严重", lang=Lang.ZH)
    assert "HOM-001" in [r.sku for r in top]
    assert graph.recommend("asdf qwer zxcv", lang=Lang.EN) == []
