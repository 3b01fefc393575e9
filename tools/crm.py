"""CRM tools: the customer's 360° profile, and changing their contact details."""

from __future__ import annotations

import re
from typing import Any, Final

from langchain_core.tools import tool

from core.errors import InvalidInputError
from core.types import CustomerInsight
from tools._runtime import PII_ARGS, SupportRuntime, dumps
from tools.errors import ToolError

__all__ = ["get_customer_profile", "update_contact"]

_PHONE_RE: Final = re.compile(r"^\+?[0-9][0-9 ()\-]{5,22}[0-9]$")
_EMAIL_RE: Final = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,}$")


_PERSONAL: Final = {"name", "email", "phone", "city"}
"""Customer fields the model never sees: answering needs none of them, and each is personal data."""
_DRIVERS: Final = 3


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_customer_profile(runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Get the customer's profile: membership tier, segment, lifetime value, recent orders and open tickets."""
    context = runtime.context
    profile = context.store.customer_profile(context.customer_id)
    if profile is None:
        raise ToolError("This customer has no profile.")
    artifact = profile.model_dump(mode="json", exclude={"customer": _PERSONAL})
    if context.insight is not None:
        artifact["insight"] = _insight_facts(context.insight)
    return dumps(artifact), artifact


def _insight_facts(insight: CustomerInsight) -> dict[str, Any]:
    """Segment, RFM and rounded scores with the names of their top drivers: no feature values, nothing personal."""
    return {
        "segment": insight.segment,
        "rfm": insight.rfm,
        **{
            target: {
                "score": round(prediction.score, 2),
                "drivers": [c.feature for c in prediction.contributions[:_DRIVERS]],
            }
            for target, prediction in (("churn_30d", insight.churn), ("repurchase_3d", insight.repurchase))
            if prediction is not None
        },
    }


@tool(parse_docstring=True, response_format="content_and_artifact")
def update_contact(
    runtime: SupportRuntime, phone: str | None = None, email: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Change the phone number or e-mail address on the customer's account.

    Pass the value exactly as the customer wrote it, placeholder included (e.g. <CN_MOBILE_1>):
    the real value is filled in before the change is made.

    Args:
        phone: The new phone number, or leave it out.
        email: The new e-mail address, or leave it out.
    """
    phone = phone.strip() if phone else None
    email = email.strip() if email else None
    if phone is None and email is None:
        raise ToolError("Give the new phone number or e-mail address.")
    if phone is not None and (not _PHONE_RE.match(phone) or not 7 <= sum(c.isdigit() for c in phone) <= 15):
        raise ToolError("That is not a phone number; ask the customer to write it again.")
    if email is not None and not _EMAIL_RE.match(email):
        raise ToolError("That is not an e-mail address; ask the customer to write it again.")
    context = runtime.context
    try:
        customer = context.store.update_contact(context.customer_id, phone=phone, email=email)
    except InvalidInputError as exc:
        raise ToolError(f"{exc}; the customer should use another one.") from exc
    changed = [name for name, value in (("phone", phone), ("email", email)) if value is not None]
    artifact = {"updated": changed, "phone": customer.phone, "email": customer.email}
    return dumps(artifact), artifact


update_contact.metadata = {PII_ARGS: ("phone", "email")}
