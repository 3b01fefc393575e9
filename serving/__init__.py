"""The composition root: HTTP API, web chat, CLI and LLM server launchers."""

__all__: list[str] = []
