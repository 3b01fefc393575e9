"""Retrieval quality of the document knowledge base on a question set written for the demo documents.

Each question names the documents that answer it and short evidence strings; a retrieved passage
is a hit when it comes from an expected document *and* contains one of the evidence strings, so a
passage from the right document but the wrong section does not count. Reports hit@1, hit@5 and
MRR overall, by kind (direct, paraphrase, cross-language) and by language, the query latency, and
for the ``unanswerable`` questions how the best score compares with the answerable ones at a few
thresholds: the numbers behind ``[knowledge] answer_above`` in ``agent/policy.toml``.

Run:
    python -m evals.kb_eval --questions evals/data/kb_questions.jsonl --out evals/results/kb_eval.json

The documents are ingested into a fresh temporary store (``--docs``, default: the shipped demo set).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.types import Passage
from knowledge import DEMO_DOCS
from knowledge.documents import DocumentStore

__all__ = ["Question", "evaluate", "load_questions", "main"]

_THRESHOLDS = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55)


@dataclass(frozen=True)
class Question:
    """One question and what counts as a right answer."""

    id: str
    question: str
    lang: str
    kind: str
    category: str
    expected_sources: tuple[str, ...]
    evidence: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        """Some document answers it."""
        return bool(self.expected_sources)

    def is_hit(self, passage: Passage) -> bool:
        """The passage comes from an expected document and holds the evidence."""
        if passage.source not in self.expected_sources:
            return False
        return not self.evidence or any(e.lower() in passage.text.lower() for e in self.evidence)


def load_questions(path: Path) -> list[Question]:
    """Read a question JSONL file."""
    questions: list[Question] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            questions.append(
                Question(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    lang=str(row["lang"]),
                    kind=str(row["kind"]),
                    category=str(row.get("category", "")),
                    expected_sources=tuple(row.get("expected_sources", [])),
                    evidence=tuple(row.get("evidence", [])),
                )
            )
        except KeyError as exc:
            raise ValueError(f"{path}:{number}: missing key {exc}") from exc
    return questions


def _rank(question: Question, hits: Sequence[Passage]) -> int | None:
    """1-based rank of the first hit, or None."""
    return next((rank for rank, passage in enumerate(hits, 1) if question.is_hit(passage)), None)


def _summary(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks)
    if n == 0:
        return {"n": 0, "hit@1": 0.0, "hit@5": 0.0, "mrr": 0.0}
    return {
        "n": n,
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr": sum(1 / r for r in ranks if r is not None) / n,
    }


def evaluate(store: DocumentStore, questions: Sequence[Question]) -> dict[str, Any]:
    """Run every question against ``store`` and aggregate the metrics."""
    per_question: list[dict[str, Any]] = []
    latencies: list[float] = []
    for question in questions:
        started = time.perf_counter()
        hits = store.search(question.question, limit=5)
        latencies.append((time.perf_counter() - started) * 1000)
        per_question.append(
            {
                "id": question.id,
                "kind": question.kind,
                "lang": question.lang,
                "answerable": question.answerable,
                "rank": _rank(question, hits) if question.answerable else None,
                "best_score": hits[0].score if hits else 0.0,
                "top": [f"{p.id} ({p.score:.3f})" for p in hits[:3]],
            }
        )
    answerable = [row for row in per_question if row["answerable"]]
    groups: dict[str, list[int | None]] = defaultdict(list)
    for row in answerable:
        groups[f"kind={row['kind']}"].append(row["rank"])
        groups[f"lang={row['lang']}"].append(row["rank"])
    unanswerable = [row["best_score"] for row in per_question if not row["answerable"]]
    answered_scores = [row["best_score"] for row in answerable if row["rank"] == 1]
    thresholds = [
        {
            "threshold": t,
            "answerable_hit1_kept": sum(s >= t for s in answered_scores) / max(len(answered_scores), 1),
            "unanswerable_refused": sum(s < t for s in unanswerable) / max(len(unanswerable), 1),
        }
        for t in _THRESHOLDS
    ]
    ordered = sorted(latencies)
    return {
        "overall": _summary([row["rank"] for row in answerable]),
        "groups": {name: _summary(ranks) for name, ranks in sorted(groups.items())},
        "unanswerable": {
            "n": len(unanswerable),
            "best_score_mean": statistics.fmean(unanswerable) if unanswerable else 0.0,
            "best_score_max": max(unanswerable, default=0.0),
        },
        "thresholds": thresholds,
        "latency_ms": {
            "p50": statistics.median(ordered) if ordered else 0.0,
            "p95": ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0.0,
        },
        "chunks": store.count(),
        "questions": per_question,
    }


def _print(console: Console, report: dict[str, Any]) -> None:
    table = Table("questions", "n", "hit@1", "hit@5", "MRR")
    for name, row in [("all answerable", report["overall"]), *report["groups"].items()]:
        table.add_row(name, str(row["n"]), f"{row['hit@1']:.3f}", f"{row['hit@5']:.3f}", f"{row['mrr']:.3f}")
    console.print(table)
    thresholds = Table("answer_above", "hit@1 answers kept", "unanswerable refused")
    for row in report["thresholds"]:
        thresholds.add_row(
            f"{row['threshold']:.2f}", f"{row['answerable_hit1_kept']:.3f}", f"{row['unanswerable_refused']:.3f}"
        )
    console.print(thresholds)
    unanswerable = report["unanswerable"]
    console.print(
        f"{report['chunks']} chunks · query latency p50 {report['latency_ms']['p50']:.1f} ms, "
        f"p95 {report['latency_ms']['p95']:.1f} ms · unanswerable best score mean "
        f"{unanswerable['best_score_mean']:.3f}, max {unanswerable['best_score_max']:.3f}"
    )
    misses = [row for row in report["questions"] if row["answerable"] and row["rank"] != 1]
    if misses:
        table = Table("missed at rank 1", "kind", "rank", "top hits", title=f"{len(misses)} not at rank 1")
        for row in misses[:25]:
            table.add_row(row["id"], row["kind"], str(row["rank"] or "-"), "; ".join(row["top"]))
        console.print(table)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--questions", type=Path, required=True, help="question JSONL file")
    parser.add_argument("--docs", type=Path, nargs="+", default=[DEMO_DOCS], help="documents to ingest")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    console = Console()
    questions = load_questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="kefu-kb-eval-") as tmp:
        store = DocumentStore(Path(tmp) / "chroma")
        ingest = store.ingest(args.docs)
        for path, reason in ingest.failed:
            console.print(f"[red]not ingested: {path}: {reason}[/red]")
        report = evaluate(store, questions)
    report["ingest_seconds"] = ingest.seconds
    _print(console, report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        console.print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
