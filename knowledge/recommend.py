"""Advice from the product graph: the entities a need names, the paths to products, their scores.

``GraphAdvisor`` reads the entities, relations and vectors out of a ``PropertyGraphIndex`` once and
answers from memory; ``knowledge.graph.ProductGraph``, the class to use, adds building, loading and
persisting the index, the plain lookups (aliases, accessories, alternatives, stats) and ``compare``.

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

import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from llama_index.core.graph_stores.types import VECTOR_SOURCE_KEY, EntityNode
from llama_index.core.indices.property_graph.base import PropertyGraphIndex
from llama_index.core.vector_stores.simple import SimpleVectorStore

from core.errors import ConfigError, InvalidInputError, NotFoundError
from core.types import Lang, Recommendation, Sku
from knowledge.embedding import UseEmbedding
from knowledge.triples import LABELS, RELATIONS, _unique

__all__ = ["EntityRef", "GraphAdvisor", "GraphPath"]

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

_TERM_KEY: Final = "kefu_term"
"""Vector-store metadata marking a vector of one name or alias (the index's own are per entity)."""
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CLAUSE = re.compile(r"[，,。.！!？?；;、\n]+|\s+(?:and|but|also)\s+", re.IGNORECASE)


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
class _Term:
    text: str
    entity: str
    score: float
    pattern: re.Pattern[str] | None
    """Word-boundary pattern for Latin terms; CJK terms match as substrings."""


class GraphAdvisor:
    """The product graph in memory: entity search, paths and advice (the read side of ``ProductGraph``).

    Use ``knowledge.graph.ProductGraph``, which builds, loads and persists the index this reads.
    """

    def __init__(self, index: PropertyGraphIndex) -> None:
        """Read the entities, relations and vectors of a built or loaded ``index``."""
        self._index = index
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
