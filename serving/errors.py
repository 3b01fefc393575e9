"""The one mapping from Kefu's errors to HTTP status codes."""

from __future__ import annotations

from core.errors import (
    AuthError,
    BackendError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    KefuError,
    NotFoundError,
    RateLimitError,
)

__all__ = ["status_of"]

_STATUS: dict[type[KefuError], int] = {
    InvalidInputError: 422,
    AuthError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    RateLimitError: 429,
    BackendError: 503,
    ConfigError: 500,
}


def status_of(exc: KefuError) -> int:
    """The HTTP status for an error Kefu raised on purpose."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
