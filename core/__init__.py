"""The bottom layer: domain types, the typed context, ports, errors and settings."""

from core.context import SupportContext
from core.errors import KefuError
from core.settings import Settings

__all__ = ["KefuError", "Settings", "SupportContext"]
