"""The document knowledge base: company documents chunked into Chroma and searched hybrid.

``DocumentStore.ingest`` loads files (``knowledge.loaders``), cuts them into chunks, embeds each
chunk with its title line (the multilingual USE encoder, so a Chinese passage answers an English
question) and stores them in a Chroma collection: files in a folder (``PersistentClient``), or a
Chroma server (``chroma run``, ``HttpClient``) that several API replicas share. It is idempotent:
each chunk carries its file's ``sha256``, so an unchanged file is skipped without embedding
anything, a changed one has its chunks replaced, and ``prune`` removes what was deleted from the
folders given. Chunk ids are derived from the source id and the chunk's place in it, and Chroma
ignores an ``add`` of an id it holds, so replicas ingesting the same files at once store each chunk
once.

``DocumentStore.search`` merges two candidate sets over the same filtered chunks: the nearest
vectors from Chroma (``where`` on ``lang``, ``category`` and ``products``) and the best BM25
matches from an in-memory index (``knowledge.bm25``), and scores every candidate the same way::

    score = 0.6 · cosine similarity + 0.4 · BM25 / BM25 ceiling of the query

Both parts lie in [0, 1] and mean the same thing for every query, so the agent can hold the best
score against one absolute threshold to decide that it is not sure.

Chunk metadata in Chroma (values are scalars or non-empty lists, as Chroma requires)::

    source    "policies/returns.en.md"  the document, relative to the folder it was ingested from
    sha256    hex digest of the file    the idempotence key
    chunking  "v1/500"                  loader version and chunk size; a change re-chunks the file
    path      "/abs/path/returns.en.md" where it was read from; ``prune`` only looks inside its folders
    title     "Returns — Refunds"       document title and section heading
    lang      "zh" | "en"
    category  "returns"
    products  ["HOM-001", "HOM-003"]    absent when the chunk names no product; filtered with $contains
    format    "md" | "html" | "txt" | "csv"

The BM25 index, the chunk metadata and the stored embeddings are held in memory (about 2 KB a
chunk: 20 MB at 10k chunks), built lazily on the first search and rebuilt after an ingest that
changed something. With them a BM25-only candidate's cosine is one dot product, and filters are
numpy masks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

import chromadb
import chromadb.config
import httpx
import numpy as np
import numpy.typing as npt
from chromadb.api import ClientAPI

from core.embeddings import DIMENSIONS, sentence_encoder
from core.errors import BackendError, ConfigError, InvalidInputError
from core.types import Lang, Passage, Sku
from knowledge.bm25 import BM25Index
from knowledge.embedding import UseEmbeddingFunction
from knowledge.loaders import SUPPORTED_SUFFIXES, Chunk, DocumentError, chunk_document, load_document

__all__ = ["KEYWORD_WEIGHT", "VECTOR_WEIGHT", "DocumentStore", "IngestReport", "parse_chroma_url"]

VECTOR_WEIGHT: Final = 0.6
"""Weight of cosine similarity: meaning carries most, and it is what bridges zh and en."""
KEYWORD_WEIGHT: Final = 0.4
"""Weight of normalised BM25: exact words (SKUs, numbers, terms) the vectors blur."""

CHUNKER_VERSION: Final = "v2"
"""Bump when loaders or chunking change what a file becomes: every file is then re-chunked once."""

_EMBED_BATCH: Final = 64  # the encoder serialises calls: small batches let searches in between
_RECHECK_SECONDS: Final = 5.0  # how often a search asks Chroma whether another writer changed it
_Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ``ingest`` did; every list holds source ids."""

    added: tuple[str, ...] = ()
    """Documents seen for the first time."""
    updated: tuple[str, ...] = ()
    """Documents whose content changed: their chunks were replaced."""
    unchanged: tuple[str, ...] = ()
    """Documents skipped because their content hash is already stored."""
    pruned: tuple[str, ...] = ()
    """Documents deleted from disk (inside the folders given) and so from the store."""
    failed: tuple[tuple[Path, str], ...] = ()
    """Files that could not be ingested, with the reason; whatever they had stored before is kept."""
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the store's contents changed."""
        return bool(self.added or self.updated or self.pruned)


@dataclasses.dataclass(frozen=True, slots=True)
class _File:
    source: str
    path: Path


@dataclasses.dataclass(slots=True)
class _Stored:
    sha256: set[str] = dataclasses.field(default_factory=set)
    chunking: set[str] = dataclasses.field(default_factory=set)
    paths: set[str] = dataclasses.field(default_factory=set)
    ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class _Index:
    """An in-memory snapshot of the collection for BM25, filters and cosine of BM25-only hits."""

    generation: int
    ids: list[str]
    rows: dict[str, int]
    texts: list[str]
    metadatas: list[Mapping[str, Any]]
    langs: npt.NDArray[np.str_]
    categories: npt.NDArray[np.str_]
    products: dict[str, npt.NDArray[np.int64]]
    embeddings: npt.NDArray[np.float32]
    bm25: BM25Index

    @property
    def size(self) -> int:
        return len(self.ids)

    def mask(self, lang: Lang | None, category: str | None, product: str | None) -> npt.NDArray[np.bool_]:
        mask = np.ones(self.size, dtype=np.bool_)
        if lang is not None:
            mask &= self.langs == lang.value
        if category is not None:
            mask &= self.categories == category
        if product is not None:
            with_product = np.zeros(self.size, dtype=np.bool_)
            with_product[self.products.get(product, np.zeros(0, dtype=np.int64))] = True
            mask &= with_product
        return mask


class DocumentStore:
    """Company documents in Chroma, ingested idempotently and searched by vectors and BM25 together.

    Safe to search from several threads; ingests are serialised (within this process: other replicas
    on the same Chroma server may ingest at the same time, which stores the same chunks once).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str | None = None,
        collection: str = "documents",
        chunk_chars: int = 500,
    ) -> None:
        """Open (or create) the store in the folder ``path``, or on the Chroma server at ``url``.

        Args:
            path: The Chroma directory (created if missing).
            url: A Chroma server's URL (``http://chroma:8000``) instead of a directory.
            collection: The Chroma collection name (3-512 characters of ``[a-zA-Z0-9._-]``).
            chunk_chars: The longest chunk text, in characters.

        Raises:
            InvalidInputError: ``chunk_chars`` is below 50.
            ConfigError: neither or both of ``path`` and ``url``, or a malformed ``url``.
            BackendError: the Chroma server at ``url`` does not answer.
        """
        if chunk_chars < 50:
            raise InvalidInputError(f"chunk size must be at least 50 characters, got {chunk_chars}")
        if (path is None) == (url is None):
            raise ConfigError("give the document store either a folder or a Chroma server URL")
        self.path = path
        self.url = url
        self.chunk_chars = chunk_chars
        self._chunking = f"{CHUNKER_VERSION}/{chunk_chars}"
        self._client = _chroma_client(path, url)
        # The embedding function is always passed: without it Chroma falls back to its default,
        # which downloads a model. Kefu embeds chunks itself (with their title line), so Chroma
        # only uses it if someone queries the collection by text.
        self._collection = self._client.get_or_create_collection(
            collection,
            embedding_function=cast(Any, UseEmbeddingFunction()),  # Chroma's generic is invariant in its input
            configuration={"hnsw": {"space": "cosine"}},
        )
        self._write_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._index: _Index | None = None
        self._generation = 0
        self._ingesting = False
        self._checked_at = time.monotonic()

    @classmethod
    def for_kb(cls, directory: Path, chroma_url: str | None = None) -> DocumentStore:
        """A knowledge base's document store: on the Chroma server at ``chroma_url``, else in ``directory/chroma``.

        Raises:
            ConfigError: a malformed ``chroma_url``.
            BackendError: the Chroma server does not answer.
        """
        return cls(url=chroma_url) if chroma_url else cls(directory / "chroma")

    @property
    def location(self) -> str:
        """Where the chunks are: the Chroma server's URL or the folder."""
        return self.url or str(self.path)

    # ------------------------------------------------------------------------------- reading

    def count(self) -> int:
        """The number of chunks stored.

        Raises:
            BackendError: the Chroma server does not answer.
        """
        with self._answering():
            return self._collection.count()

    def sources(self) -> dict[str, str]:
        """Every stored document's source id and the sha256 of the content its chunks came from."""
        return {source: min(stored.sha256) for source, stored in self._stored().items()}

    def search(
        self,
        query: str,
        *,
        lang: Lang | None = None,
        category: str | None = None,
        product: str | None = None,
        limit: int = 5,
    ) -> list[Passage]:
        """The passages that best answer ``query``, best first.

        Args:
            query: The question, in Chinese or English (either finds passages in both).
            lang: Only passages in this language.
            category: Only passages of this category (``returns``, ``warranty``, ...).
            product: Only passages about this SKU (``HOM-001``).
            limit: At most this many passages.

        Returns:
            Up to ``limit`` passages scored in [0, 1] (see the module docstring); ``[]`` for an empty
            query, an empty store or filters that match nothing.

        Raises:
            InvalidInputError: ``limit`` is below 1, or ``lang`` is not a language Kefu speaks.
            BackendError: the Chroma server does not answer.
        """
        with self._answering():
            return self._search(query, lang=lang, category=category, product=product, limit=limit)

    def _search(
        self, query: str, *, lang: Lang | None, category: str | None, product: str | None, limit: int
    ) -> list[Passage]:
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        lang = _as_lang(lang)
        category = (category or "").strip().lower() or None
        product = (product or "").strip().upper() or None
        query = query.strip()
        if not query:
            return []
        index = self._current_index()
        if index.size == 0:
            return []
        mask = index.mask(lang, category, product)
        allowed = int(mask.sum())
        if allowed == 0:
            return []
        wanted = min(max(limit * 4, 20), allowed)
        vector = sentence_encoder().encode([query])[0]

        rows = set(self._vector_rows(index, vector, _where(lang, category, product), wanted))
        keyword = np.where(mask, index.bm25.scores(query), np.float32(0))
        best = np.argpartition(-keyword, wanted - 1)[:wanted] if wanted < index.size else np.arange(index.size)
        rows.update(int(row) for row in best if keyword[row] > 0)

        candidates = np.fromiter(rows, dtype=np.int64, count=len(rows))
        cosine = np.clip(index.embeddings[candidates] @ vector, 0.0, 1.0)
        scores = np.clip(VECTOR_WEIGHT * cosine + KEYWORD_WEIGHT * keyword[candidates], 0.0, 1.0)
        ranked = sorted(zip(candidates.tolist(), scores.tolist(), strict=True), key=lambda p: (-p[1], index.ids[p[0]]))
        return [_passage(index, row, score) for row, score in ranked[:limit]]

    def _vector_rows(
        self, index: _Index, vector: npt.NDArray[np.float32], where: dict[str, Any] | None, wanted: int
    ) -> Iterator[int]:
        """Rows of Chroma's nearest neighbours under ``where``."""
        result = self._collection.query(
            query_embeddings=vector.reshape(1, -1), n_results=wanted, where=cast(Any, where), include=["distances"]
        )
        for chunk_id in result["ids"][0]:
            row = index.rows.get(chunk_id)
            if row is not None:  # a chunk another writer added since the index was built: next time
                yield row

    # ------------------------------------------------------------------------------- writing

    def ingest(self, paths: Sequence[Path], *, prune: bool = False, progress: _Progress | None = None) -> IngestReport:
        """Bring the store up to date with files and folders; safe to repeat.

        Folders are searched recursively for ``.md``, ``.html``/``.htm``, ``.txt`` and ``.csv``
        files (hidden files and folders skipped); a file in a folder is filed under its path relative
        to that folder (``policies/returns.en.md``), a file given directly under its name.

        Args:
            paths: Files and folders to ingest.
            prune: Also delete stored documents whose file was inside one of the folders given and is
                gone. Documents from anywhere else are never pruned.
            progress: Called after each file as ``(source, files done, files in total)``.

        Returns:
            What was added, updated, left alone, pruned and refused (with the reason). A file that
            fails keeps whatever it had stored before.

        Raises:
            BackendError: the Chroma server stopped answering (what was written so far stays).
        """
        started = time.perf_counter()
        with self._write_lock, self._answering():
            self._ingesting = True
            changed = True  # if the ingest fails half-way, assume it changed something
            try:
                report = self._ingest(paths, prune=prune, progress=progress)
                changed = report.changed
            finally:
                self._ingesting = False
                if changed:
                    with self._index_lock:
                        self._generation += 1
        return dataclasses.replace(report, seconds=round(time.perf_counter() - started, 3))

    def _ingest(self, paths: Sequence[Path], *, prune: bool, progress: _Progress | None) -> IngestReport:
        files, failed = _discover(paths)
        stored = self._stored()
        added: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        chunks_added = chunks_removed = 0
        for number, file in enumerate(files, start=1):
            try:
                data = file.path.read_bytes()
            except OSError as error:
                failed.append((file.path, f"cannot read: {error.strerror or error}"))
                continue
            digest = hashlib.sha256(data).hexdigest()
            before = stored.get(file.source)
            resolved = str(file.path.resolve())
            if before is not None and before.sha256 == {digest} and before.chunking == {self._chunking}:
                if before.paths != {resolved}:  # the same file read from a new place: remember where
                    self._collection.update(ids=before.ids, metadatas=[{"path": resolved}] * len(before.ids))
                unchanged.append(file.source)
            else:
                try:
                    chunks = chunk_document(load_document(file.path, file.source, data=data), self.chunk_chars)
                except DocumentError as error:
                    failed.append((file.path, error.reason))
                else:
                    self._replace(chunks, digest, resolved, before.ids if before else [])
                    (updated if before else added).append(file.source)
                    chunks_added += len(chunks)
                    chunks_removed += len(before.ids) if before else 0
            if progress is not None:
                progress(file.source, number, len(files))
        pruned: list[str] = []
        if prune:
            roots = [path.resolve() for path in paths if path.is_dir()]
            current = {str(file.path.resolve()): file.source for file in files}
            for source, before in sorted(stored.items()):
                if source not in current.values() and _prunable(before, source, roots, current):
                    self._collection.delete(ids=before.ids)
                    pruned.append(source)
                    chunks_removed += len(before.ids)
        return IngestReport(
            added=tuple(added),
            updated=tuple(updated),
            unchanged=tuple(unchanged),
            pruned=tuple(pruned),
            failed=tuple(failed),
            chunks_added=chunks_added,
            chunks_removed=chunks_removed,
        )

    def _replace(self, chunks: Sequence[Chunk], digest: str, path: str, old_ids: Sequence[str]) -> None:
        """Write a document's new chunks over its old ones, then drop the old ones left over.

        New chunks are upserted before anything is deleted, so a failure half-way leaves the
        document searchable; its chunks then disagree on ``sha256`` and the next ingest redoes it.
        """
        batch = max(1, min(self._client.get_max_batch_size(), 1000))
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            vectors = np.concatenate(
                [
                    sentence_encoder().encode([chunk.embed_text for chunk in part[i : i + _EMBED_BATCH]])
                    for i in range(0, len(part), _EMBED_BATCH)
                ]
            ).reshape(len(part), DIMENSIONS)
            write = self._collection.upsert if old_ids else self._collection.add  # add skips the lookup
            write(
                ids=[chunk.id for chunk in part],
                embeddings=vectors,
                documents=[chunk.text for chunk in part],
                metadatas=[self._metadata(chunk, digest, path) for chunk in part],
            )
        new_ids = {chunk.id for chunk in chunks}
        leftover = [chunk_id for chunk_id in old_ids if chunk_id not in new_ids]
        for start in range(0, len(leftover), batch):
            self._collection.delete(ids=leftover[start : start + batch])

    def _metadata(self, chunk: Chunk, digest: str, path: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "source": chunk.source,
            "sha256": digest,
            "chunking": self._chunking,
            "path": path,
            "title": chunk.title,
            "lang": chunk.lang.value,
            "category": chunk.category,
            "format": chunk.format,
        }
        if chunk.products:  # Chroma refuses empty lists
            metadata["products"] = list(chunk.products)
        return metadata

    def _stored(self) -> dict[str, _Stored]:
        """What is stored, per source id, read from the chunks' metadata."""
        result = self._collection.get(include=["metadatas"])
        stored: dict[str, _Stored] = {}
        for chunk_id, metadata in zip(result["ids"], result["metadatas"] or [], strict=True):
            entry = stored.setdefault(str(metadata.get("source", "")), _Stored())
            entry.sha256.add(str(metadata.get("sha256", "")))
            entry.chunking.add(str(metadata.get("chunking", "")))
            entry.paths.add(str(metadata.get("path", "")))
            entry.ids.append(chunk_id)
        return stored

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Turn a Chroma server that cannot be reached into ``BackendError`` naming it."""
        try:
            yield
        except httpx.TransportError as error:
            raise BackendError(f"the Chroma server at {self.location} does not answer: {error}") from error

    # ------------------------------------------------------------------------------- the index

    def _current_index(self) -> _Index:
        """The in-memory index, rebuilt if an ingest (here, or by another writer) changed the store."""
        index = self._index
        if index is not None and index.generation == self._generation and not self._recheck_due():
            return index
        with self._index_lock:
            index = self._index
            if index is None or index.generation != self._generation or self._changed_elsewhere(index):
                index = self._build_index(self._generation)
                self._index = index
            return index

    def _recheck_due(self) -> bool:
        return not self._ingesting and time.monotonic() - self._checked_at > _RECHECK_SECONDS

    def _changed_elsewhere(self, index: _Index) -> bool:
        if not self._recheck_due():
            return False
        self._checked_at = time.monotonic()
        return self._collection.count() != index.size

    def _build_index(self, generation: int) -> _Index:
        result = self._collection.get(include=["documents", "metadatas", "embeddings"])
        ids = list(result["ids"])
        documents = [str(text) for text in result["documents"] or []]
        metadatas: list[Mapping[str, Any]] = list(result["metadatas"] or [])
        raw = result["embeddings"]
        embeddings = (
            np.asarray(raw, dtype=np.float32).reshape(len(ids), DIMENSIONS)
            if raw is not None and len(ids)
            else np.zeros((0, DIMENSIONS), dtype=np.float32)
        )
        products: dict[str, list[int]] = {}
        for row, metadata in enumerate(metadatas):
            for sku in _products(metadata):
                products.setdefault(sku, []).append(row)
        texts = [f"{metadata.get('title', '')}\n{text}" for metadata, text in zip(metadatas, documents, strict=True)]
        langs = [str(metadata.get("lang", "")) for metadata in metadatas]
        return _Index(
            generation=generation,
            ids=ids,
            rows={chunk_id: row for row, chunk_id in enumerate(ids)},
            texts=documents,
            metadatas=metadatas,
            langs=np.asarray(langs, dtype=np.str_),
            categories=np.asarray([str(metadata.get("category", "")) for metadata in metadatas], dtype=np.str_),
            products={sku: np.asarray(rows, dtype=np.int64) for sku, rows in products.items()},
            embeddings=embeddings,
            bm25=BM25Index(texts, groups=langs),
        )


def _chroma_client(path: Path | None, url: str | None) -> ClientAPI:
    """A client of the Chroma server at ``url``, or of the files in ``path``; telemetry off either way."""
    settings = chromadb.config.Settings(anonymized_telemetry=False, allow_reset=False)
    if url is None:
        assert path is not None
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    host, port, ssl = parse_chroma_url(url)
    try:
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
    except (ValueError, httpx.TransportError) as error:  # chromadb says "Could not connect" with a ValueError
        raise BackendError(f"the Chroma server at {url} does not answer: {error}") from error


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """The host, port and TLS flag of a Chroma server URL (``http://chroma:8000``, ``https://vectors.example``).

    Without a port the scheme's own applies (80, 443), as for any URL.

    Raises:
        ConfigError: not an ``http``/``https`` URL of a host, or one with a path, query or credentials.
    """
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise ConfigError(f"KEFU_CHROMA_URL must look like http://host:8000, got {url!r}")
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else 80), ssl


def _as_lang(lang: Lang | str | None) -> Lang | None:
    if lang is None or isinstance(lang, Lang):
        return lang
    try:
        return Lang(str(lang).strip().lower())
    except ValueError:
        raise InvalidInputError(f"unknown language {lang!r}; use 'zh' or 'en'") from None


def _where(lang: Lang | None, category: str | None, product: str | None) -> dict[str, Any] | None:
    """The Chroma ``where`` filter that matches ``_Index.mask``."""
    clauses: list[dict[str, Any]] = []
    if lang is not None:
        clauses.append({"lang": lang.value})
    if category is not None:
        clauses.append({"category": category})
    if product is not None:
        clauses.append({"products": {"$contains": product}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _products(metadata: Mapping[str, Any]) -> list[str]:
    value = metadata.get("products")
    return [str(sku) for sku in value] if isinstance(value, list) else []


def _passage(index: _Index, row: int, score: float) -> Passage:
    metadata = index.metadatas[row]
    return Passage(
        id=index.ids[row],
        source=str(metadata.get("source", "")),
        title=str(metadata.get("title", "")),
        text=index.texts[row],
        score=round(score, 4),
        lang=Lang(str(metadata.get("lang", Lang.EN.value))),
        category=str(metadata.get("category", "")),
        products=[Sku(sku) for sku in _products(metadata)],
    )


def _discover(paths: Sequence[Path]) -> tuple[list[_File], list[tuple[Path, str]]]:
    """The files to ingest, each with its source id, and the paths refused outright."""
    files: list[_File] = []
    failed: list[tuple[Path, str]] = []
    taken: dict[str, Path] = {}

    def add(source: str, path: Path) -> None:
        if source in taken:
            if taken[source].resolve() != path.resolve():
                failed.append((path, f"source id {source!r} is already taken by {taken[source]}"))
            return
        taken[source] = path
        files.append(_File(source, path))

    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if (
                    file.is_file()
                    and file.suffix.lower() in SUPPORTED_SUFFIXES
                    and not any(part.startswith(".") for part in relative.parts)
                ):
                    add(relative.as_posix(), file)
        elif path.is_file():
            add(path.name, path)
        else:
            failed.append((path, "no such file or folder"))
    return files, failed


def _prunable(before: _Stored, source: str, roots: Sequence[Path], current: Mapping[str, str]) -> bool:
    """Whether a stored document not seen in this run was inside ``roots`` and is gone from them.

    Gone means its file no longer exists, or it was ingested this run under another source id
    (the same file reached through a different folder argument).
    """
    for stored_path in before.paths:
        path = Path(stored_path)
        if not any(path.is_relative_to(root) for root in roots):
            return False
        if path.exists() and current.get(stored_path, source) == source:
            return False
    return bool(before.paths)
