"""Logging: one JSON object per line, carrying ids, states and timings but never customer text.

Log calls in Kefu pass facts as ``extra`` fields (``conversation_id``, ``handoff_id``, ...), never
message text; what could still carry a secret (a session token in an access-log URL) is masked here.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

_FIELDS = (
    "conversation_id",
    "handoff_id",
    "agent_id",
    "customer_id",
    "channel",
    "status",
    "intent",
    "state",
    "route",
    "latency_ms",
    "msg_id",
)
_SECRETS = re.compile(r"((?:token|key|password|access_token|secret)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def _scrub(text: str) -> str:
    return _BEARER.sub(r"\1***", _SECRETS.sub(r"\1***", text))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra ids}``, secrets in URLs masked."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _scrub(record.getMessage()),
        }
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = _scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines, secrets in URLs masked as in the JSON format."""

    def format(self, record: logging.LogRecord) -> str:
        """One scrubbed line."""
        return _scrub(super().format(record))


def configure_logging(fmt: str = "json", *, verbose: bool = True) -> None:
    """Send every logger (uvicorn's too) to stderr as JSON lines or plain text."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
