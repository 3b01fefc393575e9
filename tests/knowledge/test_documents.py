from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from core.embeddings import SentenceEncoder, sentence_encoder
from core.errors import InvalidInputError
from core.types import Lang
from knowledge.bm25 import BM25Index, tokenize
from knowledge.documents import DocumentStore

RETURNS_EN = """---
title: Returns and refunds
lang: en
category: returns
products: [HOM-001]
---

# Returns and refunds

Unused items can be returned within 7 days of delivery, no reason needed.

## Refund times

After we receive the parcel, refunds reach the original payment method within 3-5 working days.
"""

RETURNS_ZH = """---
title: 退换货政策
lang: zh
category: returns
---

# 退换货政策

签收后七天内，商品未使用可无理由退货。

## 退款到账时间

仓库收到退货后，退款在 1-3 个工作日内原路退回。
"""

WARRANTY_HTML = """<html><head><title>保修政策</title>
<meta name="kefu-lang" content="zh"><meta name="kefu-category" content="warranty">
<meta name="kefu-products" content="HOM-001,HOM-003"></head>
<body><h1>保修政策</h1><p>Nestia 扫地机器人整机保修两年，电池保修一年。</p>
<h2>不在保修范围</h2><ul><li>人为损坏</li><li>进水或私自拆机</li></ul></body></html>
"""

SHIPPING_TXT = """Title: Shipping guide
Lang: en
Category: shipping

1. Delivery times
Orders placed before 4 pm leave the warehouse the same day. Delivery in mainland China
takes one to three days with SF Express; overseas parcels go by DHL and take up to

— 2 —

eight working days.
"""

FAQ_CSV = """question,answer,lang,category,products
可以开发票吗？,可以。电子发票在确认收货后 24 小时内开具，可在“我的订单”页面下载 PDF。,zh,payment,
How do I earn membership points?,Every 1 yuan spent earns 1 point; gold members earn double points.,en,membership,
耳机可以连接两台设备吗？,Lumo Air Pro 支持双设备连接，可同时连接手机和电脑。,zh,product,AUD-001
"""


def write_corpus(root: Path) -> Path:
    files = {
        "policies/returns.en.md": RETURNS_EN,
        "policies/returns.zh.md": RETURNS_ZH,
        "policies/warranty.html": WARRANTY_HTML,
        "guides/shipping.txt": SHIPPING_TXT,
        "faq/faq.csv": FAQ_CSV,
        ".drafts/secret.md": "# Draft\n\nNot ready for customers.\n",
        "images/logo.png": "not a document",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return sentence_encoder()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def store(tmp_path: Path, encoder: SentenceEncoder) -> DocumentStore:
    return DocumentStore(tmp_path / "chroma")


@pytest.fixture
def filled(store: DocumentStore, corpus: Path) -> DocumentStore:
    report = store.ingest([corpus])
    assert not report.failed
    return store


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts texts the encoder embeds from now on."""
    calls: list[int] = []
    original = SentenceEncoder.encode

    def counting(self: SentenceEncoder, texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(SentenceEncoder, "encode", counting)
    return calls


def top_ids(store: DocumentStore, query: str, **filters: object) -> list[str]:
    return [p.id for p in store.search(query, **filters)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- ingest


def test_ingest_and_search_offline(
    no_network: list[str], tmp_path: Path, corpus: Path, encoder: SentenceEncoder, encode_calls: list[int]
) -> None:
    store = DocumentStore(tmp_path / "offline")  # Chroma starts with sockets and subprocesses refused
    progress: list[tuple[str, int, int]] = []
    report = store.ingest([corpus], progress=lambda *args: progress.append(args))

    sources = ["faq/faq.csv", "guides/shipping.txt", "policies/returns.en.md", "policies/returns.zh.md"]
    sources.append("policies/warranty.html")
    assert report.added == tuple(sources)  # hidden folders and other file types are skipped
    assert (report.updated, report.unchanged, report.pruned, report.failed) == ((), (), (), ())
    assert report.chunks_added == store.count() == 10 and report.chunks_removed == 0
    assert sum(encode_calls) == 10
    assert progress == [(source, n, 5) for n, source in enumerate(sources, start=1)]
    assert set(store.sources()) == set(sources)

    en = store.search("How long until I get my refund?")
    assert en[0].id == "policies/returns.en.md#2"
    assert en[0].title == "Returns and refunds — Refund times"
    assert en[0].text.startswith("After we receive the parcel")
    assert (en[0].lang, en[0].category, en[0].products) == (Lang.EN, "returns", ["HOM-001"])
    assert store.search("扫地机器人保修多久？")[0].id == "policies/warranty.html#1"
    assert no_network == []


def test_search_finds_the_right_passage_in_each_format(filled: DocumentStore) -> None:
    assert top_ids(filled, "退款几天到账")[0] == "policies/returns.zh.md#2"
    assert top_ids(filled, "When will my DHL parcel arrive overseas?")[0] == "guides/shipping.txt#1"
    assert top_ids(filled, "membership points")[0] == "faq/faq.csv#row-2"
    assert top_ids(filled, "Lumo Air Pro 能同时连手机和电脑吗")[0] == "faq/faq.csv#row-3"
    passage = filled.search("shipping", limit=1)[0]
    assert passage.text == (
        "Orders placed before 4 pm leave the warehouse the same day. Delivery in mainland China takes one to "
        "three days with SF Express; overseas parcels go by DHL and take up to eight working days."
    )


def test_an_english_question_finds_a_chinese_only_passage(filled: DocumentStore) -> None:
    passages = filled.search("Can I get an invoice for my order?")
    assert passages[0].id == "faq/faq.csv#row-1"
    assert passages[0].lang is Lang.ZH


def test_scores_are_in_unit_range_rounded_and_sorted(filled: DocumentStore) -> None:
    passages = filled.search("退货", limit=20)
    scores = [p.score for p in passages]
    assert len(passages) == 10
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 and round(s, 4) == s for s in scores)
    assert filled.search("How do I earn membership points?")[0].score > 0.6  # near-verbatim question
    assert filled.search("What is the capital of Mongolia?")[0].score < 0.35  # nothing about it


def test_language_filter(filled: DocumentStore) -> None:
    zh = filled.search("refund", lang=Lang.ZH, limit=20)
    assert {p.lang for p in zh} == {Lang.ZH} and len(zh) == 6
    assert {p.lang for p in filled.search("退款", lang="en", limit=20)} == {Lang.EN}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"lang": "en", "category": "returns"}, {"policies/returns.en.md#1", "policies/returns.en.md#2"}),
        ({"category": "Warranty"}, {"policies/warranty.html#1", "policies/warranty.html#2"}),
        ({"product": "hom-003"}, {"policies/warranty.html#1", "policies/warranty.html#2"}),
        ({"product": "HOM-001", "lang": Lang.EN}, {"policies/returns.en.md#1", "policies/returns.en.md#2"}),
        ({"product": "AUD-001", "category": "product"}, {"faq/faq.csv#row-3"}),
        ({"category": "returns", "product": "AUD-001"}, set()),
        ({"category": "no-such-category"}, set()),
    ],
)
def test_category_and_product_filters(filled: DocumentStore, filters: dict[str, object], expected: set[str]) -> None:
    passages = filled.search("退货 保修 发票 refund", limit=20, **filters)  # type: ignore[arg-type]
    assert {p.id for p in passages} == expected


def test_reingest_is_a_no_op(filled: DocumentStore, corpus: Path, encode_calls: list[int]) -> None:
    count = filled.count()
    report = filled.ingest([corpus])

    assert report.unchanged == tuple(sorted(filled.sources()))
    assert (report.added, report.updated, report.pruned, report.failed) == ((), (), (), ())
    assert (report.chunks_added, report.chunks_removed, report.changed) == (0, 0, False)
    assert encode_calls == []  # nothing re-embedded
    assert filled.count() == count


def test_a_changed_file_replaces_its_chunks(filled: DocumentStore, corpus: Path) -> None:
    assert "1-3 个工作日" in filled.search("退款到账时间", lang=Lang.ZH)[0].text
    old_sha = filled.sources()["policies/returns.zh.md"]
    (corpus / "policies/returns.zh.md").write_text(
        "---\nlang: zh\ncategory: returns\n---\n\n# 退换货政策\n\n退款在 5-7 个工作日内原路退回。\n", encoding="utf-8"
    )

    report = filled.ingest([corpus])

    assert report.updated == ("policies/returns.zh.md",)
    assert (report.chunks_added, report.chunks_removed) == (1, 2)
    assert filled.sources()["policies/returns.zh.md"] != old_sha
    texts = [p.text for p in filled.search("退款到账时间", limit=20)]
    assert "退款在 5-7 个工作日内原路退回。" in texts
    assert not any("1-3 个工作日" in text or "七天内" in text for text in texts)
    assert filled.count() == 9


def test_a_new_chunk_size_rechunks_unchanged_files(filled: DocumentStore, tmp_path: Path) -> None:
    smaller = DocumentStore(tmp_path / "chroma", chunk_chars=60)
    report = smaller.ingest([tmp_path / "docs"])
    assert len(report.updated) == 5 and report.unchanged == ()
    assert all(len(p.text) <= 60 for p in smaller.search("refund", limit=50) if "#row-" not in p.id)


def test_prune_removes_deleted_files_only_inside_the_given_folders(
    filled: DocumentStore, corpus: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "promo.en.md"
    outside.parent.mkdir()
    outside.write_text("# Singles' Day\n\nAll Lumo earbuds are 20% off on November 11.\n", encoding="utf-8")
    assert filled.ingest([outside]).added == ("promo.en.md",)
    (corpus / "policies/warranty.html").unlink()

    kept = filled.ingest([corpus])  # without prune nothing is deleted
    assert kept.pruned == () and "policies/warranty.html" in filled.sources()

    report = filled.ingest([corpus], prune=True)
    assert report.pruned == ("policies/warranty.html",)
    assert report.chunks_removed == 2
    assert "policies/warranty.html" not in filled.sources()
    assert "promo.en.md" in filled.sources()  # never ingested from this folder: never pruned
    assert top_ids(filled, "Singles' Day discount")[0] == "promo.en.md#1"
    assert not any(p.source == "policies/warranty.html" for p in filled.search("保修", limit=20))


def test_bad_files_are_reported_and_the_rest_ingested(store: DocumentStore, corpus: Path) -> None:
    (corpus / "policies/broken.md").write_bytes(b"# Returns\n\nR\xfcckgabe innerhalb 7 Tagen\n")
    (corpus / "faq/wrong.csv").write_text("q,a\nWhat?,That.\n", encoding="utf-8")

    report = store.ingest([corpus, corpus.parent / "missing"])

    failed = {path.name: reason for path, reason in report.failed}
    assert set(failed) == {"broken.md", "wrong.csv", "missing"}
    assert "not valid UTF-8" in failed["broken.md"]
    assert "CSV header" in failed["wrong.csv"]
    assert len(report.added) == 5 and store.count() == 10


def test_a_file_that_turns_bad_keeps_its_old_chunks(filled: DocumentStore, corpus: Path) -> None:
    (corpus / "faq/faq.csv").write_text("question;answer\n", encoding="utf-8")
    report = filled.ingest([corpus])
    assert [path.name for path, _ in report.failed] == ["faq.csv"]
    assert top_ids(filled, "membership points")[0] == "faq/faq.csv#row-2"


def test_files_given_directly_are_filed_under_their_name(store: DocumentStore, corpus: Path) -> None:
    report = store.ingest([corpus / "faq/faq.csv", corpus / "policies/returns.en.md"])
    assert report.added == ("faq.csv", "returns.en.md")
    assert top_ids(store, "invoice")[0] == "faq.csv#row-1"


def test_data_persists_across_store_instances(filled: DocumentStore, tmp_path: Path) -> None:
    reopened = DocumentStore(tmp_path / "chroma")
    assert reopened.count() == filled.count() == 10
    assert reopened.sources() == filled.sources()
    assert top_ids(reopened, "退款几天到账")[0] == "policies/returns.zh.md#2"


def test_empty_inputs(store: DocumentStore, filled: DocumentStore) -> None:
    assert DocumentStore(store.path.parent / "empty").search("refund") == []
    assert filled.search("   ") == []
    with pytest.raises(InvalidInputError):
        filled.search("refund", limit=0)
    with pytest.raises(InvalidInputError):
        filled.search("refund", lang="fr")  # type: ignore[arg-type]


def test_concurrent_searches_share_one_index(filled: DocumentStore) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def search() -> None:
        try:
            results.append(top_ids(filled, "退款几天到账"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 8 and all(r == results[0] for r in results)


# ------------------------------------------------------------------------------------ BM25


def test_tokenize_reads_chinese_and_english() -> None:
    assert tokenize("What's the 7-day return policy for HOM-001?") == [
        "7-day",
        "7",
        "day",
        "return",
        "policy",
        "hom-001",
        "hom",
        "001",
    ]
    assert tokenize("我的订单什么时候到？") == ["订", "单", "订单", "时", "候", "到", "时候", "候到"]
    assert tokenize("ＨＯＭ－００１") == ["hom-001", "hom", "001"]  # full-width forms


def test_bm25_scores_are_normalised_by_the_query_ceiling() -> None:
    index = BM25Index(
        ["refund within seven days", "warranty of two years", "退款 七天 到账", "shipping by DHL"],
        groups=["en", "en", "zh", "en"],
    )
    scores = index.scores("refund days")
    assert scores.argmax() == 0
    assert 0 < scores[0] < 1 and scores[1] == scores[3] == 0
    assert index.scores("refund bitcoin")[0] < scores[0]  # an unknown word lowers the match
    assert index.scores("退款多久到账").argmax() == 2
    assert not index.scores("the a of").any()
    assert BM25Index([]).scores("refund").shape == (0,)
