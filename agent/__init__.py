"""The brain: dialogue state machine, understanding, confidence policy, rule replies, PII guard, LLM client."""

from agent.llm import LlmGateway, LlmUnavailable, make_chat_model
from agent.machine import DialogueMachine, DialogueState, Intent, TurnFacts, mermaid

__all__ = [
    "DialogueMachine",
    "DialogueState",
    "Intent",
    "LlmGateway",
    "LlmUnavailable",
    "TurnFacts",
    "make_chat_model",
    "mermaid",
]
