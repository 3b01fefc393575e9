r"""Company documents from files: Markdown, HTML, PDF-extracted text and CSV Q&A, then chunks.

A loader turns one file into a ``Document``: a title, a language, a category, the products it is
about, and its ``Section``s (text under one heading). ``chunk_document`` then cuts every section
into ``Chunk``s of at most ``max_chars`` characters, at paragraph boundaries first, then at
sentence boundaries (``。！？`` and ``.!?``), and mid-sentence only when one sentence alone is too
long. A chunk is embedded with its context (``"<title> — <heading>\n<text>"``) so that a short
answer still lands near questions about its topic, but stored and returned as its own text.

Formats: ``.md``/``.markdown``, ``.html``/``.htm``, ``.txt`` (text extracted from a PDF) and
``.csv`` (Q&A rows); ``knowledge.formats`` holds a reader for each and says exactly what it
accepts. This module holds the document types, ``load_document`` (which reads a file and hands it
to the reader for its suffix), ``read_text``, ``detect_lang`` and the metadata fallbacks every
reader shares; ``Chunk``, ``chunk_document`` and ``split_sentences`` come from
``knowledge.chunking`` and are re-exported here.

Missing metadata falls back to the file name (a ``.zh.``/``.en.`` infix), the text (CJK or not),
the parent folder (category, else ``general``) and the first heading or the file stem (title).
Any file that cannot be read as one of these raises ``DocumentError`` naming it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from core.errors import InvalidInputError
from core.types import Lang
from knowledge.chunking import _CJK, Chunk, chunk_document, split_sentences
from knowledge.chunking import TITLE_SEPARATOR as TITLE_SEPARATOR

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Document",
    "DocumentError",
    "Section",
    "chunk_document",
    "detect_lang",
    "load_document",
    "read_text",
    "split_sentences",
]

SUPPORTED_SUFFIXES: Final = frozenset({".md", ".markdown", ".html", ".htm", ".txt", ".csv"})
"""File name suffixes (lower case) that ``load_document`` reads."""

CSV_HEADER: Final = ("question", "answer", "lang", "category", "products")
DEFAULT_CATEGORY: Final = "general"

_LATIN_WORD: Final = re.compile(r"[A-Za-z]+")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0e-\x1f]")
_SKU: Final = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
_CATEGORY: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class DocumentError(InvalidInputError):
    """A file that cannot be read as a company document; the message names the file and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        """Name the offending ``path`` and the ``reason`` it was refused."""
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Section:
    """Text under one heading; CSV rows are sections that carry their own metadata."""

    heading: str
    """The heading, or ``""`` for text before the first heading."""
    text: str
    """Paragraphs separated by blank lines; lines inside a paragraph are list items or table rows."""
    key: str | None = None
    """A fixed chunk-id suffix (``row-3``): the section becomes exactly one chunk, never split."""
    lang: Lang | None = None
    """Overrides the document's language (CSV rows)."""
    category: str | None = None
    """Overrides the document's category (CSV rows)."""
    products: tuple[str, ...] | None = None
    """Overrides the document's products (CSV rows)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One loaded file: metadata and sections, not yet chunked."""

    source: str
    """The source id the store files it under (a ``/``-separated path relative to the ingest root)."""
    title: str
    lang: Lang
    category: str
    products: tuple[str, ...]
    sections: tuple[Section, ...]
    format: str
    """``md``, ``html``, ``txt`` or ``csv``."""


# --------------------------------------------------------------------------------------- loading


def load_document(path: Path, source: str | None = None, *, data: bytes | None = None) -> Document:
    """Read ``path`` as a company document.

    Args:
        path: A ``.md``, ``.html``/``.htm``, ``.txt`` or ``.csv`` file.
        source: The id to file it under; defaults to the file name. Its parent folder is the
            fallback category.
        data: The file's bytes, if already read (the store hashes them first).

    Returns:
        The document with its metadata and sections.

    Raises:
        DocumentError: the file is missing, binary, not UTF-8, of an unsupported type, has malformed
            metadata (front matter, CSV header, an unknown language) or holds no text.
    """
    source = source or path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(path, f"unsupported file type {suffix or '(none)'!r}; use {_suffix_list()}")
    text = read_text(path, data)
    # The readers build on this module's types and fallbacks, so they are imported when first
    # needed: importing knowledge.formats at the top would be an import cycle.
    from knowledge.formats import READERS

    reader = READERS[suffix]
    document = reader(path, source, text)
    if not any(section.text.strip() for section in document.sections):
        raise DocumentError(path, "no text to index")
    return document


def read_text(path: Path, data: bytes | None = None) -> str:
    r"""The file's text: UTF-8 (a BOM is allowed), line endings normalised to ``\n``.

    Args:
        path: The file, named in errors.
        data: Its bytes, if already read.

    Raises:
        DocumentError: the file cannot be read, looks binary or is not valid UTF-8.
    """
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DocumentError(path, f"cannot read: {error.strerror or error}") from error
    if b"\x00" in data[:8192]:
        raise DocumentError(path, "looks like a binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(path, f"not valid UTF-8 (byte {error.start}: {error.reason})") from error
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = len(_CONTROL.findall(text))
    if controls > max(8, len(text) // 100):
        raise DocumentError(path, f"looks like a binary file ({controls} control characters)")
    return _CONTROL.sub("", text)


def detect_lang(text: str) -> Lang:
    """Chinese when the text has at least as many CJK characters as Latin words, else English.

    A Chinese character carries about as much as an English word, so a Chinese sentence naming
    ``Lumo Air Pro`` stays Chinese and an English one quoting ``王芳`` stays English.
    """
    cjk = len(_CJK.findall(text))
    return Lang.ZH if cjk and cjk >= len(_LATIN_WORD.findall(text)) else Lang.EN


def _suffix_list() -> str:
    return ", ".join(sorted(SUPPORTED_SUFFIXES))


def _name_lang(path: Path) -> Lang | None:
    parts = path.name.lower().split(".")[1:-1]
    for part in reversed(parts):
        if part in (Lang.ZH.value, Lang.EN.value):
            return Lang(part)
    return None


def _stem_title(path: Path) -> str:
    parts = path.name.split(".")
    base = parts[0] if len(parts) > 1 else path.name
    words = re.sub(r"[-_]+", " ", base).strip()
    if words.isascii() and words.isalpha() and len(words) <= 4:
        return words.upper()  # an abbreviation: faq.csv is the "FAQ"
    return words[:1].upper() + words[1:] if words else path.name


def _folder_category(source: str) -> str:
    return _category(PurePosixPath(source).parent.name) or DEFAULT_CATEGORY


def _category(value: str) -> str:
    return re.sub(r"\s+", "_", value.strip().lower())


def _lang_value(path: Path, value: Any, where: str) -> Lang | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip().lower()
    aliases = {"zh": Lang.ZH, "zh-cn": Lang.ZH, "zh_cn": Lang.ZH, "zh-hans": Lang.ZH, "en": Lang.EN, "en-us": Lang.EN}
    if text not in aliases:
        raise DocumentError(path, f"{where}: unsupported lang {value!r}; use 'zh' or 'en'")
    return aliases[text]


def _category_value(path: Path, value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    category = _category(str(value))
    if not _CATEGORY.match(category):
        raise DocumentError(path, f"{where}: category {value!r} must be a word like 'returns'")
    return category


def _products_value(path: Path, value: Any, where: str, separator: str = ",") -> tuple[str, ...]:
    if value is None:
        return ()
    items: Iterable[Any]
    if isinstance(value, str):
        items = re.split(f"[{re.escape(separator)},;]", value)
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise DocumentError(path, f"{where}: products must be a list of SKUs, got {type(value).__name__}")
    products: list[str] = []
    for item in items:
        sku = unicodedata.normalize("NFKC", str(item)).strip().upper()
        if not sku:
            continue
        if not _SKU.match(sku):
            raise DocumentError(path, f"{where}: {item!r} is not a product SKU like 'HOM-001'")
        if sku not in products:
            products.append(sku)
    return tuple(products)


def _document(
    path: Path,
    source: str,
    fmt: str,
    sections: list[Section],
    *,
    title: str | None,
    lang: Lang | None,
    category: str | None,
    products: tuple[str, ...],
) -> Document:
    body = "\n".join(f"{s.heading}\n{s.text}" for s in sections)
    if not title:
        title = next((s.heading for s in sections if s.heading), None) or _stem_title(path)
    return Document(
        source=source,
        title=_one_line(title),
        lang=lang or _name_lang(path) or detect_lang(body),
        category=category or _folder_category(source),
        products=products,
        sections=tuple(s for s in sections if s.text.strip()),
        format=fmt,
    )


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
