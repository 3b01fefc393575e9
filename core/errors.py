"""Kefu's error tree, for operators (errors meant for the model are ``tools.ToolError``).

    KefuError
    ├── ConfigError          settings that cannot work (missing URL, unsafe value)
    ├── NotFoundError        an id that names nothing (customer, order, conversation)
    ├── InvalidInputError    a request the agent refuses (empty or oversized text)
    ├── ModelError           model files: fetch failed, checksum mismatch
    └── BackendError         the LLM server: cannot start, not healthy, unreachable

HTTP status codes are chosen only in ``serving/``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "InvalidInputError",
    "KefuError",
    "ModelError",
    "NotFoundError",
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
