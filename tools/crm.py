"""CRM tools: the customer's 360° profile."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool

from tools._runtime import SupportRuntime, dumps
from tools.errors import ToolError

__all__ = ["get_customer_profile"]


@tool(parse_docstring=True, response_format="content_and_artifact")
def get_customer_profile(runtime: SupportRuntime) -> tuple[str, dict[str, Any]]:
    """Get the customer's profile: membership tier, lifetime value, recent orders and open tickets."""
    context = runtime.context
    profile = context.store.customer_profile(context.customer_id)
    if profile is None:
        raise ToolError("This customer has no profile.")
    artifact = profile.model_dump(mode="json", exclude={"customer": {"email", "phone"}})
    return dumps(artifact), artifact
