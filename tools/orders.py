"""Order tools: look one up, list recent ones. Only the session's customer's orders are visible."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool

from core.types import OrderId
from tools._runtime import SupportRuntime, dumps
from tools.errors import ToolError

__all__ = ["list_recent_orders", "lookup_order"]


@tool(parse_docstring=True, response_format="content_and_artifact")
def lookup_order(order_id: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Look up one of the customer's orders: status, items, carrier, tracking number and delivery date.

    Args:
        order_id: The order number, e.g. KF100234.
    """
    context = runtime.context
    order = context.store.get_order(OrderId(order_id))
    # Another customer's order reads exactly like a missing one: existence must not leak.
    if order is None or order.customer_id != context.customer_id:
        raise ToolError(f"No order {order_id.strip().upper()} on this customer's account; ask them to re-check it.")
    artifact = order.model_dump(mode="json")
    return dumps(artifact), artifact


@tool(parse_docstring=True, response_format="content_and_artifact")
def list_recent_orders(runtime: SupportRuntime, limit: int = 3) -> tuple[str, dict[str, Any]]:
    """List the customer's most recent orders, newest first.

    Args:
        limit: How many orders to return, 1 to 10.
    """
    context = runtime.context
    orders = context.store.list_orders(context.customer_id, limit=max(1, min(limit, 10)))
    artifact = {"orders": [order.model_dump(mode="json") for order in orders]}
    return dumps(artifact), artifact
