"""Knowledge tools: company documents, product recommendations from the graph, product comparison.

Every answer about policies and products comes from these results, never from the model's memory:
passages carry their source ids so the reply can cite them, and recommendations carry the graph
path that explains them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Final

from langchain_core.tools import tool

from core.errors import BackendError, InvalidInputError, NotFoundError
from core.ports import KnowledgePort
from core.types import Lang, Sku
from tools._runtime import SupportRuntime, dumps
from tools.errors import ToolError

__all__ = ["compare_products", "recommend_products", "search_knowledge"]

_CJK: Final = re.compile(r"[\u4e00-\u9fff]")
_PASSAGES: Final = 3
_HISTORY_ORDERS: Final = 20
_UNAVAILABLE: Final = "The knowledge base is not available right now; offer a human colleague."


def _knowledge(runtime: SupportRuntime) -> KnowledgePort:
    knowledge = runtime.context.knowledge
    if knowledge is None:
        raise ToolError(_UNAVAILABLE)
    return knowledge


def _lang(runtime: SupportRuntime, text: str) -> Lang:
    """The reply language: the client's choice, else the turn's detected language, else the text's script."""
    if runtime.context.lang is not None:
        return runtime.context.lang
    state = runtime.state if isinstance(runtime.state, dict) else {}
    if state.get("lang") in (Lang.ZH.value, Lang.EN.value):
        return Lang(state["lang"])
    return Lang.ZH if _CJK.search(text) else Lang.EN


@tool(parse_docstring=True, response_format="content_and_artifact")
def search_knowledge(
    query: str, runtime: SupportRuntime, category: str | None = None, product: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Search the shop's policies, FAQ and product guides; answer only from the passages found.

    Args:
        query: The customer's question in their own words, e.g. "how long do refunds take?".
        category: Optionally one of returns, shipping, warranty, payment, membership, privacy, product.
        product: Optionally a product SKU such as HOM-001, to search only that product's guides.
    """
    query = query.strip()
    if not query:
        raise ToolError("Give the question to search for.")
    try:
        passages = _knowledge(runtime).search(
            query, category=category or None, product=Sku(product) if product else None, limit=_PASSAGES
        )
    except BackendError as exc:  # a Chroma server that went away after start-up
        raise ToolError(_UNAVAILABLE) from exc
    artifact = {
        "passages": [
            passage.model_dump(mode="json", include={"id", "source", "title", "text", "score"}) for passage in passages
        ],
        "best_score": passages[0].score if passages else 0.0,
    }
    return dumps(artifact), artifact


@tool(parse_docstring=True, response_format="content_and_artifact")
def recommend_products(need: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Recommend products for a need from the product graph, each with its reason and a confidence.

    Products the customer already bought are left out; the categories they usually buy rank higher.

    Args:
        need: What the customer wants or the problem to solve, e.g. "家里有猫，掉毛严重".
    """
    need = need.strip()
    if not need:
        raise ToolError("Ask the customer what they need the product for.")
    context = runtime.context
    orders = context.store.list_orders(context.customer_id, limit=_HISTORY_ORDERS)
    owned = sorted({item.sku for order in orders for item in order.items})
    bought = set(owned)
    categories = Counter(product.category for product in context.store.list_products() if product.sku in bought)
    recommendations = _knowledge(runtime).recommend(
        need,
        lang=_lang(runtime, need),
        owned=owned,
        preferred_categories=[name for name, _count in categories.most_common(3)],
        limit=3,
    )
    artifact = {"recommendations": [item.model_dump(mode="json") for item in recommendations]}
    return dumps(artifact), artifact


@tool(parse_docstring=True, response_format="content_and_artifact")
def compare_products(products: list[str], runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Compare two to four products side by side: price, stock, features, scenarios, alternatives.

    Args:
        products: SKUs (e.g. ["AUD-001", "AUD-003"]) or product names as the customer wrote them.
    """
    names = {
        key.lower(): sku
        for sku, name_en, name_zh in runtime.context.store.product_names()
        for key in (sku, name_en, name_zh)
    }
    skus: list[Sku] = []
    for given in products:
        sku = names.get(given.strip().lower())
        if sku is None:
            raise ToolError(f"No product called {given!r}; use the SKU or the exact name from the catalog.")
        if Sku(sku) not in skus:
            skus.append(Sku(sku))
    try:
        comparison = _knowledge(runtime).compare(skus, lang=_lang(runtime, " ".join(products)))
    except (InvalidInputError, NotFoundError) as exc:
        raise ToolError(str(exc)) from exc
    artifact = comparison.model_dump(mode="json")
    return dumps(artifact), artifact
