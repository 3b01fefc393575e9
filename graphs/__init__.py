"""LangGraph graphs that wire the agent, tools and knowledge together."""

from graphs.checkpoint import checkpointer_for, sqlite_checkpointer
from graphs.state import SupportState
from graphs.support import AgentDeps, build_graph, warm_up

__all__ = ["AgentDeps", "SupportState", "build_graph", "checkpointer_for", "sqlite_checkpointer", "warm_up"]
