"""Tools the agent can call: typed functions whose schemas come from their signatures and docstrings."""

from tools._runtime import PII_ARGS
from tools.errors import ToolError, explain
from tools.registry import BUILTIN_TOOLS, ToolRegistry

__all__ = ["BUILTIN_TOOLS", "PII_ARGS", "ToolError", "ToolRegistry", "explain"]
