r"""The readers, one per file format: each turns a file's text into a ``knowledge.loaders.Document``.

Formats, exactly as the content writers produce them:

- ``.md``: optional YAML front matter (``title``, ``lang``, ``category``, ``products``) between
  ``---`` lines; sections at ``#``, ``##`` and ``###`` headings.
- ``.html``/``.htm``: ``<title>`` and ``<meta name="kefu-lang|kefu-category|kefu-products">``;
  visible text only (no script or style); sections at ``h1``-``h3``; list items and table rows
  each on their own line.
- ``.txt`` (text extracted from a PDF): optional ``Title:``/``Lang:``/``Category:``/``Products:``
  header lines and a blank line; page furniture (``— 3 —``, ``Page 3 of 7``, ``第 3 页``) and the
  running headers next to it are dropped, hard-wrapped lines re-flowed into paragraphs, English
  words hyphenated across a line break joined; numbered (``1. Scope``), ``第一条`` and all-caps
  short lines start sections.
- ``.csv``: header ``question,answer,lang,category,products`` (products ``;``-separated); one chunk
  per row, ``"Q: …\nA: …"`` (``"问：…\n答：…"`` in Chinese), id ``<source>#row-<n>``.

``knowledge.loaders.load_document`` reads the file and picks the reader for its suffix from
``READERS``; the document types and the metadata fallbacks every reader shares (file name, text,
folder, first heading) are in ``knowledge.loaders``.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import yaml

from core.types import Lang
from knowledge.chunking import _CJK
from knowledge.loaders import (
    CSV_HEADER,
    Document,
    DocumentError,
    Section,
    _category_value,
    _document,
    _folder_category,
    _lang_value,
    _name_lang,
    _one_line,
    _products_value,
    _stem_title,
    detect_lang,
)

__all__ = ["READERS"]

_CJK_PUNCT: Final = "，。！？；：、（）「」『』“”《》"


# -------------------------------------------------------------------------------------- Markdown

_MD_HEADING: Final = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_MD_FENCE: Final = re.compile(r"^\s*(```|~~~)")
_MD_TABLE_RULE: Final = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_IMAGE: Final = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK: Final = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS: Final = re.compile(r"(\*\*|__)(.+?)\1")
_MD_CODE: Final = re.compile(r"`([^`]+)`")
_FRONT_MATTER_KEYS: Final = frozenset({"title", "lang", "category", "products"})


def _read_markdown(path: Path, source: str, text: str) -> Document:
    meta, body = _front_matter(path, text)
    sections: list[Section] = []
    lines: list[str] = []
    heading, fenced = "", False
    for line in body.split("\n"):
        if _MD_FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _MD_HEADING.match(line)
        if match and len(match.group(1)) <= 3:
            sections.append(Section(heading, _paragraphs(lines, merge=True)))
            heading, lines = _md_inline(match.group(2)), []
        elif match:  # h4 and deeper: a paragraph of its own inside the section
            lines.extend(("", _md_inline(match.group(2)), ""))
        elif not _MD_TABLE_RULE.match(line) or fenced:
            lines.append(line.rstrip() if fenced else _md_inline(line.rstrip()))
    sections.append(Section(heading, _paragraphs(lines, merge=True)))
    return _document(
        path,
        source,
        "md",
        sections,
        title=_optional_str(meta.get("title")),
        lang=_lang_value(path, meta.get("lang"), "front matter"),
        category=_category_value(path, meta.get("category"), "front matter"),
        products=_products_value(path, meta.get("products"), "front matter"),
    )


def _front_matter(path: Path, text: str) -> tuple[dict[str, Any], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise DocumentError(path, "front matter opened with '---' is never closed")
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        raise DocumentError(path, f"malformed front matter: {_one_line(str(error))}") from error
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise DocumentError(path, "front matter must be a mapping of keys like 'title:' and 'lang:'")
    meta = {str(key).strip().lower(): value for key, value in meta.items()}
    unknown = sorted(set(meta) - _FRONT_MATTER_KEYS)
    if unknown:
        raise DocumentError(path, f"unknown front matter keys {unknown}; use {sorted(_FRONT_MATTER_KEYS)}")
    return meta, "\n".join(lines[end + 1 :])


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    text = _one_line(str(value))
    return text or None


def _md_inline(line: str) -> str:
    line = _MD_IMAGE.sub(r"\1", line)
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_EMPHASIS.sub(r"\2", line)
    return _MD_CODE.sub(r"\1", line)


def _paragraphs(lines: Sequence[str], *, merge: bool = False) -> str:
    """Lines to paragraphs: blank lines separate them, runs of blanks collapse, ends trimmed.

    With ``merge``, soft-wrapped lines inside a paragraph are joined (Markdown); without, each line
    stays a line (HTML list items and table rows).
    """
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append("\n".join(_merge_lines(current) if merge else current))
            current = []
    return "\n\n".join(paragraphs)


# ------------------------------------------------------------------------------------------ HTML

_HTML_SKIP: Final = frozenset({"script", "style", "noscript", "template", "svg"})
_HTML_BLOCK: Final = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "pre",
        "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "form", "figure", "figcaption",
        "h4", "h5", "h6", "hr", "address", "details", "summary",
    }
)  # fmt: skip
_HTML_HEADINGS: Final = frozenset({"h1", "h2", "h3"})


class _HtmlText(HTMLParser):
    """Visible text in lines, split into sections at h1-h3; title and ``kefu-*`` meta collected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self._line: list[str] = []
        self._cells: list[str] | None = None
        self._skip = 0
        self._in_title = False
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            values = dict(attrs)
            name = (values.get("name") or "").strip().lower()
            if name.startswith("kefu-"):
                self.meta[name] = values.get("content") or ""
        elif tag == "title":
            self._in_title = True
        elif tag in _HTML_SKIP:
            self._skip += 1
        elif tag in _HTML_HEADINGS:
            self._flush()
            self._heading = []
        elif tag == "tr":
            self._flush()
            self._cells = []
        elif tag in ("td", "th") and self._cells is not None:
            self._cells.append("")
        elif tag in ("br", "li") or tag in _HTML_BLOCK:
            self._flush()
            if tag == "li":
                self._line.append("- ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIP or tag == "title":  # <script/> opens nothing
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _HTML_SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _HTML_HEADINGS and self._heading is not None:
            heading = _one_line("".join(self._heading))
            self._heading = None
            if heading:
                self.sections.append((heading, []))
        elif tag == "tr" and self._cells is not None:
            cells = [_one_line(cell) for cell in self._cells]
            self._cells = None
            if any(cells):
                self.sections[-1][1].append(" | ".join(cells))
        elif tag in ("li", "p") or tag in _HTML_BLOCK:
            self._flush(paragraph=tag in ("p", "ul", "ol", "table", "div", "section", "blockquote", "pre"))

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip:
            return
        elif self._heading is not None:
            self._heading.append(data)
        elif self._cells is not None:
            if self._cells:
                self._cells[-1] += data
        else:
            self._line.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self, *, paragraph: bool = False) -> None:
        line = _one_line("".join(self._line))
        self._line = []
        lines = self.sections[-1][1]
        if line and line != "-":
            lines.append(line)
        if paragraph and lines and lines[-1]:
            lines.append("")


def _read_html(path: Path, source: str, text: str) -> Document:
    parser = _HtmlText()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError) as error:  # html.parser signals hopeless markup this way
        raise DocumentError(path, f"malformed HTML: {error}") from error
    sections = [Section(heading, _paragraphs(lines)) for heading, lines in parser.sections]
    meta = parser.meta
    return _document(
        path,
        source,
        "html",
        sections,
        title=_optional_str(parser.title),
        lang=_lang_value(path, meta.get("kefu-lang"), "meta kefu-lang"),
        category=_category_value(path, meta.get("kefu-category"), "meta kefu-category"),
        products=_products_value(path, meta.get("kefu-products"), "meta kefu-products"),
    )


# ---------------------------------------------------------------------------- PDF-extracted text

_TXT_HEADER: Final = re.compile(r"^(title|lang|category|products)\s*[:：]\s*(.*)$", re.IGNORECASE)
_PAGE_FURNITURE: Final = (
    re.compile(r"^[-—–―~_*\s]*\d{1,4}[-—–―~_*\s]*$"),  # "— 3 —", "- 3 -", "3"
    re.compile(r"^(page|p\.)\s*\d{1,4}(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE),  # "Page 3", "Page 3 of 7"
    re.compile(r"^.{0,80}\s(page|p\.)\s*\d{1,4}\s*(of|/)\s*\d{1,4}$", re.IGNORECASE),  # "Guide — Page 3 of 7"
    re.compile(r"^\d{1,4}\s*/\s*\d{1,4}$"),  # "3 / 7"
    re.compile(r"^(.{0,80}\s)?第\s*\d{1,4}\s*页([\s,，/]*共\s*\d{1,4}\s*页)?$"),  # "隐私政策 — 第 3 页，共 7 页"
)
_CN_NUMERAL: Final = "一二三四五六七八九十百零〇"
_TXT_HEADINGS: Final = (
    re.compile(rf"^第[{_CN_NUMERAL}\d]+[条章节部分篇]"),  # 第一条, 第二章
    re.compile(rf"^[{_CN_NUMERAL}]+[、.．]\s*\S"),  # 一、总则
    re.compile(r"^\d{1,2}\.\s+[A-Z\u4e00-\u9fff]"),  # 1. Scope
    re.compile(r"^\d{1,2}(\.\d{1,2})+\.?\s+[A-Z\u4e00-\u9fff]"),  # 2.1 Refunds
)
_SENTENCE_END: Final = re.compile(r"[.!?。！？:：;；]['\"”’)）」』]*$")
_CLAUSE_END: Final = re.compile(r"[.!?。！？;；,，、]['\"”’)）」』]*$")
_STATEMENT_END: Final = re.compile(r"[.。;；,，、]['\"”’)）」』]*$")  # a question can be a heading
_LIST_ITEM: Final = re.compile(
    r"^([-•·*+▪●]\s+|\(?\d{1,2}[)）]\s*|\d{1,2}[.、]\s+|[（(][一二三四五六七八九十\d]+[)）]|\|)"
)


def _is_furniture(line: str) -> bool:
    return any(pattern.match(line) for pattern in _PAGE_FURNITURE)


def _is_heading(line: str) -> bool:
    """Numbered (``1. Scope``, ``2.1 Refunds``), ``第一条``/``一、`` or all-caps short lines."""
    if len(line) > 60 or _STATEMENT_END.search(line):
        return False
    if any(pattern.match(line) for pattern in _TXT_HEADINGS):
        return True
    letters = re.sub(r"[^A-Za-z]", "", line)
    return (
        len(letters) >= 4
        and letters.isupper()
        and len(line.split()) <= 8
        and not _CJK.search(line)
        and not _CLAUSE_END.search(line)
    )


def _starts_block(line: str) -> bool:
    """A line that begins a paragraph or a list item even without a blank line before it."""
    return bool(_LIST_ITEM.match(line)) or any(pattern.match(line) for pattern in _TXT_HEADINGS)


def _read_text(path: Path, source: str, text: str) -> Document:
    lines = text.replace("\f", "\n\f\n").split("\n")
    header: dict[str, str] = {}
    index = 0
    while index < len(lines) and (match := _TXT_HEADER.match(lines[index].strip())):
        header[match.group(1).lower()] = match.group(2).strip()
        index += 1
    if header:
        if index < len(lines) and lines[index].strip():
            raise DocumentError(path, f"line {index + 1}: header lines (Title:, Lang:, ...) must end with a blank line")
        lines = lines[index:]
    title = _optional_str(header.get("title"))
    sections = _reflow(_drop_furniture([line if line == "\f" else line.strip() for line in lines]), title)
    return _document(
        path,
        source,
        "txt",
        [Section(heading, text) for heading, text in sections],
        title=title,
        lang=_lang_value(path, header.get("lang"), "header Lang:"),
        category=_category_value(path, header.get("category"), "header Category:"),
        products=_products_value(path, header.get("products"), "header Products:"),
    )


_PAGE_BREAK: Final = "\f"


def _drop_furniture(lines: list[str]) -> list[str]:
    """Page numbers become page-break markers; short lines repeated beside them (running heads) go too."""
    lines = [_PAGE_BREAK if line == "\f" or _is_furniture(line) else line for line in lines]
    beside: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line != _PAGE_BREAK:
            continue
        for step in (-1, 1):
            j = i + step
            while 0 <= j < len(lines) and not lines[j]:
                j += step
            if 0 <= j < len(lines) and lines[j] != _PAGE_BREAK and len(lines[j]) <= 80:
                beside[lines[j]] += 1
    running = {line for line, count in beside.items() if count >= 2 and lines.count(line) == count}
    kept: list[str] = []
    for line in lines:
        if line in running:
            line = _PAGE_BREAK
        if line == _PAGE_BREAK:  # blank lines around a page break are layout, not paragraph ends
            while kept and not kept[-1]:
                kept.pop()
            if kept and kept[-1] == _PAGE_BREAK:
                continue
        elif not line and kept and kept[-1] == _PAGE_BREAK:
            continue
        kept.append(line)
    return kept


def _reflow(lines: list[str], title: str | None = None) -> list[tuple[str, str]]:
    """Hard-wrapped lines back into paragraphs, split into ``(heading, text)`` sections.

    A line repeating the document's ``title`` (the cover line) is a heading too.
    """
    title_key = title.casefold() if title else None
    sections: list[tuple[str, str]] = []
    heading = ""
    paragraphs: list[str] = []
    current = ""
    pending_break = False

    def end_paragraph() -> None:
        nonlocal current
        if current:
            paragraphs.append(current)
        current = ""

    for line in lines:
        if line == _PAGE_BREAK:
            pending_break = True
            continue
        if not line:
            end_paragraph()
            pending_break = False
            continue
        if line.casefold() == title_key or (
            (not current or _SENTENCE_END.search(current) or pending_break) and _is_heading(line)
        ):
            end_paragraph()
            sections.append((heading, "\n\n".join(paragraphs)))
            heading, paragraphs, pending_break = line, [], False
            continue
        if not current:
            current = line
        elif _LIST_ITEM.match(line):
            current += "\n" + line
        elif _starts_block(line) or (pending_break and _SENTENCE_END.search(current)):
            end_paragraph()
            current = line
        else:
            current = _join_wrapped(current, line)
        pending_break = False
    end_paragraph()
    sections.append((heading, "\n\n".join(paragraphs)))
    return sections


def _join_wrapped(left: str, right: str) -> str:
    """Two halves of a hard-wrapped line: no space in Chinese, hyphenated English words re-joined."""
    if re.search(r"[A-Za-z]{2}-$", left) and re.match(r"[a-z]{2}", right):
        return left[:-1] + right  # "refund-" + "able" → "refundable"
    if _CJK.match(left[-1]) or _CJK.match(right[0]) or left[-1] in _CJK_PUNCT or right[0] in _CJK_PUNCT:
        return left + right
    if left.endswith("-"):
        return left + right  # "7-" + "day": a compound broken at its hyphen
    return f"{left} {right}"


def _merge_lines(lines: Sequence[str]) -> list[str]:
    """Soft-wrapped lines of one paragraph joined; list items and table rows stay lines of their own."""
    merged: list[str] = []
    for line in lines:
        if merged and not _LIST_ITEM.match(line) and not merged[-1].startswith("|"):
            merged[-1] = _join_wrapped(merged[-1], line)
        else:
            merged.append(line)
    return merged


# ------------------------------------------------------------------------------------------- CSV


def _read_csv(path: Path, source: str, text: str) -> Document:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise DocumentError(path, f"malformed CSV: {error}") from error
    header = tuple(cell.strip().lower() for cell in rows[0]) if rows else ()
    if header != CSV_HEADER:
        raise DocumentError(path, f"CSV header must be {','.join(CSV_HEADER)!r}, got {','.join(header)!r}")
    file_lang = _name_lang(path)
    fallback_category = _folder_category(source)
    sections: list[Section] = []
    number = 0
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {line_no}"
        if len(row) != len(CSV_HEADER):
            raise DocumentError(path, f"{where}: expected {len(CSV_HEADER)} fields, got {len(row)}")
        question, answer, lang_cell, category_cell, products_cell = (cell.strip() for cell in row)
        if not question or not answer:
            raise DocumentError(path, f"{where}: question and answer must both be filled in")
        lang = _lang_value(path, lang_cell, where) or file_lang or detect_lang(question + answer)
        number += 1
        text = f"问：{question}\n答：{answer}" if lang is Lang.ZH else f"Q: {question}\nA: {answer}"
        sections.append(
            Section(
                heading=_one_line(question),
                text=text,
                key=f"row-{number}",
                lang=lang,
                category=_category_value(path, category_cell, where) or fallback_category,
                products=_products_value(path, products_cell, where, separator=";"),
            )
        )
    if not sections:
        raise DocumentError(path, "no text to index (the CSV has a header but no rows)")
    langs = Counter(section.lang for section in sections)
    return Document(
        source=source,
        title=_stem_title(path),
        lang=file_lang or langs.most_common(1)[0][0] or Lang.EN,
        category=fallback_category,
        products=(),
        sections=tuple(sections),
        format="csv",
    )


READERS: Final[dict[str, Callable[[Path, str, str], Document]]] = {
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".txt": _read_text,
    ".csv": _read_csv,
}
