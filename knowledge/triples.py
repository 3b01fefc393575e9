"""The product graph's inputs: its schema, the triples file, and the catalog merged with it.

``LABELS`` and ``RELATIONS`` are the schema (which labels a relation may join). The catalog gives
every product its features (``HAS_FEATURE``), scenarios (``SUITS``), category (``BELONGS_TO``) and
brand (``MADE_BY``); the triples file (``DEFAULT_TRIPLES``: YAML with ``version``, ``entities`` and
``relations``) adds display names, customer words (aliases), features the catalog does not list
and the relations between products, features and scenarios. ``_assemble`` merges the two into
entities and relations, validating labels, ids and relation types; a malformed entry raises
``TriplesFileError`` naming the file, line and entry. ``_source_chunks`` then packs them into the
text nodes that ``knowledge.graph`` inserts into its ``PropertyGraphIndex``.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from llama_index.core.graph_stores.types import KG_NODES_KEY, KG_RELATIONS_KEY, EntityNode, Relation
from llama_index.core.schema import TextNode

from core.errors import ConfigError
from core.types import Product

__all__ = ["DEFAULT_TRIPLES", "LABELS", "RELATIONS", "TriplesFileError"]

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
_TRIPLES_CHUNK: Final = "chunk:triples"
_SLUG = re.compile(r"[^a-z0-9]+")


class TriplesFileError(ConfigError):
    """The triples file is malformed; the message names the file, line and entry."""


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
