"""Catalog tools: find products by need, feature or name."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool

from tools._runtime import SupportRuntime, dumps

__all__ = ["search_products"]


@tool(parse_docstring=True, response_format="content_and_artifact")
def search_products(query: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Search the shop's catalog by product name, feature or usage scenario, in English or Chinese.

    Args:
        query: What the customer is looking for, e.g. "noise cancelling headphones for running".
    """
    products = runtime.context.store.search_products(query, limit=3)
    artifact = {"products": [product.model_dump(mode="json") for product in products]}
    return dumps(artifact), artifact
