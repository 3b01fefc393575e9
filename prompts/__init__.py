"""Prompt templates as files, one per purpose and language, loaded by name."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["load_prompt"]

_LANGS = ("en", "zh")


@cache
def load_prompt(name: str, lang: str) -> str:
    """Return the text of ``prompts/{lang}/{name}.md``.

    Raises:
        KeyError: no such prompt in that language.
    """
    if lang not in _LANGS:
        raise KeyError(f"no prompts for language {lang!r}; have {_LANGS}")
    resource = resources.files(__package__).joinpath(lang, f"{name}.md")
    if not resource.is_file():
        raise KeyError(f"no prompt {name!r} in {lang!r}")
    return resource.read_text(encoding="utf-8").strip()
