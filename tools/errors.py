"""Errors meant for the model: a tool raises ``ToolError`` and the model reads the message."""

from __future__ import annotations

__all__ = ["ToolError", "explain"]


class ToolError(Exception):
    """A tool could not do what was asked; the message tells the model what to do next."""


def explain(error: Exception) -> str:
    """Turn a tool failure into the message the model sees (ToolNode's ``handle_tool_errors``).

    A ``ToolError`` is shown as is; anything else is an internal failure whose details the model
    (and so the customer) must not see.
    """
    if isinstance(error, ToolError):
        return f"Error: {error}"
    return "Error: the tool failed internally; apologise and offer a human colleague."
