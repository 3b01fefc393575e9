"""Ingest throughput and query latency of the document knowledge base at 1k-10k+ chunks.

For each ``--sizes`` value N the benchmark writes N synthetic but realistic chunks into a temporary
folder: half as FAQ rows in CSV files, half as one-paragraph sections of Markdown policy pages,
in Chinese and English alike, templated over the demo catalog (product names, SKUs, prices) with a
fixed random seed, so every run indexes the same text. Then, on a fresh ``DocumentStore``:

1. ``ingest``: wall time and chunks per second (loading, chunking, embedding, Chroma's writes);
2. re-``ingest`` of the same folder: the idempotent no-op (hashing every file, nothing embedded);
3. the first search, which builds the in-memory BM25 index from the collection, timed apart;
4. ``--queries`` searches, each about a product, topic and language some chunk covers, phrased
   from the same templates with other details (a quarter filtered by category, product or
   language), each timed end to end (query embedding, Chroma's vector query, BM25, merge):
   p50/p95/p99 in milliseconds, unfiltered and filtered apart; and hit@5, the share whose top five
   hold a passage about that product and topic: a sanity check that the timings are of real
   retrieval (retrieval quality proper is measured by ``evals.kb_eval``).

Run:
    python -m evals.kb_bench --sizes 1000 10000 --out evals/results/kb_bench.json

Numbers depend on the machine: the JSON records its CPU count and platform.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from core.db import make_engine
from core.seed import seed
from core.store import SqlStore
from core.types import Lang, Product
from knowledge.documents import DocumentStore

__all__ = ["BenchResult", "generate_corpus", "main", "run"]

_ROWS_PER_CSV: Final = 250
_SECTIONS_PER_PAGE: Final = 25
_CITIES: Final = (
    ("Shanghai", "上海"),
    ("Beijing", "北京"),
    ("Chengdu", "成都"),
    ("Shenzhen", "深圳"),
    ("Xi'an", "西安"),
)
_CARRIERS: Final = (("SF Express", "顺丰速运"), ("JD Logistics", "京东物流"), ("ZTO", "中通快递"), ("EMS", "EMS"))
_TIERS: Final = (("silver", "银卡"), ("gold", "金卡"), ("VIP", "VIP"))

# Each topic: (category, English question, English answer, Chinese question, Chinese answer).
# Placeholders: {name} {sku} {feature} {price} and the numbers from ``_values``.
_TOPICS: Final = (
    (
        "returns",
        "Can I return the {name} after {d} days?",
        "Yes, within limits. The {name} ({sku}) can be returned within {d} days of delivery if it is unused "
        "and in its original packaging. After our returns centre inspects it, the refund reaches the original "
        "payment method within {r} working days.",
        "{name}签收{d}天后还能退货吗？",
        "{name}（{sku}）签收后{d}天内、未使用且包装完好可以申请退货。退货仓验货通过后，退款在{r}个工作日内原路退回。",
    ),
    (
        "shipping",
        "How long does delivery of the {name} to {city} take?",
        "Orders for the {name} paid before {h}:00 leave the warehouse the same day. {carrier} delivers to "
        "{city} in {a} to {b} days, and orders over {x} yuan ship free.",
        "{name}寄到{city_zh}要几天？",
        "{h}点前付款的{name}订单当天发货，{carrier_zh}寄到{city_zh}一般需要{a}到{b}天，订单满{x}元包邮。",
    ),
    (
        "warranty",
        "What does the warranty on the {name} cover?",
        "The {name} has a {y}-year warranty on the main unit and {m} months on the built-in battery. Accidental "
        "damage and liquid damage are not covered; a repair usually takes {d} working days.",
        "{name}的保修包括哪些？",
        "{name}整机保修{y}年，内置电池保修{m}个月。人为损坏和进水不在保修范围内，维修一般需要{d}个工作日。",
    ),
    (
        "payment",
        "Can I pay for the {name} in instalments?",
        "Yes. Orders over {x} yuan, such as the {name} at {price} yuan, can be paid in {n} interest-free "
        "instalments with Huabei or a credit card. The e-invoice is issued within {h} hours of delivery.",
        "{name}可以分期付款吗？",
        "可以。满{x}元的订单（例如售价{price}元的{name}）支持花呗或信用卡{n}期免息分期，电子发票在签收后{h}小时内开具。",
    ),
    (
        "membership",
        "How many points do I earn when I buy the {name}?",
        "Every yuan spent earns one point and {tier} members earn {k} times as many, so the {name} at {price} "
        "yuan earns up to {points} points. One hundred points are worth one yuan at checkout.",
        "买{name}能得多少积分？",
        "每消费1元得1积分，{tier_zh}会员享{k}倍积分，购买售价{price}元的{name}最多可得{points}积分，结账时100积分抵1元。",
    ),
    (
        "product",
        "How do I look after the {name}?",
        "The {name} offers {feature}. To keep it working well, switch it off, wipe it with a dry cloth every "
        "{w} weeks and update its firmware in the app; never use alcohol or solvents on it.",
        "{name}平时怎么保养？",
        "{name}支持{feature_zh}。为保持良好状态，请每{w}周关机后用干布擦拭一次，并在APP中更新固件，不要使用酒精或溶剂清洁。",
    ),
)


@dataclass(frozen=True)
class BenchResult:
    """The numbers for one corpus size."""

    chunks: int
    files: int
    ingest_s: float
    chunks_per_s: float
    reingest_s: float
    first_query_ms: float
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    filtered_p50_ms: float
    filtered_p95_ms: float
    hit_at_5: float


def _catalog() -> list[Product]:
    engine = make_engine("sqlite://")
    seed(engine)
    products = SqlStore(engine).list_products()
    engine.dispose()
    return products


def _values(rng: random.Random, product: Product) -> dict[str, Any]:
    city, city_zh = rng.choice(_CITIES)
    carrier, carrier_zh = rng.choice(_CARRIERS)
    tier, tier_zh = rng.choice(_TIERS)
    k = rng.choice((2, 3))
    feature = rng.randrange(len(product.features_en))
    return {
        "sku": product.sku,
        "price": int(product.price),
        "feature": product.features_en[feature],
        "feature_zh": product.features_zh[feature],
        "city": city,
        "city_zh": city_zh,
        "carrier": carrier,
        "carrier_zh": carrier_zh,
        "tier": tier,
        "tier_zh": tier_zh,
        "k": k,
        "points": int(product.price) * k,
        "d": rng.choice((7, 10, 15, 30)),
        "r": rng.randint(1, 7),
        "h": rng.choice((12, 16, 18, 24, 48)),
        "a": rng.randint(1, 3),
        "b": rng.randint(4, 8),
        "x": rng.choice((99, 199, 299, 500)),
        "y": rng.choice((1, 2, 3)),
        "m": rng.choice((6, 12, 18)),
        "n": rng.choice((3, 6, 12)),
        "w": rng.choice((1, 2, 4)),
    }


def _texts(topic: tuple[str, ...], product: Product, lang: Lang, values: dict[str, Any]) -> tuple[str, str]:
    _category, q_en, a_en, q_zh, a_zh = topic
    if lang is Lang.ZH:
        return q_zh.format(name=product.name_zh, **values), a_zh.format(name=product.name_zh, **values)
    return q_en.format(name=product.name_en, **values), a_en.format(name=product.name_en, **values)


def generate_corpus(
    root: Path, size: int, products: Sequence[Product], *, seed_value: int = 7
) -> tuple[int, set[tuple[str, int, str]]]:
    """Write ``size`` chunks' worth of FAQ CSVs and Markdown pages under ``root``.

    Returns:
        The number of files, and the (SKU, topic index, language) of every chunk.
    """
    rng = random.Random(seed_value)
    covered: set[tuple[str, int, str]] = set()
    rows = size // 2
    sections = size - rows
    files = 0
    for start in range(0, rows, _ROWS_PER_CSV):
        path = root / "faq" / f"faq-{files:04d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["question", "answer", "lang", "category", "products"])
            for _ in range(start, min(rows, start + _ROWS_PER_CSV)):
                product, topic_no, lang = rng.choice(products), rng.randrange(len(_TOPICS)), rng.choice(list(Lang))
                topic = _TOPICS[topic_no]
                covered.add((product.sku, topic_no, lang.value))
                question, answer = _texts(topic, product, lang, _values(rng, product))
                writer.writerow([question, answer, lang.value, topic[0], product.sku])
        files += 1
    for start in range(0, sections, _SECTIONS_PER_PAGE):
        topic_no, lang = rng.randrange(len(_TOPICS)), rng.choice(list(Lang))
        topic = _TOPICS[topic_no]
        chosen = [rng.choice(products) for _ in range(start, min(sections, start + _SECTIONS_PER_PAGE))]
        covered.update((product.sku, topic_no, lang.value) for product in chosen)
        title = f"{topic[0].title()} notes {files}" if lang is Lang.EN else f"{topic[0]} 说明 {files}"
        skus = sorted({product.sku for product in chosen})
        lines = [
            "---",
            f"title: {title}",
            f"lang: {lang.value}",
            f"category: {topic[0]}",
            f"products: [{', '.join(skus)}]",
        ]
        lines += ["---", ""]
        for product in chosen:
            question, answer = _texts(topic, product, lang, _values(rng, product))
            lines += [f"## {question}", "", answer, ""]
        path = root / topic[0] / f"page-{files:04d}.{lang.value}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines), encoding="utf-8")
        files += 1
    return files, covered


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def run(size: int, products: Sequence[Product], *, queries: int = 200, console: Console | None = None) -> BenchResult:
    """Generate, ingest and query one corpus of ``size`` chunks; return its numbers."""
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="kefu-kb-bench-") as tmp:
        docs, chroma = Path(tmp) / "docs", Path(tmp) / "chroma"
        files, covered = generate_corpus(docs, size, products)
        targets = sorted(covered)
        by_sku: dict[str, Product] = {product.sku: product for product in products}
        store = DocumentStore(chroma)
        console.print(f"[bold]{size}[/] chunks in {files} files: ingesting ...")
        report = store.ingest([docs])
        if report.failed or report.chunks_added != size:
            raise SystemExit(f"ingest went wrong: {report.chunks_added} chunks, failed {report.failed[:3]}")
        again = store.ingest([docs])
        if again.changed:
            raise SystemExit("the second ingest changed the store: it is not idempotent")

        rng = random.Random(size)
        started = time.perf_counter()
        store.search("warm-up")
        first_ms = (time.perf_counter() - started) * 1000
        plain: list[float] = []
        filtered: list[float] = []
        hits = 0
        for number in range(queries):
            sku, topic_no, lang_code = rng.choice(targets)
            product, topic, lang = by_sku[sku], _TOPICS[topic_no], Lang(lang_code)
            question, _answer = _texts(topic, product, lang, _values(rng, product))
            filters: dict[str, Any] = {}
            if number % 4 == 3:
                filters = rng.choice(({"category": topic[0]}, {"product": product.sku}, {"lang": lang}))
            started = time.perf_counter()
            passages = store.search(question, limit=5, **filters)
            elapsed = (time.perf_counter() - started) * 1000
            (filtered if filters else plain).append(elapsed)
            hits += any(product.sku in p.products and p.category == topic[0] for p in passages)
        everything = plain + filtered
        return BenchResult(
            chunks=store.count(),
            files=files,
            ingest_s=round(report.seconds, 2),
            chunks_per_s=round(size / report.seconds, 1),
            reingest_s=round(again.seconds, 3),
            first_query_ms=round(first_ms, 1),
            queries=queries,
            p50_ms=_percentile(everything, 50),
            p95_ms=_percentile(everything, 95),
            p99_ms=_percentile(everything, 99),
            filtered_p50_ms=_percentile(filtered, 50),
            filtered_p95_ms=_percentile(filtered, 95),
            hit_at_5=round(hits / queries, 3),
        )


def _table(results: Sequence[BenchResult]) -> Table:
    table = Table(title="Document knowledge base: ingest and hybrid search")
    for header in ("chunks", "files", "ingest s", "chunks/s", "re-ingest s", "1st query ms", "p50/p95/p99 ms"):
        table.add_column(header, justify="right")
    table.add_column("filtered p50/p95", justify="right")
    table.add_column("hit@5", justify="right")
    for r in results:
        table.add_row(
            str(r.chunks),
            str(r.files),
            f"{r.ingest_s:.1f}",
            f"{r.chunks_per_s:.0f}",
            f"{r.reingest_s:.2f}",
            f"{r.first_query_ms:.0f}",
            f"{r.p50_ms:.1f}/{r.p95_ms:.1f}/{r.p99_ms:.1f}",
            f"{r.filtered_p50_ms:.1f}/{r.filtered_p95_ms:.1f}",
            f"{r.hit_at_5:.2f}",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for each size, print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="corpus sizes, in chunks")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per size")
    parser.add_argument("--out", type=Path, default=Path("evals/results/kb_bench.json"))
    args = parser.parse_args(argv)
    if any(size < 2 for size in args.sizes) or args.queries < 1:
        parser.error("sizes must be at least 2 and queries at least 1")

    console = Console()
    products = _catalog()
    results = [run(size, products, queries=args.queries, console=console) for size in args.sizes]
    console.print(_table(results))
    payload = {
        "benchmark": "kb_bench",
        "command": "python -m evals.kb_bench --sizes " + " ".join(map(str, args.sizes)),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "results": [asdict(result) for result in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
