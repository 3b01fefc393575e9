"""τ²'s retail tools as Kefu tools: τ²'s names and arguments, ``RetailOps`` underneath.

Each tool reaches the τ² tables through the session's store (``runtime.context.store.engine``),
as Kefu's built-in tools reach theirs. Unlike Kefu's tools, they take τ²'s ``user_id`` and order
ids as arguments: τ² authenticates inside the conversation, so the session's customer is only the
guest until ``find_user_id_by_*`` succeeds (which records the user for the conversation; see
``evals.tau2.agent``).

Kefu redacts names, e-mail addresses and street addresses before the model sees them, and the
tool results too (a user's e-mail in ``get_user_details`` becomes ``<EMAIL_ADDRESS_1>``). Every
argument that may carry such a placeholder is declared in ``PII_ARGS``, so the tool receives the
real value from the conversation's vault.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import ToolRuntime

from core.context import SupportContext
from core.store import SqlStore
from evals.tau2.retail import RetailOps
from tools import BUILTIN_TOOLS, PII_ARGS, ToolError, ToolRegistry

SupportRuntime = ToolRuntime[SupportContext]

__all__ = ["TAU2_TOOLS", "tau2_registry"]

_ADDRESS_ARGS = ("address1", "address2", "city", "state", "country", "zip")


def _ops(runtime: SupportRuntime) -> RetailOps:
    store = runtime.context.store
    if not isinstance(store, SqlStore):  # the τ² tables live beside Kefu's, in its SQL database
        raise ToolError("the τ² tools need Kefu's SQL store")
    return RetailOps(store.engine)


def _result(value: Any) -> tuple[str, dict[str, Any]]:
    artifact = value if isinstance(value, dict) else {"result": value}
    return json.dumps(value, ensure_ascii=False), artifact


@tool(parse_docstring=True, response_format="content_and_artifact")
def find_user_id_by_email(email: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Find the user id from an e-mail address; this authenticates the user.

    Args:
        email: The user's e-mail address, as the user wrote it.
    """
    ops = _ops(runtime)
    user_id = ops.find_user_id_by_email(email)
    ops.authenticate(runtime.context.conversation_id, user_id)
    return _result(user_id)


@tool(parse_docstring=True, response_format="content_and_artifact")
def find_user_id_by_name_zip(  # noqa: D417
    first_name: str, last_name: str, zip: str, runtime: SupportRuntime
) -> tuple[str, dict[str, Any]]:
    """Find the user id from first name, last name and zip code; this authenticates the user.

    Args:
        first_name: The user's first name, e.g. John.
        last_name: The user's last name, e.g. Doe.
        zip: The zip code of the user's address, e.g. 12345.
    """
    ops = _ops(runtime)
    user_id = ops.find_user_id_by_name_zip(first_name, last_name, zip)
    ops.authenticate(runtime.context.conversation_id, user_id)
    return _result(user_id)


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_user_details(user_id: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Get a user's details: name, address, e-mail, payment methods and order ids.

    Args:
        user_id: The user id, e.g. sara_doe_496.
    """
    return _result(_ops(runtime).get_user_details(user_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_order_details(order_id: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Get an order's status, items, address, fulfilments and payment history.

    Args:
        order_id: The order id, e.g. #W0000000 (with the '#').
    """
    return _result(_ops(runtime).get_order_details(order_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_product_details(product_id: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Get a product and all its variant items (options, availability, price).

    Args:
        product_id: The product id, e.g. 6086499569. Not the same as an item id.
    """
    return _result(_ops(runtime).get_product_details(product_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_item_details(item_id: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Get one variant item: its options, availability, price and product id.

    Args:
        item_id: The item id, e.g. 1008292230. Not the same as a product id.
    """
    return _result(_ops(runtime).get_item_details(item_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def list_all_product_types(runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """List the name and product id of every product type the store sells."""
    return _result(_ops(runtime).list_all_product_types())


@tool(parse_docstring=True, response_format="content_and_artifact")
def calculate(expression: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Calculate an arithmetic expression with numbers, + - * / and parentheses.

    Args:
        expression: The expression, e.g. (12.5 + 7) * 2.
    """
    return _result(_ops(runtime).calculate(expression))


@tool(parse_docstring=True, response_format="content_and_artifact")
def cancel_pending_order(order_id: str, reason: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Cancel a pending order, after the user confirmed the order id and the reason.

    Args:
        order_id: The order id, e.g. #W0000000.
        reason: Either 'no longer needed' or 'ordered by mistake'.
    """
    return _result(_ops(runtime).cancel_pending_order(order_id, reason))


@tool(parse_docstring=True, response_format="content_and_artifact")
def modify_pending_order_address(  # noqa: D417
    order_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
    runtime: SupportRuntime,
) -> tuple[str, dict[str, Any]]:
    """Change the shipping address of a pending order, after the user confirmed it.

    Args:
        order_id: The order id, e.g. #W0000000.
        address1: The first line of the address, e.g. 123 Main St.
        address2: The second line of the address, e.g. Apt 1, or an empty string.
        city: The city, e.g. San Francisco.
        state: The state, e.g. CA.
        country: The country, e.g. USA.
        zip: The zip code, e.g. 12345.
    """
    address = (address1, address2, city, state, country, zip)
    return _result(_ops(runtime).modify_pending_order_address(order_id, *address))


@tool(parse_docstring=True, response_format="content_and_artifact")
def modify_pending_order_items(  # noqa: D417
    order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str, runtime: SupportRuntime
) -> tuple[str, dict[str, Any]]:
    """Swap items of a pending order for other options of the same product; only once per order.

    Args:
        order_id: The order id, e.g. #W0000000.
        item_ids: The item ids to replace, e.g. ['1008292230'].
        new_item_ids: The new item ids, in the same order, e.g. ['1008292231'].
        payment_method_id: The user's payment method paying or receiving the price difference, e.g. gift_card_0000000.
    """
    return _result(_ops(runtime).modify_pending_order_items(order_id, item_ids, new_item_ids, payment_method_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def modify_pending_order_payment(  # noqa: D417
    order_id: str, payment_method_id: str, runtime: SupportRuntime
) -> tuple[str, dict[str, Any]]:
    """Pay a pending order with another of the user's payment methods, after the user confirmed it.

    Args:
        order_id: The order id, e.g. #W0000000.
        payment_method_id: The new payment method, e.g. credit_card_0000000.
    """
    return _result(_ops(runtime).modify_pending_order_payment(order_id, payment_method_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def modify_user_address(  # noqa: D417
    user_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
    runtime: SupportRuntime,
) -> tuple[str, dict[str, Any]]:
    """Change the user's default address, after the user confirmed it.

    Args:
        user_id: The user id, e.g. sara_doe_496.
        address1: The first line of the address, e.g. 123 Main St.
        address2: The second line of the address, e.g. Apt 1, or an empty string.
        city: The city, e.g. San Francisco.
        state: The state, e.g. CA.
        country: The country, e.g. USA.
        zip: The zip code, e.g. 12345.
    """
    return _result(_ops(runtime).modify_user_address(user_id, address1, address2, city, state, country, zip))


@tool(parse_docstring=True, response_format="content_and_artifact")
def return_delivered_order_items(  # noqa: D417
    order_id: str, item_ids: list[str], payment_method_id: str, runtime: SupportRuntime
) -> tuple[str, dict[str, Any]]:
    """Request the return of items of a delivered order, after the user confirmed them.

    Args:
        order_id: The order id, e.g. #W0000000.
        item_ids: The item ids to return, e.g. ['1008292230'].
        payment_method_id: Where the refund goes: the original payment method or a gift card, e.g. gift_card_0000000.
    """
    return _result(_ops(runtime).return_delivered_order_items(order_id, item_ids, payment_method_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def exchange_delivered_order_items(  # noqa: D417
    order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str, runtime: SupportRuntime
) -> tuple[str, dict[str, Any]]:
    """Exchange items of a delivered order for other options of the same product; only once per order.

    Args:
        order_id: The order id, e.g. #W0000000.
        item_ids: The item ids to exchange, e.g. ['1008292230'].
        new_item_ids: The new item ids, in the same order, e.g. ['1008292231'].
        payment_method_id: The user's payment method paying or receiving the price difference, e.g. gift_card_0000000.
    """
    return _result(_ops(runtime).exchange_delivered_order_items(order_id, item_ids, new_item_ids, payment_method_id))


@tool(parse_docstring=True, response_format="content_and_artifact")
def transfer_to_human_agents(summary: str, runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:  # noqa: D417
    """Transfer the user to a human agent, only when the request is outside what these tools can do.

    Args:
        summary: A summary of the user's issue for the human agent.
    """
    return _result(_ops(runtime).transfer_to_human_agents(summary))


TAU2_TOOLS: tuple[BaseTool, ...] = (
    find_user_id_by_email,
    find_user_id_by_name_zip,
    get_user_details,
    get_order_details,
    get_product_details,
    get_item_details,
    list_all_product_types,
    calculate,
    cancel_pending_order,
    modify_pending_order_address,
    modify_pending_order_items,
    modify_pending_order_payment,
    modify_user_address,
    return_delivered_order_items,
    exchange_delivered_order_items,
    transfer_to_human_agents,
)
"""The 16 τ² retail tools, in the README's order."""

# Values the model can only know as placeholders: what the user wrote (e-mail, name, zip, address)
# and what redacted tool results showed it (a user id such as ``yusuf_rossi_9620`` may read as a name).
find_user_id_by_email.metadata = {PII_ARGS: ("email",)}
find_user_id_by_name_zip.metadata = {PII_ARGS: ("first_name", "last_name", "zip")}
get_user_details.metadata = {PII_ARGS: ("user_id",)}
modify_pending_order_address.metadata = {PII_ARGS: _ADDRESS_ARGS}
modify_user_address.metadata = {PII_ARGS: ("user_id", *_ADDRESS_ARGS)}


def tau2_registry(*, with_kefu_tools: bool = True) -> ToolRegistry:
    """The τ² tools, after Kefu's built-in ones unless ``with_kefu_tools`` is false.

    Kefu's graph plans calls to its own tools by intent (``lookup_order``, ``list_recent_orders``,
    ``open_ticket`` ...); with them registered those calls work on the τ² orders mirrored into Kefu's
    tables once the conversation has authenticated its user.
    """
    return ToolRegistry([*(BUILTIN_TOOLS if with_kefu_tools else ()), *TAU2_TOOLS])
