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

Retrieval finds need entities in a customer's text by name (a full name or SKU scores 1.0, an
alias 0.9, the text being part of a name 0.8) and by USE cosine similarity: the whole text and each
clause against every stored vector, a single name or alias counting ``TERM_DISCOUNT`` less (short
texts match noisily), kept from ``MIN_SIMILARITY`` and within ``EMBED_MARGIN`` of the best. It then
walks relations backwards from those entities for up to two hops to reach products, so each path
reads from the need to the product: ``养宠家庭 ← SUITS ← 毛发防缠绕 ← HAS_FEATURE ← Nestia X1 扫拖一体机器人``.

Recommendation scoring, for a candidate product:

- a path's weight is ``match score × Π REL_WEIGHT[relation] × HOP_DECAY ** (hops − 1)``
  (``REL_WEIGHT``: SUITS and HAS_FEATURE 1.0, ALTERNATIVE_TO 0.6, ACCESSORY_OF 0.5,
  BELONGS_TO 0.5, MADE_BY 0.4; ``HOP_DECAY`` 0.8; a product named in the need is a 0-hop path);
- the support from one need entity is its best path weight plus 0.1 × the weights of its other
  paths (those not through another product); the relevance is the best support plus 0.3 × the
  supports of the other need entities, plus 0.05 for a preferred category and 0.1 for an accessory
  of a product the customer owns;
- ``confidence = 1 − exp(−2 × relevance)``, rounded to 3 places: about 0.83 for a product that
  directly suits a need named by an alias, 0.76 for one two hops away, 0.6 when the only evidence
  is a direct path from a 0.45 embedding match, under 0.5 for weaker ones;
- products below half the best relevance are dropped; in-stock products come before out-of-stock
  ones, then higher relevance, then SKU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import yaml
from llama_index.core import StorageContext, load_index_from_storage
from llama_index.core.graph_stores.simple_labelled import SimplePropertyGraphStore
from llama_index.core.graph_stores.types import (
    KG_NODES_KEY,
    KG_RELATIONS_KEY,
    VECTOR_SOURCE_KEY,
    EntityNode,
    Relation,
)
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
from core.types import Comparison, ComparisonRow, Lang, Product, Recommendation, Sku
from knowledge.embedding import NoLlm, UseEmbedding, configure_llama_index

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

DEFAULT_TRIPLES: Final = Path(__file__).parent / "data" / "graph_triples.yaml"
"""The triples file shipped for the demo catalog."""

LABELS: Final = ("Product", "Feature", "Scenario", "Category", "Brand")
RELATIONS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    # relation: (source labels, target labels)
    "HAS_FEATURE": (frozenset({"Product"}), frozenset({"Feature"})),
    "SUITS": (frozenset({"Product", "Feature"}), frozenset({"Scenario"})),
    "BELONGS_TO": (frozenset({"Product"}), frozenset({"Category"})),
    "MADE_BY": (frozenset({"Product"}), frozenset({"Brand"})),
    "ALTERNATIVE_TO": (frozenset({"Product"}), frozenset({"Product"})),
    "ACCESSORY_OF": (frozenset({"Product"}), frozenset({"Product"})),
}
_PREFIXES: Final = {"Feature": "feature:", "Scenario": "scenario:", "Category": "category:", "Brand": "brand:"}

NAME_SCORE: Final = 1.0
ALIAS_SCORE: Final = 0.9
PARTIAL_SCORE: Final = 0.8
MIN_SIMILARITY: Final = 0.42
"""USE cosine below which an embedding match is ignored (unrelated texts score about 0.1 to 0.35)."""
TERM_DISCOUNT: Final = 0.15
"""Subtracted from the similarity to a single name or alias vector: short texts match noisily under
USE ("你好" scores 0.56 against the alias "续航好"); the entity's own vector (all its words) is not."""
EMBED_MARGIN: Final = 0.12
"""Embedding matches further than this below the best one are noise next to it."""
REL_WEIGHT: Final[Mapping[str, float]] = {
    "SUITS": 1.0,
    "HAS_FEATURE": 1.0,
    "ALTERNATIVE_TO": 0.6,
    "ACCESSORY_OF": 0.5,
    "BELONGS_TO": 0.5,
    "MADE_BY": 0.4,
}
HOP_DECAY: Final = 0.8
_SAME_ENTITY_BONUS: Final = 0.1
_OTHER_ENTITY_BONUS: Final = 0.3
_CATEGORY_BOOST: Final = 0.05
_ACCESSORY_BOOST: Final = 0.1
_RELATIVE_FLOOR: Final = 0.5
_NEED_ENTITIES: Final = 8
_EXPLAIN_PREFERENCE: Final = 1.5
"""When choosing the rationale (not when scoring), a path through a feature counts this much more:
``scenario ← SUITS ← feature ← HAS_FEATURE ← product`` says why, a direct SUITS only that."""

_STAMP: Final = "kefu_graph.json"
_TERM_KEY: Final = "kefu_term"
"""Vector-store metadata marking a vector of one name or alias (the index's own are per entity)."""
_TRIPLES_CHUNK: Final = "chunk:triples"
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CLAUSE = re.compile(r"[，,。.！!？?；;、\n]+|\s+(?:and|but|also)\s+", re.IGNORECASE)
_SLUG = re.compile(r"[^a-z0-9]+")


class TriplesFileError(ConfigError):
    """The triples file is malformed; the message names the file, line and entry."""


@dataclass(frozen=True)
class EntityRef:
    """A graph entity as callers see it.

    Attributes:
        id: Entity id (``HOM-001``, ``feature:laser-navigation``, ``scenario:pets``...).
        label: ``Product``, ``Feature``, ``Scenario``, ``Category`` or ``Brand``.
        name_en: English display name.
        name_zh: Chinese display name.

    """

    id: str
    label: str
    name_en: str
    name_zh: str

    def name(self, lang: Lang) -> str:
        """The display name in ``lang``."""
        return self.name_zh if lang is Lang.ZH else self.name_en


@dataclass(frozen=True)
class GraphPath:
    """A walk from a need entity to a product, against the direction of the relations.

    Attributes:
        nodes: Entity ids, need first, product last.
        relations: ``relations[i]`` points from ``nodes[i + 1]`` to ``nodes[i]``.

    """

    nodes: tuple[str, ...]
    relations: tuple[str, ...]

    @property
    def start(self) -> str:
        """The need end."""
        return self.nodes[0]

    @property
    def end(self) -> str:
        """The product end."""
        return self.nodes[-1]

    @property
    def hops(self) -> int:
        """Number of relations walked."""
        return len(self.relations)


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


# ------------------------------------------------------------------------------------ build inputs


@dataclass
class _Draft:
    id: str
    label: str
    name_en: str
    name_zh: str
    aliases: list[str] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
    """A triples-file entry and where it was written."""

    where: str
    entry: Any


class _NamedEntity(EntityNode):
    """An entity whose text (what the index embeds) is its names and aliases, not its properties."""

    def __str__(self) -> str:
        props = self.properties
        return " / ".join(_unique([props.get("name_en", ""), props.get("name_zh", ""), *props.get("aliases", [])]))


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


def _slug(text: str) -> str:
    slug = _SLUG.sub("-", text.lower()).strip("-")
    return slug or hashlib.sha1(text.encode()).hexdigest()[:8]


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.strip().casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(item.strip())
    return out


def graph_fingerprint(products: Sequence[Product], triples: Path) -> str:
    """SHA-256 of the catalog, the triples file, the format version and the embedding model."""
    digest = hashlib.sha256(f"kefu-graph/{FORMAT_VERSION}/{UseEmbedding().model_name}\n".encode())
    rows = sorted((p.model_dump(mode="json") for p in products), key=lambda row: str(row["sku"]))
    digest.update(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode())
    digest.update(b"\n")
    digest.update(triples.read_bytes())
    return digest.hexdigest()


def _read_triples(path: Path) -> tuple[list[_Spec], list[_Spec]]:
    """Parse the triples file into entity and relation entries, each with its line number."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise TriplesFileError(f"{path}: cannot read the triples file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TriplesFileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TriplesFileError(f"{path}: expected a mapping with 'entities' and 'relations'")
    unknown = set(data) - {"version", "entities", "relations"}
    if unknown:
        raise TriplesFileError(f"{path}: unknown top-level keys {sorted(unknown)}; expected entities, relations")
    if data.get("version", 1) != 1:
        raise TriplesFileError(f"{path}: version {data['version']!r} is not supported (expected 1)")
    lines: dict[str, list[int]] = {}
    for key_node, value_node in root.value:
        if isinstance(value_node, yaml.SequenceNode):
            lines[key_node.value] = [item.start_mark.line + 1 for item in value_node.value]
    sections: list[list[_Spec]] = []
    for section in ("entities", "relations"):
        entries = data.get(section) or []
        if not isinstance(entries, list):
            raise TriplesFileError(f"{path}: '{section}' must be a list")
        section_lines = lines.get(section, [])
        sections.append(
            [
                _Spec(f"{path.name}:{section_lines[i] if i < len(section_lines) else '?'} {section}[{i}]", entry)
                for i, entry in enumerate(entries)
            ]
        )
    return sections[0], sections[1]


def _catalog_entity(drafts: dict[str, _Draft], entity_id: str, label: str, en: str, zh: str) -> None:
    existing = drafts.get(entity_id)
    if existing is None:
        drafts[entity_id] = _Draft(entity_id, label, en, zh)
    else:
        existing.aliases.extend([en, zh])


def _assemble(
    products: Sequence[Product], triples: Path
) -> tuple[dict[str, _Draft], dict[tuple[str, str, str], dict[str, Any]]]:
    """Merge catalog and triples file into entities and relations (validated)."""
    drafts: dict[str, _Draft] = {}
    relations: dict[tuple[str, str, str], dict[str, Any]] = {}
    for product in sorted(products, key=lambda p: p.sku):
        if product.sku in drafts:
            raise ConfigError(f"product {product.sku} appears twice in the catalog")
        if len(product.features_en) != len(product.features_zh) or len(product.scenarios_en) != len(
            product.scenarios_zh
        ):
            raise ConfigError(f"product {product.sku}: en and zh feature/scenario lists differ in length")
        drafts[product.sku] = _Draft(
            product.sku,
            "Product",
            product.name_en,
            product.name_zh,
            properties={
                "sku": product.sku,
                "price": product.price,
                "stock": product.stock,
                "category": product.category,
            },
        )
        for rank, (en, zh) in enumerate(zip(product.features_en, product.features_zh, strict=True)):
            feature = "feature:" + _slug(en)
            _catalog_entity(drafts, feature, "Feature", en, zh)
            relations[(product.sku, "HAS_FEATURE", feature)] = {"rank": rank, "source": "catalog"}
        for rank, (en, zh) in enumerate(zip(product.scenarios_en, product.scenarios_zh, strict=True)):
            scenario = "scenario:" + _slug(en)
            _catalog_entity(drafts, scenario, "Scenario", en, zh)
            relations[(product.sku, "SUITS", scenario)] = {"rank": rank, "source": "catalog"}
        category = f"category:{product.category}"
        _catalog_entity(drafts, category, "Category", product.category.replace("_", " "), product.category)
        relations[(product.sku, "BELONGS_TO", category)] = {"rank": 0, "source": "catalog"}
        brand_name = product.name_en.split()[0] if product.name_en.split() else product.sku
        brand = "brand:" + _slug(brand_name)
        _catalog_entity(drafts, brand, "Brand", brand_name, brand_name)
        relations[(product.sku, "MADE_BY", brand)] = {"rank": 0, "source": "catalog"}

    entity_specs, relation_specs = _read_triples(triples)
    declared: set[str] = set()
    for spec in entity_specs:
        _apply_entity(drafts, declared, spec)
    for rank, spec in enumerate(relation_specs, start=100):
        for key in _relation_keys(drafts, spec):
            relations.setdefault(key, {"rank": rank, "source": "triples"})
    for draft in drafts.values():
        draft.aliases = [
            alias
            for alias in _unique(draft.aliases)
            if alias.casefold() not in {draft.name_en.casefold(), draft.name_zh.casefold()}
        ]
    return drafts, relations


def _apply_entity(drafts: dict[str, _Draft], declared: set[str], spec: _Spec) -> None:
    entry = spec.entry
    if not isinstance(entry, dict):
        raise TriplesFileError(f"{spec.where}: an entity must be a mapping with id, label, en, zh, aliases")
    unknown = set(entry) - {"id", "label", "en", "zh", "aliases"}
    if unknown:
        raise TriplesFileError(f"{spec.where}: unknown keys {sorted(unknown)}; allowed: id, label, en, zh, aliases")
    entity_id, label = entry.get("id"), entry.get("label")
    en, zh, aliases = entry.get("en"), entry.get("zh"), entry.get("aliases", [])
    if not isinstance(entity_id, str) or not entity_id:
        raise TriplesFileError(f"{spec.where}: 'id' must be a non-empty string")
    if label not in LABELS:
        raise TriplesFileError(f"{spec.where}: {entity_id}: label {label!r} is not one of {', '.join(LABELS)}")
    if entity_id in declared:
        raise TriplesFileError(f"{spec.where}: {entity_id} is listed twice")
    if not all(isinstance(v, str) and v.strip() for v in (en, zh) if v is not None):
        raise TriplesFileError(f"{spec.where}: {entity_id}: 'en' and 'zh' must be non-empty strings")
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise TriplesFileError(f"{spec.where}: {entity_id}: 'aliases' must be a list of strings")
    declared.add(entity_id)
    existing = drafts.get(entity_id)
    if existing is None:
        if label == "Product":
            raise TriplesFileError(f"{spec.where}: product {entity_id} is not in the catalog (products come from it)")
        prefix = _PREFIXES[label]
        if not entity_id.startswith(prefix) or len(entity_id) == len(prefix):
            raise TriplesFileError(f"{spec.where}: {label} ids look like '{prefix}<slug>', not {entity_id!r}")
        if en is None or zh is None:
            raise TriplesFileError(f"{spec.where}: new entity {entity_id} needs both 'en' and 'zh' names")
        drafts[entity_id] = _Draft(entity_id, label, en.strip(), zh.strip(), list(aliases))
        return
    if existing.label != label:
        raise TriplesFileError(f"{spec.where}: {entity_id} is a {existing.label} in the catalog, not a {label}")
    if en is not None and en.strip() != existing.name_en:
        existing.aliases.append(existing.name_en)
        existing.name_en = en.strip()
    if zh is not None and zh.strip() != existing.name_zh:
        existing.aliases.append(existing.name_zh)
        existing.name_zh = zh.strip()
    existing.aliases.extend(aliases)


def _relation_keys(drafts: Mapping[str, _Draft], spec: _Spec) -> list[tuple[str, str, str]]:
    entry = spec.entry
    if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, str) for v in entry)):
        raise TriplesFileError(f"{spec.where}: a relation is [source id, RELATION, target id], got {entry!r}")
    source, relation, target = entry
    if relation not in RELATIONS:
        raise TriplesFileError(
            f"{spec.where}: unknown relation type {relation!r}; expected one of {', '.join(RELATIONS)}"
        )
    for end in (source, target):
        if end not in drafts:
            raise TriplesFileError(f"{spec.where}: unknown entity id {end!r} in {entry!r}")
    if source == target:
        raise TriplesFileError(f"{spec.where}: {source} cannot be {relation} itself")
    sources, targets = RELATIONS[relation]
    if drafts[source].label not in sources or drafts[target].label not in targets:
        raise TriplesFileError(
            f"{spec.where}: {relation} goes from {'/'.join(sorted(sources))} to {'/'.join(sorted(targets))}, "
            f"not from {drafts[source].label} {source} to {drafts[target].label} {target}"
        )
    keys = [(source, relation, target)]
    if relation == "ALTERNATIVE_TO":
        keys.append((target, relation, source))
    return keys


def _source_chunks(
    drafts: Mapping[str, _Draft], relations: Mapping[tuple[str, str, str], dict[str, Any]]
) -> list[TextNode]:
    """One text node per product (plus one for the triples file) carrying its entities and relations."""
    owner: dict[str, str] = {d.id: f"chunk:{d.id}" for d in drafts.values() if d.label == "Product"}
    chunk_relations: dict[str, list[Relation]] = defaultdict(list)
    for (source, relation, target), properties in relations.items():
        chunk = owner[source] if properties["source"] == "catalog" else _TRIPLES_CHUNK
        owner.setdefault(target, chunk)
        chunk_relations[chunk].append(
            Relation(label=relation, source_id=source, target_id=target, properties=dict(properties))
        )
    chunk_entities: dict[str, list[EntityNode]] = defaultdict(list)
    for draft in drafts.values():
        chunk_entities[owner.get(draft.id, _TRIPLES_CHUNK)].append(
            _NamedEntity(
                name=draft.id,
                label=draft.label,
                properties={
                    "name_en": draft.name_en,
                    "name_zh": draft.name_zh,
                    "aliases": list(draft.aliases),
                    **draft.properties,
                },
            )
        )
    chunks: list[TextNode] = []
    for chunk_id in sorted(set(chunk_entities) | set(chunk_relations)):
        entities = chunk_entities.get(chunk_id, [])
        rels = chunk_relations.get(chunk_id, [])
        if chunk_id == _TRIPLES_CHUNK:
            text = "\n".join(
                f"{drafts[r.source_id].name_en} {r.label} {drafts[r.target_id].name_en}"
                f" / {drafts[r.source_id].name_zh} {r.label} {drafts[r.target_id].name_zh}"
                for r in rels
            )
        else:
            text = _product_text(drafts, chunk_id.removeprefix("chunk:"), rels)
        chunks.append(
            TextNode(id_=chunk_id, text=text or chunk_id, metadata={KG_NODES_KEY: entities, KG_RELATIONS_KEY: rels})
        )
    return chunks


def _product_text(drafts: Mapping[str, _Draft], sku: str, rels: Sequence[Relation]) -> str:
    product = drafts[sku]

    def names(relation: str, attr: str) -> list[str]:
        return [str(getattr(drafts[r.target_id], attr)) for r in rels if r.label == relation]

    return "\n".join(
        [
            f"{product.name_zh} / {product.name_en}",
            "功能：" + "、".join(names("HAS_FEATURE", "name_zh")),
            "Features: " + ", ".join(names("HAS_FEATURE", "name_en")),
            "适用：" + "、".join(names("SUITS", "name_zh")),
            "Suits: " + ", ".join(names("SUITS", "name_en")),
        ]
    )


# ------------------------------------------------------------------------------------------ graph


@dataclass(frozen=True)
class _Term:
    text: str
    entity: str
    score: float
    pattern: re.Pattern[str] | None
    """Word-boundary pattern for Latin terms; CJK terms match as substrings."""


class ProductGraph:
    """The product knowledge graph over a ``PropertyGraphIndex``: entity search, paths, advice.

    Build it with ``build`` or ``load_or_build``; it is read-only afterwards and safe to share.
    """

    def __init__(self, index: PropertyGraphIndex, fingerprint: str | None = None) -> None:
        """Wrap a built or loaded index (use ``build``, ``load`` or ``load_or_build``)."""
        self._index = index
        self.fingerprint = fingerprint
        """The inputs' fingerprint, when known."""
        self._embed = UseEmbedding()
        store = index.property_graph_store
        self._entities: dict[str, EntityRef] = {}
        self._aliases: dict[str, list[str]] = {}
        self._properties: dict[str, dict[str, Any]] = {}
        for node in store.get():
            if isinstance(node, EntityNode) and node.label in LABELS:
                props = node.properties
                self._entities[node.id] = EntityRef(node.id, node.label, props["name_en"], props["name_zh"])
                self._aliases[node.id] = list(props.get("aliases", []))
                self._properties[node.id] = dict(props)
        self._chunks = sum(1 for node in store.get() if node.label == "text_chunk")
        self._incoming: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._outgoing: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for source, relation, target in store.get_triplets(relation_names=list(RELATIONS)):
            self._incoming[target.id].append((relation.label, source.id))
            self._outgoing[source.id].append((relation.label, target.id, int(relation.properties.get("rank", 0))))
        for incoming in self._incoming.values():
            incoming.sort()
        for outgoing in self._outgoing.values():
            outgoing.sort(key=lambda edge: (edge[0], edge[2], edge[1]))
        self._terms = self._name_terms()
        self._vector_ids, self._vector_owners, self._vector_discounts, self._vectors = self._vector_matrix()

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

    def entity(self, entity_id: str) -> EntityRef:
        """The entity with ``entity_id``.

        Raises:
            NotFoundError: No such entity.

        """
        try:
            return self._entities[entity_id]
        except KeyError:
            raise NotFoundError(f"no entity {entity_id!r} in the product graph") from None

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

    def find_entities(self, text: str, *, limit: int = 5) -> list[tuple[EntityRef, float]]:
        """Entities a text is about, best first.

        Names and aliases found in the text score 1.0 (a full name or SKU), 0.9 (an alias) or 0.8
        (the text is part of a name); embedding matches score their USE cosine similarity, less
        ``TERM_DISCOUNT`` against a single name or alias (from ``MIN_SIMILARITY``, within
        ``EMBED_MARGIN`` of the best). An entity keeps its best score.

        Args:
            text: What the customer wrote.
            limit: How many entities to return at most.

        """
        matches = self._match(text)
        ranked = sorted(matches.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [(self._entities[entity_id], round(score, 4)) for entity_id, score in ranked]

    def paths(
        self, entity_ids: Iterable[str], *, depth: int = 2, relations: Collection[str] | None = None
    ) -> list[GraphPath]:
        """Every simple path of at most ``depth`` hops from the given entities back to a product.

        Relations are walked from target to source (a scenario reaches the features that suit it,
        then the products that have them). A product given as a start is a path of its own.

        Args:
            entity_ids: Where the paths start (the need end).
            depth: Maximum number of hops.
            relations: Only walk these relation types (default: all).

        Raises:
            NotFoundError: A start id names no entity.

        """
        found: list[GraphPath] = []
        for start in dict.fromkeys(entity_ids):
            self.entity(start)
            frontier = [GraphPath((start,), ())]
            if self._entities[start].label == "Product":
                found.append(frontier[0])
            for _ in range(depth):
                frontier = [
                    GraphPath((*path.nodes, source), (*path.relations, relation))
                    for path in frontier
                    for relation, source in self._incoming.get(path.end, [])
                    if (relations is None or relation in relations) and source not in path.nodes
                ]
                found.extend(path for path in frontier if self._entities[path.end].label == "Product")
        return found

    def products_for(
        self, entity_ids: Iterable[str], *, depth: int = 2, relations: Collection[str] | None = None
    ) -> list[Sku]:
        """SKUs reachable from the entities within ``depth`` hops (see ``paths``), sorted."""
        return sorted({Sku(path.end) for path in self.paths(entity_ids, depth=depth, relations=relations)})

    def render(self, path: GraphPath, lang: Lang) -> str:
        """A path as text, need first: ``养宠家庭 ← SUITS ← 毛发防缠绕 ← HAS_FEATURE ← Nestia X1 …``."""
        parts = [self._entities[path.nodes[0]].name(lang)]
        for relation, node in zip(path.relations, path.nodes[1:], strict=True):
            parts += [relation, self._entities[node].name(lang)]
        return " ← ".join(parts)

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

    # ------------------------------------------------------------------------------------ advice

    def recommend(
        self,
        need: str,
        *,
        lang: Lang,
        owned: Sequence[str] = (),
        preferred_categories: Sequence[str] = (),
        limit: int = 3,
    ) -> list[Recommendation]:
        """Products for a customer's need, each with the graph path that explains it.

        Args:
            need: The need in the customer's words (zh or en).
            lang: Language of the rationale.
            owned: SKUs the customer already has: never recommended; their accessories get a boost.
            preferred_categories: Category keys the customer usually buys (a small boost).
            limit: How many products at most.

        Returns:
            Up to ``limit`` recommendations, in-stock first, then by relevance, then SKU; empty when
            nothing in the need matches the graph (ask a clarifying question instead of guessing).

        Raises:
            InvalidInputError: The need is empty or ``limit`` is not positive.

        """
        if not need.strip():
            raise InvalidInputError("describe the need to recommend for")
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        matches = self._match(need)
        starts = sorted(matches.items(), key=lambda item: (-item[1], item[0]))[:_NEED_ENTITIES]
        if not starts:
            return []
        owned_set = set(owned)
        # product → need entity → path weights, best first
        support: dict[str, dict[str, list[tuple[float, GraphPath]]]] = defaultdict(lambda: defaultdict(list))
        for path in self.paths([entity_id for entity_id, _ in starts], depth=2):
            if path.end in owned_set:
                continue
            weight = matches[path.start] * math.prod(REL_WEIGHT[r] for r in path.relations)
            weight *= HOP_DECAY ** max(path.hops - 1, 0)
            support[path.end][path.start].append((weight, path))
        accessory_of = {
            sku: sorted(target for relation, target, _ in self._outgoing.get(sku, []) if relation == "ACCESSORY_OF")
            for sku in support
        }
        scored: list[tuple[float, str, GraphPath, str | None]] = []
        for sku, by_entity in support.items():
            totals = []
            for weights in by_entity.values():
                weights.sort(key=lambda item: (-item[0], item[1].nodes))
                # more ways to the same need strengthen it, unless they go through another product
                # (a hub is no better for home office for being a laptop's accessory)
                extra = sum(w for w, p in weights[1:] if not self._through_product(p))
                totals.append(weights[0][0] + _SAME_ENTITY_BONUS * extra)
            totals.sort(reverse=True)
            relevance = totals[0] + _OTHER_ENTITY_BONUS * sum(totals[1:])
            if self._properties[sku].get("category") in preferred_categories:
                relevance += _CATEGORY_BOOST
            owned_main = next((main for main in accessory_of[sku] if main in owned_set), None)
            if owned_main is not None:
                relevance += _ACCESSORY_BOOST
            scored.append((relevance, sku, self._rationale_path(by_entity), owned_main))
        if not scored:  # everything the need reaches is owned already
            return []
        best = max(relevance for relevance, *_ in scored)
        kept = [item for item in scored if item[0] >= _RELATIVE_FLOOR * best]
        kept.sort(key=lambda item: (not self._in_stock(item[1]), -round(item[0], 9), item[1]))
        return [self._recommendation(*item, lang=lang) for item in kept[:limit]]

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

    # ---------------------------------------------------------------------------------- internals

    def _in_stock(self, sku: str) -> bool:
        return int(self._properties[sku].get("stock", 0)) > 0

    def _rationale_path(self, by_entity: Mapping[str, list[tuple[float, GraphPath]]]) -> GraphPath:
        candidates = [
            (weight * (_EXPLAIN_PREFERENCE if self._explains(path) else 1.0), path)
            for weights in by_entity.values()
            for weight, path in weights
        ]
        return min(candidates, key=lambda item: (-round(item[0], 9), item[1].hops, item[1].nodes))[1]

    def _through_product(self, path: GraphPath) -> bool:
        return any(self._entities[node].label == "Product" for node in path.nodes[1:-1])

    def _explains(self, path: GraphPath) -> bool:
        return any(self._entities[node].label == "Feature" for node in path.nodes[1:-1])

    def _recommendation(
        self, relevance: float, sku: str, path: GraphPath, owned_main: str | None, *, lang: Lang
    ) -> Recommendation:
        product = self._entities[sku]
        rationale = self.render(path, lang)
        if owned_main is not None:
            main = self._entities[owned_main].name(lang)
            rationale += f"（可搭配您已有的 {main}）" if lang is Lang.ZH else f" (an accessory for your {main})"
        return Recommendation(
            sku=Sku(sku),
            name_en=product.name_en,
            name_zh=product.name_zh,
            price=float(self._properties[sku]["price"]),
            in_stock=self._in_stock(sku),
            confidence=round(1.0 - math.exp(-2.0 * relevance), 3),
            rationale=rationale,
            path=list(path.nodes),
        )

    def _name_terms(self) -> list[_Term]:
        terms: list[_Term] = []
        for entity in self._entities.values():
            names = [entity.name_en, entity.name_zh] + ([entity.id] if entity.label == "Product" else [])
            for score, group in ((NAME_SCORE, names), (ALIAS_SCORE, self._aliases[entity.id])):
                for term in _unique(group):
                    folded = term.casefold()
                    pattern = None
                    if not _CJK.search(folded):
                        pattern = re.compile(rf"(?<![0-9a-z]){re.escape(folded)}(?:s|es)?(?![0-9a-z])")
                    terms.append(_Term(folded, entity.id, score, pattern))
        return terms

    def _vector_matrix(self) -> tuple[list[str], list[str], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        # SimpleVectorStore.query rebuilds a numpy array from its dict on every call (about 35 ms
        # for this graph); the vectors are read once instead and compared with one product.
        store = self._index.vector_store
        if not isinstance(store, SimpleVectorStore):
            raise ConfigError(f"the product graph needs a SimpleVectorStore, got {type(store).__name__}")
        ids = sorted(store.data.embedding_dict)
        metadata = [store.data.metadata_dict.get(i, {}) for i in ids]
        owners = [str(meta.get(VECTOR_SOURCE_KEY, i)) for i, meta in zip(ids, metadata, strict=True)]
        known = [n for n, owner in enumerate(owners) if owner in self._entities]
        discounts = np.asarray([TERM_DISCOUNT if metadata[n].get(_TERM_KEY) else 0.0 for n in known], dtype=np.float32)
        matrix = np.asarray([store.data.embedding_dict[ids[n]] for n in known], dtype=np.float32).reshape(-1, 512)
        return [ids[n] for n in known], [owners[n] for n in known], discounts, matrix

    def _match(self, text: str) -> dict[str, float]:
        folded = text.casefold().strip()
        scores: dict[str, float] = {}
        if not folded:
            return scores
        for term in self._terms:
            if term.text in folded and (term.pattern is None or term.pattern.search(folded)):
                scores[term.entity] = max(scores.get(term.entity, 0.0), term.score)
        compact = re.sub(r"\s+", " ", folded)
        if len(compact) >= 3:
            for term in self._terms:
                if compact in term.text and term.text != compact:
                    scores[term.entity] = max(scores.get(term.entity, 0.0), PARTIAL_SCORE)
        for entity_id, similarity in self._similar(text).items():
            scores[entity_id] = max(scores.get(entity_id, 0.0), similarity)
        return scores

    def _similar(self, text: str) -> dict[str, float]:
        if not len(self._vector_ids):
            return {}
        queries = _unique([text, *(c for c in _CLAUSE.split(text) if _long_enough(c))])
        embedded = np.asarray(self._embed.get_text_embedding_batch(queries, show_progress=False), dtype=np.float32)
        similarities = (embedded @ self._vectors.T).max(axis=0) - self._vector_discounts
        best: dict[str, float] = {}
        for owner, similarity in zip(self._vector_owners, similarities.tolist(), strict=True):
            if similarity >= MIN_SIMILARITY and similarity > best.get(owner, -1.0):
                best[owner] = float(similarity)
        if not best:
            return {}
        top = max(best.values())
        return {owner: s for owner, s in best.items() if s >= top - EMBED_MARGIN}


def _long_enough(clause: str) -> bool:
    clause = clause.strip()
    return len(_CJK.findall(clause)) >= 2 or len(clause.split()) >= 2


def _read_stamp(persist_dir: Path) -> str | None:
    try:
        data = json.loads((persist_dir / _STAMP).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        return None
    fingerprint = data.get("fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None
