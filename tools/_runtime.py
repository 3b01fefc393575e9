"""Shared helpers for built-in tools."""

from __future__ import annotations

import json
from typing import Any

from langgraph.prebuilt import ToolRuntime

from core.context import SupportContext

__all__ = ["PII_ARGS", "SupportRuntime", "dumps"]

PII_ARGS = "pii_args"
"""Tool metadata key naming the arguments that receive real values instead of placeholders.

The model only ever sees placeholders such as ``<CN_MOBILE_1>``. Before a tool runs, the graph
replaces the placeholders in these arguments (and only these) with the values from the
conversation's vault; every other argument keeps its placeholders, so tickets and handoff records
store none of the personal data.
"""

SupportRuntime = ToolRuntime[SupportContext]
"""What every built-in tool receives: the session's context, never shown to the model."""


def dumps(value: Any) -> str:
    """Compact JSON for the model, keeping Chinese readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
