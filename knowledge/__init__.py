"""Product knowledge graph and document knowledge base (LlamaIndex, Chroma).

The only package allowed to import LlamaIndex and Chroma. It is filled in by the knowledge issue;
until then product questions are answered from the catalog through ``tools.search_products``.
"""

__all__: list[str] = []
