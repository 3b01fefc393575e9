"""τ²-bench's 16 retail tools as plain operations on the τ² records in Kefu's database.

The semantics follow τ²'s ``src/tau2/domains/retail/tools.py`` as its README and policy describe
them (the code itself is not copied): writes check the order status first; item modifications and
exchanges are allowed once per order (a modified order is ``pending (item modified)``, which no
longer counts as pending); payment methods must belong to the order's user; gift cards must cover
what they pay, are debited for what they pay and credited at once for refunds; cancellations and
payment changes append their refunds to the payment history. A failed check raises ``ToolError``
with τ²'s kind of message and changes nothing.

The LangChain tools (``evals.tau2.tools``) and the reference replay (``evals.tau2.score``) both run
these, so the agent's trajectory and the gold one change the database in exactly the same way.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from evals.tau2.db import (
    Record,
    Tau2OrderRow,
    Tau2ProductRow,
    Tau2SessionRow,
    Tau2UserRow,
    copy_record,
    sync_customer,
    sync_order,
)
from tools import ToolError

__all__ = ["CANCEL_REASONS", "TOOL_NAMES", "TRANSFER_MESSAGE", "RetailOps"]

CANCEL_REASONS: Final = ("no longer needed", "ordered by mistake")
TRANSFER_MESSAGE: Final = "Transfer successful"
TOOL_NAMES: Final = (
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_user_details",
    "get_order_details",
    "get_product_details",
    "get_item_details",
    "list_all_product_types",
    "calculate",
    "cancel_pending_order",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
    "exchange_delivered_order_items",
    "transfer_to_human_agents",
)
"""τ²'s retail tool names, in the README's order."""

_OPERATORS: Final[dict[type, Callable[..., float]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


class RetailOps:
    """The τ² retail operations on one database (Kefu's, holding the ``tau2_*`` tables)."""

    def __init__(self, engine: Engine) -> None:
        """Operate on ``engine``'s database."""
        self.engine = engine

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run the operation ``name`` with keyword ``arguments`` (how reference actions are replayed).

        Raises:
            ToolError: no such tool, or the operation refused.
        """
        if name not in TOOL_NAMES:
            raise ToolError(f"unknown tool {name}")
        try:
            return getattr(self, name)(**arguments)
        except TypeError as exc:  # wrong or missing arguments, as a model might write them
            raise ToolError(f"bad arguments for {name}: {exc}") from exc

    # -- reads ------------------------------------------------------------------------------
    def find_user_id_by_email(self, email: str) -> str:
        """The id of the user with this e-mail address (case-insensitive)."""
        wanted = email.strip().lower()
        with Session(self.engine) as session:
            for row in session.scalars(select(Tau2UserRow)):
                if str(row.record.get("email", "")).lower() == wanted:
                    return row.user_id
        raise ToolError("User not found")

    def find_user_id_by_name_zip(self, first_name: str, last_name: str, zip: str) -> str:
        """The id of the user with this name and default-address zip code.

        A redacted conversation may hand both name arguments the same full name (one ``<PERSON_n>``
        placeholder for "Yusuf Rossi"): repeated words are dropped before comparing.
        """
        words = f"{first_name} {last_name}".lower().split()
        wanted = " ".join(dict.fromkeys(words))
        with Session(self.engine) as session:
            for row in session.scalars(select(Tau2UserRow)):
                name = row.record.get("name") or {}
                full = f"{name.get('first_name', '')} {name.get('last_name', '')}".lower().strip()
                if full == wanted and str(row.record["address"].get("zip", "")) == zip.strip():
                    return row.user_id
        raise ToolError("User not found")

    def get_user_details(self, user_id: str) -> Record:
        """The user's profile: name, address, e-mail, payment methods, order ids."""
        with Session(self.engine) as session:
            return _user(session, user_id).record

    def get_order_details(self, order_id: str) -> Record:
        """The order: address, items, status, fulfilments, payment history."""
        with Session(self.engine) as session:
            return _order(session, order_id).record

    def get_product_details(self, product_id: str) -> Record:
        """The product with all its variants."""
        with Session(self.engine) as session:
            row = session.get(Tau2ProductRow, product_id.strip())
            if row is None:
                raise ToolError("Product not found")
            return row.record

    def get_item_details(self, item_id: str) -> Record:
        """One variant item, with the product it belongs to."""
        with Session(self.engine) as session:
            for row in session.scalars(select(Tau2ProductRow)):
                variant = row.record["variants"].get(item_id.strip())
                if variant is not None:
                    return {**variant, "product_id": row.product_id}
        raise ToolError("Item not found")

    def list_all_product_types(self) -> dict[str, str]:
        """Every product name and its product id, sorted by name."""
        with Session(self.engine) as session:
            rows = session.scalars(select(Tau2ProductRow)).all()
        return dict(sorted((row.record["name"], row.product_id) for row in rows))

    def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression (numbers, + - * /, parentheses), rounded to 2 decimals."""
        try:
            value = _evaluate(ast.parse(expression.strip(), mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError) as exc:
            raise ToolError(f"cannot calculate {expression!r}: {exc}") from exc
        return str(round(value, 2))

    def transfer_to_human_agents(self, summary: str) -> str:
        """Hand the user to a human; the conversation ends (the summary is for the human)."""
        return TRANSFER_MESSAGE

    # -- writes -----------------------------------------------------------------------------
    def cancel_pending_order(self, order_id: str, reason: str) -> Record:
        """Cancel a pending order; gift-card payments are refunded at once, others in 5-7 days."""
        if reason not in CANCEL_REASONS:
            raise ToolError(f"Invalid reason; it must be one of {list(CANCEL_REASONS)}")
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "pending":
                raise ToolError("Non-pending order cannot be cancelled")
            user_row = _user(session, order["user_id"])
            user = copy_record(user_row.record)
            refunds = [
                {"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]}
                for p in order["payment_history"]
            ]
            for refund in refunds:
                method = user["payment_methods"].get(refund["payment_method_id"])
                if method is not None and method["source"] == "gift_card":
                    method["balance"] = round(method["balance"] + refund["amount"], 2)
            order["status"] = "cancelled"
            order["cancel_reason"] = reason
            order["payment_history"] = [*order["payment_history"], *refunds]
            _save_order(session, row, order)
            _save_user(session, user_row, user)
            return order

    def modify_pending_order_address(
        self, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> Record:
        """Change the shipping address of a pending order."""
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "pending":
                raise ToolError("Non-pending order cannot be modified")
            order["address"] = _address(address1, address2, city, state, country, zip)
            _save_order(session, row, order)
            return order

    def modify_pending_order_items(
        self, order_id: str, item_ids: Sequence[str], new_item_ids: Sequence[str], payment_method_id: str
    ) -> Record:
        """Swap items of a pending order for other options of the same products (once per order)."""
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "pending":
                raise ToolError("Non-pending order cannot be modified")
            user_row = _user(session, order["user_id"])
            user = copy_record(user_row.record)
            difference, swaps = _price_difference(session, order, item_ids, new_item_ids)
            method = _payment_method(user, payment_method_id)
            if method["source"] == "gift_card" and method["balance"] < difference:
                raise ToolError("Insufficient gift card balance to pay for the new item")
            order["payment_history"] = [
                *order["payment_history"],
                {
                    "transaction_type": "payment" if difference > 0 else "refund",
                    "amount": abs(difference),
                    "payment_method_id": payment_method_id,
                },
            ]
            if method["source"] == "gift_card":
                method["balance"] = round(method["balance"] - difference, 2)
            for item, variant in swaps:
                item["item_id"], item["price"], item["options"] = (
                    variant["item_id"],
                    variant["price"],
                    variant["options"],
                )
            order["status"] = "pending (item modified)"
            _save_order(session, row, order)
            _save_user(session, user_row, user)
            return order

    def modify_pending_order_payment(self, order_id: str, payment_method_id: str) -> Record:
        """Pay a pending order with another of the user's payment methods; the old one is refunded."""
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "pending":
                raise ToolError("Non-pending order cannot be modified")
            user_row = _user(session, order["user_id"])
            user = copy_record(user_row.record)
            method = _payment_method(user, payment_method_id)
            history = order["payment_history"]
            if len(history) != 1 or history[0]["transaction_type"] != "payment":
                raise ToolError("There should be exactly one payment for a pending order")
            old_id, amount = history[0]["payment_method_id"], history[0]["amount"]
            if old_id == payment_method_id:
                raise ToolError("The new payment method should be different from the current one")
            if method["source"] == "gift_card" and method["balance"] < amount:
                raise ToolError("Insufficient gift card balance to pay for the order")
            order["payment_history"] = [
                *history,
                {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
                {"transaction_type": "refund", "amount": amount, "payment_method_id": old_id},
            ]
            if method["source"] == "gift_card":
                method["balance"] = round(method["balance"] - amount, 2)
            old = user["payment_methods"].get(old_id)
            if old is not None and old["source"] == "gift_card":
                old["balance"] = round(old["balance"] + amount, 2)
            _save_order(session, row, order)
            _save_user(session, user_row, user)
            return order

    def modify_user_address(
        self, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
    ) -> Record:
        """Change the user's default address."""
        with self._write() as session:
            user_row = _user(session, user_id)
            user = copy_record(user_row.record)
            user["address"] = _address(address1, address2, city, state, country, zip)
            _save_user(session, user_row, user)
            return user

    def return_delivered_order_items(self, order_id: str, item_ids: Sequence[str], payment_method_id: str) -> Record:
        """Request the return of delivered items; the refund goes to the original method or a gift card."""
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "delivered":
                raise ToolError("Non-delivered order cannot be returned")
            user = _user(session, order["user_id"]).record
            method = _payment_method(user, payment_method_id)
            if (
                payment_method_id != order["payment_history"][0]["payment_method_id"]
                and method["source"] != "gift_card"
            ):
                raise ToolError("Payment method should be either the original payment method or a gift card")
            _check_items(order, item_ids)
            order["status"] = "return requested"
            order["return_items"] = sorted(item_ids)
            order["return_payment_method_id"] = payment_method_id
            _save_order(session, row, order)
            return order

    def exchange_delivered_order_items(
        self, order_id: str, item_ids: Sequence[str], new_item_ids: Sequence[str], payment_method_id: str
    ) -> Record:
        """Request an exchange of delivered items for other options of the same products (once per order)."""
        with self._write() as session:
            row = _order(session, order_id)
            order = copy_record(row.record)
            if order["status"] != "delivered":
                raise ToolError("Non-delivered order cannot be exchanged")
            user = _user(session, order["user_id"]).record
            difference, _swaps = _price_difference(session, order, item_ids, new_item_ids)
            method = _payment_method(user, payment_method_id)
            if method["source"] == "gift_card" and method["balance"] < difference:
                raise ToolError("Insufficient gift card balance to pay for the price difference")
            order["status"] = "exchange requested"
            order["exchange_items"] = sorted(item_ids)
            order["exchange_new_items"] = sorted(new_item_ids)
            order["exchange_payment_method_id"] = payment_method_id
            order["exchange_price_difference"] = difference
            _save_order(session, row, order)
            return order

    # -- sessions ---------------------------------------------------------------------------
    def authenticate(self, conversation_id: str, user_id: str) -> None:
        """Remember that ``conversation_id`` located ``user_id`` (the runner then acts as that customer)."""
        with self._write() as session:
            session.merge(Tau2SessionRow(conversation_id=conversation_id, user_id=user_id))

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing changed) on a refusal."""
        with Session(self.engine) as session, session.begin():
            yield session


def _user(session: Session, user_id: str) -> Tau2UserRow:
    row = session.get(Tau2UserRow, user_id.strip())
    if row is None:
        raise ToolError("User not found")
    return row


def _order(session: Session, order_id: str) -> Tau2OrderRow:
    order_id = order_id.strip()
    row = session.get(Tau2OrderRow, order_id if order_id.startswith("#") else f"#{order_id}")
    if row is None:
        raise ToolError("Order not found")
    return row


def _save_order(session: Session, row: Tau2OrderRow, order: Record) -> None:
    row.record = order
    sync_order(session, order)


def _save_user(session: Session, row: Tau2UserRow, user: Record) -> None:
    row.record = user
    sync_customer(session, user)


def _payment_method(user: Record, payment_method_id: str) -> Record:
    method = user["payment_methods"].get(payment_method_id)
    if method is None:
        raise ToolError("Payment method not found")
    return method  # type: ignore[no-any-return]


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> Record:
    return {"address1": address1, "address2": address2, "city": city, "country": country, "state": state, "zip": zip}


def _check_items(order: Record, item_ids: Sequence[str]) -> None:
    if not item_ids:
        raise ToolError("Give at least one item id")
    ordered = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if list(item_ids).count(item_id) > ordered.count(item_id):
            raise ToolError(f"Item {item_id} not found in the order")


def _price_difference(
    session: Session, order: Record, item_ids: Sequence[str], new_item_ids: Sequence[str]
) -> tuple[float, list[tuple[Record, Record]]]:
    """What the new items cost more (or less) than the old ones, and (order item, new variant) pairs.

    Raises:
        ToolError: an old item is not in the order, the lists differ in length, or a new item is the
            same as the old, of another product, or unavailable.
    """
    _check_items(order, item_ids)
    if len(item_ids) != len(new_item_ids):
        raise ToolError("The number of items to be exchanged should match")
    remaining = list(order["items"])
    difference = 0.0
    swaps: list[tuple[Record, Record]] = []
    for item_id, new_item_id in zip(item_ids, new_item_ids, strict=True):
        item = next(i for i in remaining if i["item_id"] == item_id)
        remaining.remove(item)
        if new_item_id == item_id:
            raise ToolError("The new item id should be different from the old item id")
        product = session.get(Tau2ProductRow, item["product_id"])
        variant = product.record["variants"].get(new_item_id) if product is not None else None
        if variant is None or not variant.get("available"):
            raise ToolError(f"New item {new_item_id} not found or available")
        difference += float(variant["price"]) - float(item["price"])
        swaps.append((item, variant))
    return round(difference, 2), swaps


def _evaluate(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers, + - * / and parentheses are allowed")
