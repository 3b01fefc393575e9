"""``KnowledgeBase``: the document store and the product graph behind the one port tools use.

Opening it ingests the configured document folders (unchanged files are skipped, so this is cheap
after the first start) and loads the product graph, rebuilding it only when the catalog or the
triples file changed. Everything lives under one directory (``<data_dir>/kb`` by default):

```
kb/chroma/   Chroma PersistentClient: document chunks, their embeddings and metadata
kb/graph/    the persisted LlamaIndex property graph and its entity vectors, with a fingerprint
```

With a Chroma server (``chroma_url``) the chunks live there instead, shared by every API replica;
the product graph stays in the directory, which each replica builds from the catalog for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core.ports import SupportStore
from core.types import (
    Comparison,
    CustomerId,
    CustomerInsight,
    Lang,
    NextBestAction,
    Passage,
    Product,
    Recommendation,
    Sku,
)
from knowledge.documents import DocumentStore, IngestReport
from knowledge.embedding import configure_llama_index
from knowledge.graph import RELATIONS, ProductGraph
from knowledge.nba import next_best_action

__all__ = ["DEMO_DOCS", "DEMO_TRIPLES", "KnowledgeBase"]

log = logging.getLogger(__name__)

DEMO_DOCS = Path(__file__).parent / "docs"
"""The demo shop's policies, FAQ and product guides (zh and en), shipped with Kefu."""

DEMO_TRIPLES = Path(__file__).parent / "data" / "graph_triples.yaml"
"""Features, scenarios, aliases and product relations the catalog does not hold."""


class KnowledgeBase:
    """Company documents (hybrid search) and the product graph (recommend, compare)."""

    def __init__(self, documents: DocumentStore, graph: ProductGraph) -> None:
        """Serve ``documents`` and ``graph``; see ``open`` for the usual way in."""
        self.documents = documents
        self.graph = graph

    @classmethod
    def open(
        cls,
        directory: Path,
        products: Sequence[Product],
        *,
        doc_paths: Sequence[Path] = (DEMO_DOCS,),
        triples: Path = DEMO_TRIPLES,
        chroma_url: str | None = None,
    ) -> KnowledgeBase:
        """Open (or create) the knowledge base in ``directory``, ingest ``doc_paths`` and load the graph.

        A document that fails to load is logged by name and skipped; the rest are served. With
        ``chroma_url`` the document chunks are on that Chroma server; several replicas may open and
        ingest at once (each chunk is stored once).

        Raises:
            ConfigError: a malformed ``chroma_url``.
            BackendError: the Chroma server does not answer.
        """
        configure_llama_index()
        directory.mkdir(parents=True, exist_ok=True)
        documents = DocumentStore.for_kb(directory, chroma_url)
        if doc_paths:
            report = documents.ingest(list(doc_paths))
            _log_report(report)
        documents.search("warm-up", limit=1)  # builds the in-memory keyword index now, not on a customer's turn
        graph = ProductGraph.load_or_build(products, triples, directory / "graph")
        return cls(documents, graph)

    def ping(self) -> int:
        """Ask the vector store how many chunks it holds, for ``/readyz``.

        Raises:
            BackendError: the Chroma server does not answer.
        """
        return self.documents.count()

    def search(
        self,
        query: str,
        *,
        lang: Lang | None = None,
        category: str | None = None,
        product: Sku | None = None,
        limit: int = 5,
    ) -> list[Passage]:
        """Document passages for ``query``, best first (hybrid vector + BM25 score in [0, 1])."""
        return self.documents.search(query, lang=lang, category=category, product=product, limit=limit)

    def recommend(
        self,
        need: str,
        *,
        lang: Lang,
        owned: Sequence[Sku] = (),
        preferred_categories: Sequence[str] = (),
        limit: int = 3,
    ) -> list[Recommendation]:
        """Products for a need from the graph, each with its rationale path and confidence."""
        return self.graph.recommend(
            need, lang=lang, owned=owned, preferred_categories=preferred_categories, limit=limit
        )

    def compare(self, skus: Sequence[Sku], *, lang: Lang) -> Comparison:
        """Two to four products side by side."""
        return self.graph.compare(skus, lang=lang)

    def known_terms(self) -> list[str]:
        """Words the knowledge layer writes that are nobody's personal data: entity names and relation types.

        The PII analyzer's NER would otherwise read "SUITS" or a feature name as a person.
        """
        names = {name for entity in self.graph.entities() for name in (entity.name_en, entity.name_zh) if name}
        return sorted(names | set(RELATIONS))

    def next_best_action(
        self,
        store: SupportStore,
        customer_id: CustomerId,
        *,
        context: str | None = None,
        lang: Lang | None = None,
        now: datetime | None = None,
        insight: CustomerInsight | None = None,
    ) -> NextBestAction:
        """The next best action for a customer (see ``knowledge.nba``); ``insight`` adds the model scores."""
        return next_best_action(
            store,
            self.recommend,
            self.graph.accessories_for,
            customer_id,
            context=context,
            lang=lang,
            now=now,
            insight=insight,
        )


def _log_report(report: IngestReport) -> None:
    if report.added or report.updated or report.pruned:
        log.info(
            "knowledge base: %d added, %d updated, %d unchanged, %d pruned documents (%d chunks in)",
            len(report.added),
            len(report.updated),
            len(report.unchanged),
            len(report.pruned),
            report.chunks_added,
        )
    for path, reason in report.failed:
        log.error("knowledge base: %s was not ingested: %s", path, reason)
