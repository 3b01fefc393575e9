"""The one mapping from Kefu's errors to HTTP status codes, and the serving layer's own error."""

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

__all__ = ["StorageUnavailableError", "retry_after_of", "status_of"]


class StorageUnavailableError(BackendError):
    """A database was locked or could not be opened: the turn was not recorded and may be retried.

    ``retry_after_s`` says when a retry has a chance; the conversation is as it was before the
    message, so sending the same message (same ``message_id``) again is safe.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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


def retry_after_of(exc: KefuError) -> int | None:
    """The ``Retry-After`` header value (whole seconds, at least 1) for an error that says when to retry."""
    if isinstance(exc, RateLimitError | StorageUnavailableError):
        return max(1, round(exc.retry_after_s))
    return None
