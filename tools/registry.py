"""The tool registry: which tools the agent has, by name."""

from __future__ import annotations

from collections.abc import Iterable

from langchain_core.tools import BaseTool

from tools.catalog import search_products
from tools.crm import get_customer_profile, update_contact
from tools.knowledge import compare_products, recommend_products, search_knowledge
from tools.orders import list_recent_orders, lookup_order
from tools.tickets import open_ticket, request_human

__all__ = ["BUILTIN_TOOLS", "ToolRegistry"]

BUILTIN_TOOLS: tuple[BaseTool, ...] = (
    lookup_order,
    list_recent_orders,
    get_customer_profile,
    update_contact,
    search_products,
    search_knowledge,
    recommend_products,
    compare_products,
    open_ticket,
    request_human,
)


class ToolRegistry:
    """An ordered, name-addressed set of tools."""

    def __init__(self, tools: Iterable[BaseTool] = BUILTIN_TOOLS) -> None:
        """Register ``tools``; names must be unique."""
        self._tools: dict[str, BaseTool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: BaseTool) -> None:
        """Register one more tool.

        Raises:
            ValueError: a tool with that name is already registered.
        """
        if item.name in self._tools:
            raise ValueError(f"a tool named {item.name!r} is already registered")
        self._tools[item.name] = item

    def __getitem__(self, name: str) -> BaseTool:
        """The tool called ``name``."""
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        """Whether a tool called ``name`` is registered."""
        return name in self._tools

    @property
    def names(self) -> list[str]:
        """Registered tool names, in order."""
        return list(self._tools)

    @property
    def tools(self) -> list[BaseTool]:
        """Registered tools, in order."""
        return list(self._tools.values())
