"""Product knowledge graph and document knowledge base: the only package that imports LlamaIndex and Chroma.

- ``knowledge.documents``: company documents (Markdown, HTML, PDF text, CSV Q&A) chunked into
  Chroma, searched by vectors and BM25 together;
- ``knowledge.graph``: the product–feature–scenario graph (a LlamaIndex ``PropertyGraphIndex``
  built from the catalog and a triples file, never by an LLM), for recommendations and comparisons;
- ``knowledge.base.KnowledgeBase``: both behind ``core.ports.KnowledgePort``, which tools use;
- ``knowledge.embedding``: the offline embedding adapters and the guard against online defaults.
"""

from knowledge.base import DEMO_DOCS, DEMO_TRIPLES, KnowledgeBase

__all__ = ["DEMO_DOCS", "DEMO_TRIPLES", "KnowledgeBase"]
