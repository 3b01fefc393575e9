"""Shared helpers for built-in tools."""

from __future__ import annotations

import json
from typing import Any

from langgraph.prebuilt import ToolRuntime

from core.context import SupportContext

__all__ = ["SupportRuntime", "dumps"]

SupportRuntime = ToolRuntime[SupportContext]
"""What every built-in tool receives: the session's context, never shown to the model."""


def dumps(value: Any) -> str:
    """Compact JSON for the model, keeping Chinese readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
