"""The τ² user simulator: an LLM playing the customer from a task's ``user_scenario``.

As in τ²: the system prompt holds the scenario; the conversation is shown to the simulator with
the roles turned round (the agent's messages are its "user" turns, its own are "assistant"
turns); it writes the next customer message, and ``###STOP###`` (or ``###TRANSFER###``,
``###OUT-OF-SCOPE###``) as a message of its own ends the conversation. The prompt is
``user_prompt.md`` beside this module. Any OpenAI-compatible endpoint works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = ["STOP_TOKENS", "UserSimulator", "UserTurns", "format_scenario", "is_stop"]

STOP_TOKENS: Final = ("###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###")
_PROMPT: Final = Path(__file__).with_name("user_prompt.md")
_SCENARIO_FIELDS: Final = (
    ("reason_for_call", "Reason for the call"),
    ("known_info", "What you know"),
    ("unknown_info", "What you do not know"),
    ("task_instructions", "How to behave"),
)


def format_scenario(user_scenario: dict[str, Any]) -> str:
    """The scenario as the simulator reads it: persona, then the instruction fields τ² defines.

    Example:
        >>> print(format_scenario({"instructions": {"reason_for_call": "Cancel #W1.", "known_info": "You are Al."}}))
        Reason for the call: Cancel #W1.
        What you know: You are Al.
    """
    lines: list[str] = []
    if user_scenario.get("persona"):
        lines.append(f"Persona: {user_scenario['persona']}")
    instructions = user_scenario.get("instructions")
    if isinstance(instructions, str):
        lines.append(instructions)
    elif isinstance(instructions, dict):
        lines += [f"{label}: {instructions[key]}" for key, label in _SCENARIO_FIELDS if instructions.get(key)]
    return "\n".join(lines)


def is_stop(message: str) -> bool:
    """Whether the simulator ended the conversation with this message."""
    return any(token in message for token in STOP_TOKENS)


@dataclass
class UserTurns:
    """One simulated customer's side of one conversation."""

    simulator: UserSimulator
    system: str
    messages: list[dict[str, str]] = field(default_factory=list)

    def next_message(self, agent_message: str) -> str:
        """Read the agent's message and write the customer's next one."""
        self.messages.append({"role": "user", "content": agent_message})
        text = self.simulator.complete([{"role": "system", "content": self.system}, *self.messages])
        self.messages.append({"role": "assistant", "content": text})
        return text


@dataclass
class UserSimulator:
    """Writes customer messages with a chat model behind an OpenAI-compatible endpoint."""

    base_url: str
    """Ending in ``/v1``."""
    model: str = "default"
    temperature: float = 0.0
    api_key: str = "not-needed"
    timeout_s: float = 300.0
    max_tokens: int = 256

    def start(self, user_scenario: dict[str, Any]) -> UserTurns:
        """A new conversation for the customer of ``user_scenario``."""
        system = _PROMPT.read_text(encoding="utf-8").replace("{scenario}", format_scenario(user_scenario))
        return UserTurns(self, system)

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's reply to ``messages``.

        Raises:
            httpx.HTTPError: the endpoint failed or answered with an error status.
        """
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = httpx.post(
            f"{self.base_url.rstrip('/')}/chat/completions", json=body, headers=headers, timeout=self.timeout_s
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"].get("content") or ""
        return str(content).strip()
