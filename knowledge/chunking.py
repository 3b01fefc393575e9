r"""Chunks: the retrievable pieces of a loaded document, and how a document is cut into them.

``chunk_document`` cuts every section of a ``knowledge.loaders.Document`` into ``Chunk``s of at
most ``max_chars`` characters, at paragraph boundaries first, then at sentence boundaries
(``。！？`` and ``.!?``, see ``split_sentences``), and mid-sentence only when one sentence alone is
too long; CSV rows are never split. A chunk is embedded with its context
(``"<title> — <heading>\n<text>"``) so that a short answer still lands near questions about its
topic, but stored and returned as its own text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from core.errors import InvalidInputError
from core.types import Lang

if TYPE_CHECKING:  # knowledge.loaders imports this module; only the type is needed here
    from knowledge.loaders import Document

__all__ = ["TITLE_SEPARATOR", "Chunk", "chunk_document", "split_sentences"]

TITLE_SEPARATOR: Final = " — "

# The CJK character class, shared with knowledge.loaders and knowledge.formats (both import this module).
_CJK_CHARS: Final = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK: Final = re.compile(f"[{_CJK_CHARS}]")

_SENTENCE: Final = re.compile(r".+?(?:[。！？!?]+|[.](?=\s|$)|$)['\"”’)）」』]*\s*", re.DOTALL)
_CLAUSE_BREAK: Final = re.compile(r"[，、；;,:：]\s*")
_SPACE: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable piece of a document, with everything the store keeps about it."""

    id: str
    """``<source>#<n>`` (1-based) or ``<source>#row-<n>`` for CSV rows."""
    source: str
    title: str
    """``"<title> — <heading>"``, or the document title alone."""
    text: str
    lang: Lang
    category: str
    products: tuple[str, ...] = field(default=())
    format: str = ""
    """The document's format: ``md``, ``html``, ``txt`` or ``csv``."""

    @property
    def embed_text(self) -> str:
        """What is embedded: the title line gives a short chunk its context."""
        return f"{self.title}\n{self.text}"


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each keeping its end punctuation (``。！？`` or ``.!?``)."""
    return [sentence for sentence in (m.group(0).strip() for m in _SENTENCE.finditer(text)) if sentence]


def chunk_document(document: Document, max_chars: int = 500) -> list[Chunk]:
    """Cut ``document`` into chunks of at most ``max_chars`` characters.

    One chunk per section when it fits; longer sections are packed paragraph by paragraph, then
    sentence by sentence, and a sentence longer than ``max_chars`` is cut at a comma or a space
    (or hard, for unbroken text). CSV rows are never split.

    Args:
        document: A loaded document.
        max_chars: The longest chunk text, in characters.

    Returns:
        The chunks in reading order, ids ``<source>#1``, ``<source>#2``, ... (``#row-<n>`` for rows).

    Raises:
        InvalidInputError: ``max_chars`` is below 50.
    """
    if max_chars < 50:
        raise InvalidInputError(f"chunk size must be at least 50 characters, got {max_chars}")
    chunks: list[Chunk] = []
    number = 0
    for section in document.sections:
        heading = section.heading if section.heading and section.heading != document.title else ""
        title = f"{document.title}{TITLE_SEPARATOR}{heading}" if heading else document.title
        pieces = [section.text.strip()] if section.key else list(_pack(section.text, max_chars))
        for piece in pieces:
            if not piece:
                continue
            if section.key:
                chunk_id = f"{document.source}#{section.key}"
            else:
                number += 1
                chunk_id = f"{document.source}#{number}"
            chunks.append(
                Chunk(
                    id=chunk_id,
                    source=document.source,
                    title=title,
                    text=piece,
                    lang=section.lang or document.lang,
                    category=section.category or document.category,
                    products=document.products if section.products is None else section.products,
                    format=document.format,
                )
            )
    return chunks


def _pack(text: str, max_chars: int) -> Iterator[str]:
    """Greedy packing of paragraphs, then sentences, then clauses, into chunks of at most ``max_chars``."""
    units: list[tuple[str, str]] = []  # (piece, what joins it to the piece before)
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append((paragraph, "\n\n"))
            continue
        for line_no, line in enumerate(paragraph.split("\n")):
            for sentence_no, sentence in enumerate(split_sentences(line)):
                for piece_no, piece in enumerate(_cut(sentence, max_chars)):
                    if line_no == sentence_no == piece_no == 0:
                        separator = "\n\n"
                    elif sentence_no == piece_no == 0:
                        separator = "\n"  # the next list item or table row
                    else:
                        separator = "" if _CJK.match(piece[0]) else " "
                    units.append((piece, separator))
    # Aim for equal chunks rather than full ones and a scrap: 520 characters become 260 + 260,
    # not 500 + 20, so no chunk loses its context.
    total = sum(len(piece) + len(separator) for piece, separator in units)
    pieces_needed = -(-total // max_chars)
    target = min(max_chars, total * 11 // (10 * max(1, pieces_needed)) + 1)
    current = ""
    for piece, separator in units:
        if current and len(current) + len(separator) + len(piece) <= target:
            current += separator + piece
            continue
        if current:
            yield current
        current = piece
    if current:
        yield current


def _cut(sentence: str, max_chars: int) -> Iterator[str]:
    """A too-long sentence cut at the last comma in each window, else the last space, else hard."""
    while len(sentence) > max_chars:
        window = sentence[:max_chars]
        cut = 0
        for pattern in (_CLAUSE_BREAK, _SPACE):
            ends = [m.end() for m in pattern.finditer(window) if m.end() >= max_chars // 2]
            if ends:
                cut = ends[-1]
                break
        cut = cut or max_chars
        yield sentence[:cut].strip()
        sentence = sentence[cut:].strip()
    if sentence:
        yield sentence
