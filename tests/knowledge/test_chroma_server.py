"""Document chunks on a real Chroma server (``chroma run`` on loopback), as API replicas share them.

The same documents searched through the server and through the embedded ``PersistentClient`` give
the same passages; replicas opening the knowledge base at once store each chunk once; a server that
stops answering shows in ``readiness()`` and in the knowledge tools, and its return is picked up.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.intents import IntentModel
from core.db import make_engine
from core.errors import BackendError, ConfigError
from core.settings import Settings
from core.store import SqlStore
from core.types import Lang, Product
from evals.localservers import ChromaServer
from knowledge import DEMO_DOCS, KnowledgeBase
from knowledge.documents import DocumentStore, parse_chroma_url
from serving.service import KefuService

_DOCS = ("policies/returns-refunds.en.md", "policies/returns-refunds.zh.md", "policies/shipping.en.md", "faq/faq.csv")

QUERIES: list[tuple[str, dict[str, object]]] = [
    ("How long do refunds take?", {}),
    ("退款多久到账", {}),
    ("Do you ship overseas?", {"lang": Lang.EN}),
    ("怎么转人工客服", {"category": "general"}),
    ("refund to a different card", {"category": "returns", "limit": 8}),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few of the demo documents, in both languages and three formats."""
    root = tmp_path_factory.mktemp("docs")
    for name in _DOCS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO_DOCS / name, root / name)
    return root


@pytest.fixture(scope="module")
def chroma() -> Iterator[ChromaServer]:
    """One Chroma server for the module's store-level tests (each uses its own collection)."""
    with ChromaServer() as server:
        yield server


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> DocumentStore:
    store = DocumentStore(tmp_path_factory.mktemp("embedded") / "chroma")
    assert not store.ingest([corpus]).failed
    return store


@pytest.fixture(scope="module")
def served(chroma: ChromaServer, corpus: Path) -> DocumentStore:
    store = DocumentStore(url=chroma.url, collection="served")
    assert not store.ingest([corpus]).failed
    return store


@pytest.fixture(scope="module")
def products(seeded_db: Path) -> list[Product]:
    engine = make_engine(f"sqlite:///{seeded_db}")
    try:
        return SqlStore(engine).list_products()
    finally:
        engine.dispose()


def _ids(store: DocumentStore) -> list[str]:
    return sorted(store._collection.get(include=[])["ids"])


# ---------------------------------------------------------------------------------- the store


def test_search_through_the_server_equals_the_embedded_store(embedded: DocumentStore, served: DocumentStore) -> None:
    assert served.url is not None and served.path is None
    assert served.count() == embedded.count() > 0
    assert served.sources() == embedded.sources()
    for query, filters in QUERIES:
        expected = embedded.search(query, **filters)  # type: ignore[arg-type]
        assert expected, query
        assert served.search(query, **filters) == expected, query  # type: ignore[arg-type]


def test_ingesting_again_from_any_replica_stores_nothing_twice(
    chroma: ChromaServer, served: DocumentStore, corpus: Path
) -> None:
    before = _ids(served)
    again = served.ingest([corpus])
    other = DocumentStore(url=chroma.url, collection="served").ingest([corpus])
    assert not again.changed and not other.changed
    assert len(again.unchanged) == len(other.unchanged) == len(_DOCS)
    assert _ids(served) == before


def test_replicas_ingesting_at_once_store_each_chunk_once(
    chroma: ChromaServer, embedded: DocumentStore, corpus: Path
) -> None:
    replicas = [DocumentStore(url=chroma.url, collection="race") for _ in range(2)]
    start = threading.Barrier(len(replicas))
    errors: list[BaseException] = []

    def ingest(store: DocumentStore) -> None:
        try:
            start.wait(10)
            store.ingest([corpus])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=(store,)) for store in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert replicas[0].count() == replicas[1].count() == embedded.count()
    assert _ids(replicas[0]) == _ids(embedded)


def test_two_knowledge_bases_on_one_server_see_the_same_chunks(
    tmp_path: Path, seeded_kb: Path, corpus: Path, products: list[Product]
) -> None:
    directories = [tmp_path / "replica-a", tmp_path / "replica-b"]
    for directory in directories:  # each replica's own product graph (built from the catalog; copied to save time)
        shutil.copytree(seeded_kb / "graph", directory / "graph")
    with ChromaServer() as server:
        first = KnowledgeBase.open(directories[0], products, doc_paths=[corpus], chroma_url=server.url)
        second = KnowledgeBase.open(directories[1], products, doc_paths=(), chroma_url=server.url)
        assert second.ping() == first.ping() > 0
        for query, filters in QUERIES:
            assert second.search(query, **filters) == first.search(query, **filters)  # type: ignore[arg-type]
        assert second.recommend("降噪耳机", lang=Lang.ZH)  # the graph is each replica's own, in its directory
    assert not any((directory / "chroma").exists() for directory in directories)


def test_a_server_that_stops_answering_raises_backend_error_naming_it(tmp_path: Path, corpus: Path) -> None:
    with ChromaServer() as server:
        store = DocumentStore(url=server.url)
        store.ingest([corpus])
        server.kill()
        with pytest.raises(BackendError, match=f"Chroma server at {server.url} does not answer"):
            store.count()
        with pytest.raises(BackendError, match="does not answer"):
            store.search("How long do refunds take?")
        server.start()  # the same data, on the same port
        assert store.search("How long do refunds take?")
    with pytest.raises(BackendError, match="does not answer"):
        DocumentStore(url=server.url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://chroma:8000", ("chroma", 8000, False)),
        ("http://127.0.0.1:8000/", ("127.0.0.1", 8000, False)),
        ("https://vectors.example.com", ("vectors.example.com", 443, True)),
        ("http://chroma", ("chroma", 80, False)),
    ],
)
def test_chroma_urls_are_read_as_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_chroma_url(url) == expected


@pytest.mark.parametrize(
    "url", ["chroma:8000", "ftp://chroma:8000", "http://:8000", "http://chroma:port", "http://chroma:8000/api", "x"]
)
def test_a_malformed_chroma_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="KEFU_CHROMA_URL must look like http://host:8000"):
        DocumentStore(url=url)


def test_a_store_takes_a_folder_or_a_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either a folder or a Chroma server URL"):
        DocumentStore()
    with pytest.raises(ConfigError, match="either a folder or a Chroma server URL"):
        DocumentStore(tmp_path, url="http://chroma:8000")


# ---------------------------------------------------------------------------------- the service


@pytest.fixture
def chroma_service(
    settings: Settings, intent_model: IntentModel, corpus: Path
) -> Iterator[tuple[KefuService, ChromaServer]]:
    """A rules-only service whose document chunks are on its own Chroma server."""
    with ChromaServer() as server:
        local = settings.model_copy(update={"chroma_url": server.url, "kb_docs": [corpus]})
        service = KefuService.start(local, use_llm=False, intent_model=intent_model)
        yield service, server
        service.close()


def test_readiness_and_the_knowledge_tools_follow_the_chroma_server(
    chroma_service: tuple[KefuService, ChromaServer],
) -> None:
    service, server = chroma_service
    assert service.knowledge is not None
    chunks = service.knowledge.ping()
    assert service.readiness()["vector_store"] == f"ok ({chunks} chunks)"
    answered = service.chat("kb-up", "C0002", "How long do refunds take?", lang=Lang.EN)
    assert answered.tools == ["search_knowledge"] and answered.sources

    server.kill()
    assert service.readiness()["vector_store"] == "down: BackendError"
    failed = service.chat("kb-down", "C0002", "How long do refunds take?", lang=Lang.EN)
    assert failed.tools == ["search_knowledge"]
    assert failed.sources == [] and failed.reply != answered.reply  # the tool failed: no passage is quoted

    server.start()
    assert service.readiness()["vector_store"] == f"ok ({chunks} chunks)"
    assert service.chat("kb-back", "C0002", "How long do refunds take?", lang=Lang.EN).sources


def test_a_service_whose_chroma_server_is_down_at_start_runs_without_knowledge(
    settings: Settings, intent_model: IntentModel
) -> None:
    down = ChromaServer()  # a free port nothing listens on
    try:
        local = settings.model_copy(update={"chroma_url": down.url})
        service = KefuService.start(local, use_llm=False, intent_model=intent_model)
        try:
            assert service.knowledge is None
            assert service.readiness()["vector_store"] == "down: knowledge base did not open"
            result = service.chat("kb-none", "C0002", "How long do refunds take?", lang=Lang.EN)
            assert result.tools == ["search_knowledge"]
            assert "knowledge base is not available" in result.reply
        finally:
            service.close()
    finally:
        down.stop()


def test_a_malformed_chroma_url_stops_the_service_at_start(settings: Settings, intent_model: IntentModel) -> None:
    local = settings.model_copy(update={"chroma_url": "chroma:8000"})
    with pytest.raises(ConfigError, match="KEFU_CHROMA_URL"):
        KefuService.start(local, use_llm=False, intent_model=intent_model)
