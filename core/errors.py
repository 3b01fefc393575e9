"""Kefu's error tree, for operators (errors meant for the model are ``tools.ToolError``).

    KefuError
    ├── ConfigError          settings that cannot work (missing URL, unsafe value)
    ├── NotFoundError        an id that names nothing (customer, order, conversation)
    ├── InvalidInputError    a request the agent refuses (empty or oversized text)
    ├── AuthError            no or a wrong credential (API key, session token, agent login)
    ├── ForbiddenError       a valid credential that may not do this (wrong role, another's conversation)
    ├── ConflictError        the request clashes with the current state (a handoff another agent took)
    ├── RateLimitError       too many requests for a key or a conversation; says when to retry
    ├── ModelError           model files: fetch failed, checksum mismatch
    └── BackendError         the LLM server: cannot start, not healthy, unreachable

HTTP status codes are chosen only in ``serving/``.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BackendError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "KefuError",
    "ModelError",
    "NotFoundError",
    "RateLimitError",
]


class KefuError(Exception):
    """Base of every error Kefu raises on purpose."""


class ConfigError(KefuError):
    """Settings that cannot work."""


class NotFoundError(KefuError):
    """An id that names nothing."""


class InvalidInputError(KefuError):
    """A request the agent refuses, with the reason in the message."""


class ModelError(KefuError):
    """Model files could not be fetched or failed verification."""


class BackendError(KefuError):
    """The LLM server could not be started or reached."""


class AuthError(KefuError):
    """No credential, or one that is wrong, expired or revoked."""


class ForbiddenError(KefuError):
    """A valid credential that may not do this."""


class ConflictError(KefuError):
    """The request clashes with the current state."""


class RateLimitError(KefuError):
    """Too many requests; ``retry_after_s`` says when the next one is allowed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
