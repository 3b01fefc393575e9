"""Recommendation quality of the product graph on scripted customer needs (zh and en).

Each need names the graph entities it is about (``suits``: scenarios or features). A need is a hit
when one of the top three recommendations is a product the graph itself says suits it: one that
reaches a ``suits`` entity within two hops over SUITS / HAS_FEATURE. That set comes from
``ProductGraph.products_for``, not from the recommender, so the eval checks ranking and entity
matching against the graph's own facts. Also reported: how many needs got no recommendation, the
mean confidence of the top recommendation, and the latency of ``recommend`` (p50, p95).

Run:
    python -m evals.recommend_eval --needs evals/data/recommend_needs.yaml --out evals/results/recommend_eval.json

The graph is built in memory from the seeded demo catalog and the shipped triples file
(``--triples`` to try another).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from rich.console import Console
from rich.table import Table

from core.db import make_engine
from core.seed import seed
from core.store import SqlStore
from core.types import Lang
from knowledge.graph import DEFAULT_TRIPLES, ProductGraph

__all__ = ["Need", "evaluate", "load_needs", "main"]

TOP_K: Final = 3
_SUITING: Final = frozenset({"SUITS", "HAS_FEATURE"})


@dataclass(frozen=True)
class Need:
    """One scripted need and the graph entities it is about."""

    need: str
    lang: Lang
    suits: tuple[str, ...]


def load_needs(path: Path) -> list[Need]:
    """Read the needs file (``needs: [{need, lang, suits}]``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data.get("needs") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty 'needs' list")
    needs = []
    for i, entry in enumerate(entries):
        try:
            needs.append(Need(str(entry["need"]), Lang(entry["lang"]), tuple(entry["suits"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: needs[{i}] {entry!r}: {exc}") from exc
    return needs


def demo_graph(triples: Path = DEFAULT_TRIPLES) -> ProductGraph:
    """The graph over the seeded demo catalog, built in memory."""
    engine = make_engine("sqlite://")
    seed(engine)
    products = SqlStore(engine).list_products()
    engine.dispose()
    return ProductGraph.build(products, triples, None)


def evaluate(graph: ProductGraph, needs: Sequence[Need]) -> dict[str, Any]:
    """Run every need through ``recommend`` and score the top three against the graph."""
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    for need in needs:
        for entity_id in need.suits:
            graph.entity(entity_id)  # a typo in the needs file fails loudly
        suiting = set(graph.products_for(need.suits, depth=2, relations=_SUITING))
        started = time.perf_counter()
        recommendations = graph.recommend(need.need, lang=need.lang, limit=TOP_K)
        latencies.append((time.perf_counter() - started) * 1000)
        hit = any(r.sku in suiting for r in recommendations)
        rows.append(
            {
                "need": need.need,
                "lang": need.lang.value,
                "suits": list(need.suits),
                "hit": hit,
                "top": [
                    {
                        "sku": r.sku,
                        "name": r.name_zh if need.lang is Lang.ZH else r.name_en,
                        "confidence": r.confidence,
                        "in_stock": r.in_stock,
                        "suits_need": r.sku in suiting,
                        "rationale": r.rationale,
                    }
                    for r in recommendations
                ],
            }
        )
    answered = [row for row in rows if row["top"]]
    ordered = sorted(latencies)
    by_lang = {
        lang.value: _share([row["hit"] for row in rows if row["lang"] == lang.value]) for lang in (Lang.ZH, Lang.EN)
    }
    return {
        "needs": len(rows),
        "hit_at_3": _share([row["hit"] for row in rows]),
        "hit_at_3_by_lang": by_lang,
        "empty": len(rows) - len(answered),
        "mean_top_confidence": statistics.fmean(row["top"][0]["confidence"] for row in answered) if answered else 0.0,
        "latency_ms": {
            "p50": statistics.median(ordered) if ordered else 0.0,
            "p95": ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0.0,
        },
        "graph": {
            "nodes": graph.stats().nodes,
            "relations": graph.stats().relations,
        },
        "results": rows,
    }


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _print(console: Console, report: dict[str, Any]) -> None:
    table = Table("need", "hit", "top 3 (confidence) and rationale", show_lines=True)
    for row in report["results"]:
        top = "\n".join(
            f"{'✓' if r['suits_need'] else '·'} {r['sku']} ({r['confidence']:.2f}"
            f"{'' if r['in_stock'] else ', out of stock'}): {r['rationale']}"
            for r in row["top"]
        )
        table.add_row(row["need"], "yes" if row["hit"] else "[red]no[/red]", top or "[yellow](none)[/yellow]")
    console.print(table)
    console.print(
        f"{report['needs']} needs · suiting product in top {TOP_K}: {report['hit_at_3']:.3f} "
        f"(zh {report['hit_at_3_by_lang']['zh']:.3f}, en {report['hit_at_3_by_lang']['en']:.3f}) · "
        f"no recommendation: {report['empty']} · mean top confidence {report['mean_top_confidence']:.3f} · "
        f"latency p50 {report['latency_ms']['p50']:.1f} ms, p95 {report['latency_ms']['p95']:.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--needs", type=Path, required=True, help="needs YAML file")
    parser.add_argument("--triples", type=Path, default=DEFAULT_TRIPLES, help="graph triples YAML file")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    console = Console()
    started = time.perf_counter()
    graph = demo_graph(args.triples)
    build_seconds = time.perf_counter() - started
    report = evaluate(graph, load_needs(args.needs))
    report["build_seconds"] = round(build_seconds, 2)
    _print(console, report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        console.print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
