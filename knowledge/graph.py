"""The product–feature–scenario knowledge graph: a LlamaIndex ``PropertyGraphIndex`` built from data.

Schema. Every entity is an ``EntityNode`` whose ``name`` is its id and whose properties hold
``name_en``, ``name_zh`` and ``aliases`` (customer words, zh and en)::

    label      id                          comes from
    Product    HOM-001 (the SKU)           the catalog; also ``sku``, ``price``, ``stock``, ``category``
    Feature    feature:<slug of en name>   catalog features, plus the triples file
    Scenario   scenario:<slug of en key>   catalog scenarios (``scenario:home-office``)
    Category   category:<catalog key>      the catalog (``category:smart_home``)
    Brand      brand:<slug>                first word of the product's English name

    Product ─HAS_FEATURE→ Feature        Product ─BELONGS_TO→ Category
    Product ─SUITS→ Scenario             Product ─MADE_BY→ Brand
    Feature ─SUITS→ Scenario             Product ─ALTERNATIVE_TO→ Product   (stored both ways)
                                         Product ─ACCESSORY_OF→ Product     (accessory → main product)

Building uses no LLM. Each product becomes one ``TextNode`` (its names, features and scenarios in
zh and en) whose metadata already carries its entities and relations under ``KG_NODES_KEY`` and
``KG_RELATIONS_KEY``; the triples file becomes one more. The only kg extractor passes nodes through
unchanged, so the index's own insertion stores that graph and embeds every entity (names and
aliases, with ``UseEmbedding``) into its vector store. One more vector per name and alias is added
to the same store, so a short customer word can match an entity that has many. The store and the
vectors are persisted with the storage context, next to a fingerprint of the inputs.

The triples file, its validation and the source text nodes come from ``knowledge.triples``;
finding the entities a need names, walking paths and scoring recommendations (with the scoring
constants) from ``knowledge.recommend``, whose ``GraphAdvisor`` is the read side of ``ProductGraph``.
Their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from llama_index.core import StorageContext, load_index_from_storage
from llama_index.core.graph_stores.simple_labelled import SimplePropertyGraphStore
from llama_index.core.graph_stores.types import VECTOR_SOURCE_KEY
from llama_index.core.indices.property_graph.base import PropertyGraphIndex
from llama_index.core.schema import BaseNode, TextNode, TransformComponent
from llama_index.core.vector_stores.simple import (
    DEFAULT_VECTOR_STORE,
    NAMESPACE_SEP,
    SimpleVectorStore,
    SimpleVectorStoreData,
)
from llama_index.core.vector_stores.types import DEFAULT_PERSIST_FNAME as VECTOR_STORE_FNAME

from core.errors import ConfigError, InvalidInputError, NotFoundError
from core.types import Comparison, ComparisonRow, Lang, Product, Sku
from knowledge.embedding import NoLlm, UseEmbedding, configure_llama_index
from knowledge.recommend import _TERM_KEY, EntityRef, GraphAdvisor, GraphPath
from knowledge.recommend import ALIAS_SCORE as ALIAS_SCORE
from knowledge.recommend import EMBED_MARGIN as EMBED_MARGIN
from knowledge.recommend import HOP_DECAY as HOP_DECAY
from knowledge.recommend import MIN_SIMILARITY as MIN_SIMILARITY
from knowledge.recommend import NAME_SCORE as NAME_SCORE
from knowledge.recommend import PARTIAL_SCORE as PARTIAL_SCORE
from knowledge.recommend import REL_WEIGHT as REL_WEIGHT
from knowledge.recommend import TERM_DISCOUNT as TERM_DISCOUNT
from knowledge.triples import DEFAULT_TRIPLES, LABELS, RELATIONS, TriplesFileError, _assemble, _source_chunks, _unique

__all__ = [
    "DEFAULT_TRIPLES",
    "LABELS",
    "RELATIONS",
    "EntityRef",
    "GraphPath",
    "GraphStats",
    "ProductGraph",
    "TriplesFileError",
    "graph_fingerprint",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
"""Bump when the graph's layout changes, so persisted graphs are rebuilt."""

_STAMP: Final = "kefu_graph.json"


@dataclass(frozen=True)
class GraphStats:
    """What the graph holds.

    Attributes:
        nodes: Entity count by label.
        relations: Relation count by type (ALTERNATIVE_TO counts both directions).
        source_chunks: Text nodes the graph was inserted from (one per product, one for the triples).
        vectors: Vectors in the index's vector store (one per entity, one per name and alias).

    """

    nodes: dict[str, int]
    relations: dict[str, int]
    source_chunks: int
    vectors: int


class _JsonVectorStore(SimpleVectorStore):
    """``SimpleVectorStore`` persisted with plain ``json``, in the same file format.

    The stock store goes through dataclasses_json, which type-checks every float: about 10 s each
    way for this graph's 800,000 numbers, against well under a second here.
    """

    def persist(self, persist_path: str = VECTOR_STORE_FNAME, fs: Any = None) -> None:
        """Write the vectors, ids and metadata as ``SimpleVectorStoreData.to_dict`` would."""
        data = {
            "embedding_dict": self.data.embedding_dict,
            "text_id_to_ref_doc_id": self.data.text_id_to_ref_doc_id,
            "metadata_dict": self.data.metadata_dict,
        }
        path = Path(persist_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")

    @classmethod
    def from_persist_path(cls, persist_path: str, fs: Any = None) -> _JsonVectorStore:
        """Read a store written by ``persist`` (or by ``SimpleVectorStore.persist``)."""
        raw = json.loads(Path(persist_path).read_text("utf-8"))
        return cls(
            data=SimpleVectorStoreData(
                embedding_dict=raw["embedding_dict"],
                text_id_to_ref_doc_id=raw.get("text_id_to_ref_doc_id", {}),
                metadata_dict=raw.get("metadata_dict", {}),
            )
        )


class _KeepKgMetadata(TransformComponent):
    """The graph's only extractor: the nodes already carry their entities and relations."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Return ``nodes`` unchanged."""
        return nodes


def graph_fingerprint(products: Sequence[Product], triples: Path) -> str:
    """SHA-256 of the catalog, the triples file, the format version and the embedding model."""
    digest = hashlib.sha256(f"kefu-graph/{FORMAT_VERSION}/{UseEmbedding().model_name}\n".encode())
    rows = sorted((p.model_dump(mode="json") for p in products), key=lambda row: str(row["sku"]))
    digest.update(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(triples.read_bytes())
    return digest.hexdigest()


class ProductGraph(GraphAdvisor):
    """The product knowledge graph over a ``PropertyGraphIndex``: entity search, paths, advice.

    Build it with ``build`` or ``load_or_build``; it is read-only afterwards and safe to share.
    """

    def __init__(self, index: PropertyGraphIndex, fingerprint: str | None = None) -> None:
        """Wrap a built or loaded index (use ``build``, ``load`` or ``load_or_build``)."""
        super().__init__(index)
        self.fingerprint = fingerprint
        """The inputs' fingerprint, when known."""
        self._chunks = sum(1 for node in index.property_graph_store.get() if node.label == "text_chunk")

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def build(
        cls, products: Sequence[Product], triples: Path = DEFAULT_TRIPLES, persist_dir: Path | None = None
    ) -> ProductGraph:
        """Build the graph from the catalog and a triples file, and persist it if asked.

        Args:
            products: The catalog (``SqlStore.list_products()``).
            triples: The triples YAML file.
            persist_dir: Where to persist the index and its fingerprint; None keeps it in memory.

        Raises:
            TriplesFileError: The triples file is malformed (the message names the entry).
            ConfigError: The catalog is inconsistent.

        """
        configure_llama_index()
        fingerprint = graph_fingerprint(products, triples)
        drafts, relations = _assemble(products, triples)
        embed = UseEmbedding(embed_batch_size=64)
        storage = StorageContext.from_defaults(
            property_graph_store=SimplePropertyGraphStore(), vector_store=_JsonVectorStore()
        )
        index = PropertyGraphIndex(
            nodes=_source_chunks(drafts, relations),
            llm=NoLlm(),
            kg_extractors=[_KeepKgMetadata()],
            transformations=[_KeepKgMetadata()],
            embed_model=embed,
            embed_kg_nodes=True,
            storage_context=storage,
            use_async=False,
            show_progress=False,
        )
        # one more vector per name and alias, next to the index's one per entity
        terms = [
            (draft.id, n, term)
            for draft in drafts.values()
            for n, term in enumerate(_unique([draft.name_en, draft.name_zh, *draft.aliases]))
        ]
        vectors = embed.get_text_embedding_batch([term for *_, term in terms], show_progress=False)
        vector_store = index.vector_store
        if vector_store is None:
            raise ConfigError("the property graph index has no vector store")
        vector_store.add(
            [
                TextNode(
                    id_=f"{entity_id}#{n}",
                    text=term,
                    embedding=vector,
                    metadata={VECTOR_SOURCE_KEY: entity_id, _TERM_KEY: True},
                )
                for (entity_id, n, term), vector in zip(terms, vectors, strict=True)
            ]
        )
        if persist_dir is not None:
            persist_dir.mkdir(parents=True, exist_ok=True)
            stamp = persist_dir / _STAMP
            stamp.unlink(missing_ok=True)  # a half-written directory must never look current
            index.storage_context.persist(persist_dir=persist_dir)
            tmp = stamp.with_suffix(".tmp")
            tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, "fingerprint": fingerprint}), "utf-8")
            os.replace(tmp, stamp)
        return cls(index, fingerprint)

    @classmethod
    def load(cls, persist_dir: Path) -> ProductGraph:
        """Load a persisted graph (no fingerprint check; see ``load_or_build``).

        Raises:
            NotFoundError: ``persist_dir`` holds no persisted graph.

        """
        configure_llama_index()
        if not (persist_dir / _STAMP).is_file():
            raise NotFoundError(f"no persisted product graph in {persist_dir}")
        vector_store = _JsonVectorStore.from_persist_path(
            str(persist_dir / f"{DEFAULT_VECTOR_STORE}{NAMESPACE_SEP}{VECTOR_STORE_FNAME}")
        )
        storage = StorageContext.from_defaults(persist_dir=str(persist_dir), vector_store=vector_store)
        index = load_index_from_storage(
            storage,
            llm=NoLlm(),
            kg_extractors=[_KeepKgMetadata()],
            transformations=[_KeepKgMetadata()],
            embed_model=UseEmbedding(),
            use_async=False,
            show_progress=False,
        )
        if not isinstance(index, PropertyGraphIndex):
            raise ConfigError(f"{persist_dir} holds a {type(index).__name__}, not a property graph")
        return cls(index, _read_stamp(persist_dir))

    @classmethod
    def load_or_build(
        cls, products: Sequence[Product], triples: Path = DEFAULT_TRIPLES, persist_dir: Path | None = None
    ) -> ProductGraph:
        """Reuse the graph persisted in ``persist_dir`` if its inputs are unchanged, else rebuild it.

        Args:
            products: The catalog.
            triples: The triples YAML file.
            persist_dir: Where the graph is (or will be) persisted; None always builds in memory.

        """
        if persist_dir is None:
            return cls.build(products, triples, None)
        fingerprint = graph_fingerprint(products, triples)
        if _read_stamp(persist_dir) == fingerprint:
            try:
                return cls.load(persist_dir)
            except (OSError, ValueError, KeyError) as exc:  # a damaged directory is rebuilt, not fatal
                logger.warning("persisted product graph in %s is unreadable (%s); rebuilding", persist_dir, exc)
        return cls.build(products, triples, persist_dir)

    @property
    def index(self) -> PropertyGraphIndex:
        """The underlying LlamaIndex property graph index."""
        return self._index

    # ----------------------------------------------------------------------------------- lookups

    def aliases(self, entity_id: str) -> list[str]:
        """The customer words stored for an entity."""
        self.entity(entity_id)
        return list(self._aliases[entity_id])

    def accessories_for(self, sku: str) -> list[Sku]:
        """The products that are ``ACCESSORY_OF`` ``sku``, sorted (empty for an unknown SKU)."""
        return sorted(Sku(source) for relation, source in self._incoming.get(sku, []) if relation == "ACCESSORY_OF")

    def alternatives_for(self, sku: str) -> list[Sku]:
        """The products ``ALTERNATIVE_TO`` ``sku``, sorted (empty for an unknown SKU)."""
        return sorted(
            Sku(target) for relation, target, _ in self._outgoing.get(sku, []) if relation == "ALTERNATIVE_TO"
        )

    def entities(self, label: str | None = None) -> list[EntityRef]:
        """All entities (of one label), ordered by id."""
        return sorted((e for e in self._entities.values() if label is None or e.label == label), key=lambda e: e.id)

    def stats(self) -> GraphStats:
        """Entity counts by label and relation counts by type."""
        nodes = dict.fromkeys(LABELS, 0)
        for entity in self._entities.values():
            nodes[entity.label] += 1
        relations = dict.fromkeys(RELATIONS, 0)
        for edges in self._outgoing.values():
            for relation, _target, _rank in edges:
                relations[relation] += 1
        return GraphStats(nodes, relations, self._chunks, len(self._vector_ids))

    # -------------------------------------------------------------------------------- comparison

    def compare(self, skus: Sequence[str], *, lang: Lang) -> Comparison:
        """Two to four products side by side: catalog facts and what the graph knows.

        Args:
            skus: The products, in the order to show them.
            lang: Language of names and values.

        Raises:
            InvalidInputError: Fewer than 2, more than 4, or repeated SKUs.
            NotFoundError: A SKU is not in the graph.

        """
        if not 2 <= len(skus) <= 4 or len(set(skus)) != len(skus):
            raise InvalidInputError(f"compare needs 2 to 4 different products, got {list(skus)}")
        for sku in skus:
            if sku not in self._entities or self._entities[sku].label != "Product":
                raise NotFoundError(f"no product {sku!r} in the catalog")
        zh = lang is Lang.ZH
        sep = "、" if zh else ", "

        def targets(sku: str, relation: str) -> list[str]:
            return [t for r, t, _ in self._outgoing.get(sku, []) if r == relation]

        def names(ids: Iterable[str]) -> str:
            return sep.join(self._entities[i].name(lang) for i in ids) or "—"

        def stock(sku: str) -> str:
            count = int(self._properties[sku].get("stock", 0))
            if count > 0:
                return f"有货（{count}）" if zh else f"yes ({count})"
            return "缺货" if zh else "out of stock"

        labels = (
            ("价格", "库存", "类别", "品牌", "功能", "适用场景", "可替代", "配件")
            if zh
            else ("price", "in stock", "category", "brand", "features", "scenarios", "alternatives", "accessories")
        )
        values: list[list[str]] = [
            [f"¥{float(self._properties[s]['price']):,.0f}" for s in skus],
            [stock(s) for s in skus],
            [names(targets(s, "BELONGS_TO")) for s in skus],
            [names(targets(s, "MADE_BY")) for s in skus],
            [names(targets(s, "HAS_FEATURE")) for s in skus],
            [names(targets(s, "SUITS")) for s in skus],
            [names(targets(s, "ALTERNATIVE_TO")) for s in skus],
            [names(sorted(src for r, src in self._incoming.get(s, []) if r == "ACCESSORY_OF")) for s in skus],
        ]
        feature_sets = [targets(s, "HAS_FEATURE") for s in skus]
        shared = [f for f in feature_sets[0] if all(f in other for other in feature_sets[1:])]
        return Comparison(
            skus=[Sku(s) for s in skus],
            names=[self._entities[s].name(lang) for s in skus],
            rows=[ComparisonRow(attribute=a, values=v) for a, v in zip(labels, values, strict=True)],
            shared_features=[self._entities[f].name(lang) for f in shared],
        )


def _read_stamp(persist_dir: Path) -> str | None:
    try:
        data = json.loads((persist_dir / _STAMP).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return None
    fingerprint = data.get("fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None
