from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInputError
from core.types import Lang
from knowledge.loaders import (
    DocumentError,
    chunk_document,
    detect_lang,
    load_document,
    split_sentences,
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- Markdown

RETURNS_MD = """---
title: Returns and refunds
lang: en
category: returns
products: [HOM-001, hom-003]
---

# Returns and refunds

You can return most items within **7 days** of delivery,
no questions asked. See [the policy page](https://example.com/returns).

## How refunds work

Refunds go back to the original payment method within 3-5 working days.

- Items must be unused
- Keep the original packaging

| Method | Days |
|---|---|
| Alipay | 1-3 |

```
# not a heading inside code
```

#### Large appliances
They are collected by courier.
"""


def test_markdown_front_matter_and_sections(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "returns.md", RETURNS_MD), "policies/returns.md")

    assert (doc.title, doc.lang, doc.category, doc.products, doc.format) == (
        "Returns and refunds",
        Lang.EN,
        "returns",
        ("HOM-001", "HOM-003"),
        "md",
    )
    assert [s.heading for s in doc.sections] == ["Returns and refunds", "How refunds work"]
    intro, refunds = (s.text for s in doc.sections)
    # soft-wrapped lines re-joined, emphasis and link syntax dropped
    assert intro == "You can return most items within 7 days of delivery, no questions asked. See the policy page."
    assert "- Items must be unused\n- Keep the original packaging" in refunds
    assert "| Alipay | 1-3 |" in refunds and "|---|" not in refunds
    assert "# not a heading inside code" in refunds
    assert "Large appliances\n\nThey are collected by courier." in refunds


def test_markdown_fallbacks_from_name_folder_heading_and_stem(tmp_path: Path) -> None:
    source = "shipping/delivery-times.zh.md"
    zh = load_document(write(tmp_path / source, "## 发货时间\n\n现货订单 24 小时内发货。\n"), source)
    assert (zh.title, zh.lang, zh.category, zh.products) == ("发货时间", Lang.ZH, "shipping", ())

    plain = load_document(write(tmp_path / "care_guide.md", "Wipe the Lumo earbuds with a dry cloth.\n"))
    assert (plain.title, plain.lang, plain.category) == ("Care guide", Lang.EN, "general")

    cjk = load_document(write(tmp_path / "notes.md", "Nestia X1 扫拖一体机器人每周清理一次滚刷。"))
    assert cjk.lang is Lang.ZH


def test_chunk_titles_join_title_and_heading(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "returns.md", RETURNS_MD), "returns.md")
    chunks = chunk_document(doc)

    assert [c.id for c in chunks] == ["returns.md#1", "returns.md#2"]
    assert [c.title for c in chunks] == ["Returns and refunds", "Returns and refunds — How refunds work"]
    assert chunks[1].embed_text.startswith("Returns and refunds — How refunds work\nRefunds go back")
    assert chunks[1].text.startswith("Refunds go back")
    assert all(c.products == ("HOM-001", "HOM-003") and c.category == "returns" for c in chunks)


# ---------------------------------------------------------------------------------------- HTML

WARRANTY_HTML = """<!doctype html>
<html><head>
<title>保修政策</title>
<meta charset="utf-8">
<meta name="kefu-lang" content="zh">
<meta name="kefu-category" content="Warranty">
<meta name="kefu-products" content="HOM-001, HOM-003">
<style>body { color: red }</style>
</head>
<body>
<script>var secret = "不要索引这段脚本";</script>
<h1>保修政策</h1>
<p>所有 Nestia 产品享受<b>两年</b>免费保修&amp;上门取件。</p>
<h2>不在保修范围</h2>
<ul><li>人为损坏</li><li>进水</li></ul>
<table><tr><th>产品</th><th>保修期</th></tr><tr><td>扫地机器人</td><td>2 年</td></tr></table>
<h3>联系我们</h3><div>客服热线<br>400-800-1234</div>
</body></html>
"""


def test_html_meta_visible_text_lists_and_tables(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "warranty.htm", WARRANTY_HTML), "warranty.htm")

    assert (doc.title, doc.lang, doc.category, doc.products, doc.format) == (
        "保修政策",
        Lang.ZH,
        "warranty",
        ("HOM-001", "HOM-003"),
        "html",
    )
    assert [s.heading for s in doc.sections] == ["保修政策", "不在保修范围", "联系我们"]
    assert doc.sections[0].text == "所有 Nestia 产品享受两年免费保修&上门取件。"
    assert doc.sections[1].text == "- 人为损坏\n- 进水\n\n产品 | 保修期\n扫地机器人 | 2 年"
    assert doc.sections[2].text == "客服热线\n400-800-1234"
    all_text = " ".join(s.text for s in doc.sections)
    assert "secret" not in all_text and "color" not in all_text


def test_html_without_meta_falls_back(tmp_path: Path) -> None:
    doc = load_document(
        write(tmp_path / "payment/methods.en.html", "<html><body><h1>Payment methods</h1><p>We take Alipay.</p>"),
        "payment/methods.en.html",
    )
    assert (doc.title, doc.lang, doc.category) == ("Payment methods", Lang.EN, "payment")


# ------------------------------------------------------------------------- PDF-extracted text

SHIPPING_TXT = """Title: Shipping Guide
Lang: en
Category: shipping
Products: AUD-001, HOM-001

SHIPPING GUIDE
1. Scope
This guide explains how orders are ship-
ped from our warehouses to customers in
mainland China and overseas. Overseas orders can take up to

— 3 —

Kefu Shop Shipping Guide

eight working days.
Page 4 of 7
Kefu Shop Shipping Guide
2. Fees
Orders over 99 yuan ship free. A 7-
day window applies to changes.
- Remote areas: 10 yuan
- Islands: 20 yuan
"""

POLICY_ZH_TXT = """第一条 适用范围
本规定适用于在本店购买的全部商品，
包括 Nestia 扫地机器人。

第 2 页 共 5 页

第二条 退货时限
客户应在签收后七天内申请退货，逾期

退货政策 — 第 3 页，共 5 页

KEFU 商城 | 退货政策 | 版本 2

不予受理。

退货政策 — 第 4 页，共 5 页

KEFU 商城 | 退货政策 | 版本 2

三、退款方式
退款原路退回。
"""


def test_pdf_text_reflow_drops_page_furniture(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "shipping.txt", SHIPPING_TXT), "guides/shipping.txt")

    assert (doc.title, doc.lang, doc.category, doc.products, doc.format) == (
        "Shipping Guide",
        Lang.EN,
        "shipping",
        ("AUD-001", "HOM-001"),
        "txt",
    )
    # the all-caps "SHIPPING GUIDE" line is a heading with nothing under it: no section
    assert [s.heading for s in doc.sections] == ["1. Scope", "2. Fees"]
    scope, fees = (s.text for s in doc.sections)
    assert scope == (
        "This guide explains how orders are shipped from our warehouses to customers in mainland China "
        "and overseas. Overseas orders can take up to eight working days."
    )
    assert fees == (
        "Orders over 99 yuan ship free. A 7-day window applies to changes.\n- Remote areas: 10 yuan\n- Islands: 20 yuan"
    )
    everything = " ".join(s.text for s in doc.sections)
    assert "Page 4" not in everything and "— 3 —" not in everything and "Kefu Shop Shipping Guide" not in everything


def test_pdf_text_in_chinese_without_header(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "returns-policy.txt", POLICY_ZH_TXT), "returns-policy.txt")

    assert (doc.title, doc.lang, doc.category) == ("第一条 适用范围", Lang.ZH, "general")
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("第一条 适用范围", "本规定适用于在本店购买的全部商品，包括 Nestia 扫地机器人。"),
        ("第二条 退货时限", "客户应在签收后七天内申请退货，逾期不予受理。"),
        ("三、退款方式", "退款原路退回。"),
    ]


def test_pdf_text_cover_line_repeating_the_title_is_not_body_text(tmp_path: Path) -> None:
    text = "Title: 隐私政策\n\n隐私政策\n\n生效日期：2026年9月1日。\n"
    doc = load_document(write(tmp_path / "privacy.txt", text))
    assert [(s.heading, s.text) for s in doc.sections] == [("隐私政策", "生效日期：2026年9月1日。")]


def test_pdf_text_form_feed_is_a_page_break(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "a.txt", "Refunds are paid within\n\f3\nfive days.\n"))
    assert doc.sections[0].text == "Refunds are paid within five days."


# ----------------------------------------------------------------------------------------- CSV

FAQ_CSV = """question,answer,lang,category,products
退货多久到账？,审核通过后 1-3 个工作日原路退回。,zh,returns,HOM-001;HOM-003
Do you ship abroad?,"Yes, by DHL; it takes
up to eight working days.",en,,

Can I pay with Alipay?,Yes.,,payment,
"""


def test_csv_one_chunk_per_row(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "faq/faq.csv", FAQ_CSV), "faq/faq.csv")
    chunks = chunk_document(doc, max_chars=50)  # rows are never split

    assert [c.id for c in chunks] == ["faq/faq.csv#row-1", "faq/faq.csv#row-2", "faq/faq.csv#row-3"]
    zh, abroad, alipay = chunks
    assert zh.text == "问：退货多久到账？\n答：审核通过后 1-3 个工作日原路退回。"
    assert (zh.lang, zh.category, zh.products) == (Lang.ZH, "returns", ("HOM-001", "HOM-003"))
    assert abroad.text == "Q: Do you ship abroad?\nA: Yes, by DHL; it takes\nup to eight working days."
    assert (abroad.lang, abroad.category, abroad.products) == (Lang.EN, "faq", ())
    assert (alipay.lang, alipay.category, alipay.title) == (Lang.EN, "payment", "FAQ — Can I pay with Alipay?")


# ----------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("junk.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        ("latin1.md", "Rückgabe innerhalb 7 Tagen".encode("latin-1"), "not valid UTF-8"),
        ("unclosed.md", "---\ntitle: Returns\n\nbody text\n", "never closed"),
        ("badyaml.md", "---\ntitle: [unclosed\n---\nbody\n", "malformed front matter"),
        ("listyaml.md", "---\n- a\n- b\n---\nbody\n", "must be a mapping"),
        ("unknownkey.md", "---\ntitel: Typo\n---\nbody\n", "unknown front matter keys"),
        ("french.md", "---\nlang: fr\n---\nbody\n", "unsupported lang 'fr'"),
        ("badsku.html", '<meta name="kefu-products" content="HOM 001"><p>x</p>', "not a product SKU"),
        ("header.csv", "q,a\nWhat?,That.\n", "CSV header must be"),
        ("short.csv", "question,answer,lang,category,products\nWhat?,That.\n", "expected 5 fields"),
        ("empty-answer.csv", "question,answer,lang,category,products\nWhat?,,en,,\n", "must both be filled"),
        ("txt-header.txt", "Title: Shipping\nBody starts without a blank line\n", "must end with a blank line"),
        ("empty.md", "", "no text to index"),
        ("slides.pptx", "hello", "unsupported file type '.pptx'"),
    ],
)
def test_bad_files_raise_errors_naming_the_file(tmp_path: Path, name: str, content: str | bytes, reason: str) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(DocumentError) as caught:
        load_document(path)
    assert str(path) in str(caught.value)
    assert reason in caught.value.reason
    assert isinstance(caught.value, InvalidInputError)


def test_missing_file_is_a_document_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="cannot read"):
        load_document(tmp_path / "gone.md")


# ------------------------------------------------------------------------------------ chunking


def test_sentences_split_in_both_languages() -> None:
    assert split_sentences("退货需七天内申请。审核通过后退款！还有问题吗？好的") == [
        "退货需七天内申请。",
        "审核通过后退款！",
        "还有问题吗？",
        "好的",
    ]
    assert split_sentences('It costs 1.5 yuan. "Really?" Yes! Done') == [
        "It costs 1.5 yuan.",
        '"Really?"',
        "Yes!",
        "Done",
    ]


def test_long_sections_split_at_sentences_within_the_limit(tmp_path: Path) -> None:
    en = " ".join(f"Sentence number {i} explains one more rule of the return policy." for i in range(40))
    zh = "".join(f"第{i}句说明退货政策的一条规则，请仔细阅读。" for i in range(60))
    body = f"# Policy\n\n{en}\n\nShort paragraph.\n\n## 中文部分\n\n{zh}\n"
    doc = load_document(write(tmp_path / "long.md", body))
    chunks = chunk_document(doc, max_chars=300)

    assert len(chunks) > 8
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.text.endswith((".", "。")) for c in chunks)  # never cut mid-sentence
    assert [c.id for c in chunks] == [f"long.md#{n}" for n in range(1, len(chunks) + 1)]
    assert "".join(c.text for c in chunks).count("请仔细阅读。") == 60
    assert all(c.title == "Policy — 中文部分" for c in chunks if "第" in c.text)
    rebuilt = " ".join(c.text for c in chunks if c.title == "Policy").replace("\n\n", " ")
    assert rebuilt == f"{en} Short paragraph."


def test_a_sentence_longer_than_the_limit_is_cut_at_commas(tmp_path: Path) -> None:
    run_on = ", ".join(f"clause {i} of a sentence that never ends" for i in range(30)) + "."
    doc = load_document(write(tmp_path / "runon.md", run_on))
    chunks = chunk_document(doc, max_chars=120)

    assert all(len(c.text) <= 120 for c in chunks)
    assert all(c.text.endswith((",", ".")) for c in chunks)
    assert " ".join(c.text for c in chunks) == run_on


def test_chunk_size_must_be_sensible(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "a.md", "text"))
    with pytest.raises(InvalidInputError):
        chunk_document(doc, max_chars=10)


def test_detect_lang() -> None:
    assert detect_lang("请问退货多久到账？") is Lang.ZH
    assert detect_lang("How long does a refund take?") is Lang.EN
    assert detect_lang("The Nestia X1 (扫拖一体机器人) cleans pet hair from carpets and hard floors well.") is Lang.EN
    assert detect_lang("Lumo Air Pro 主动降噪真无线耳机支持无线充电") is Lang.ZH
