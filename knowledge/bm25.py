"""Okapi BM25 keyword scoring in numpy, with a tokeniser that reads Chinese and English alike.

Vectors find paraphrases; BM25 finds the exact words a customer typed: a SKU (``HOM-001``), a
number (``30 天``), a term of art (``eARC``). The index is immutable and built in one pass:

- ``tokenize`` lowercases (after NFKC, so full-width ``ＨＯＭ－００１`` reads as ``hom-001``);
  Latin and digit words keep their inner hyphens and dots (``7-day``, ``1.5``) and add the parts
  (``7``, ``day``), lose a plural ``s``, and drop English stopwords; each run of Chinese characters
  is cut at stopwords (``的``, ``什么``, ``可以`` ...) and yields its single characters plus its
  character bigrams, which is what a segmenter would mostly agree on, without one (no jieba here).
- postings are kept as flat numpy arrays sorted by term (CSR), each posting already weighted by
  ``tf·(k1+1) / (tf + k1·(1 - b + b·dl/avgdl))``, so a query costs one slice-and-add per term.
  ``avgdl`` is taken per group (the language): a Chinese chunk yields about two tokens a
  character, an English one about one a word, and one shared average would punish the Chinese.
- ``scores(query)`` returns each document's score divided by the query's *ceiling*, the sum over
  its distinct terms of ``idf·(k1+1)``: the most any document could score for it. That puts scores
  in [0, 1] and makes them comparable across queries, which an absolute "I'm not sure" threshold
  needs. A query word no document contains still counts in the ceiling (at the highest idf): the
  corpus does not know it, and the score should say so. The one exception is a Chinese bigram no
  document contains: most of those are seams between two words (``货要`` in ``退货要多久``) that a
  segmenter would never have produced, and counting them would mark every Chinese question as
  a poor match.

``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` (never negative); ``k1 = 1.5``, ``b = 0.75``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["K1", "B", "BM25Index", "tokenize"]

K1: Final = 1.5
"""Term-frequency saturation: the third mention of a word adds little."""
B: Final = 0.75
"""Length normalisation: how much a long chunk is discounted."""

_CJK_RANGE: Final = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD: Final = re.compile(rf"[{_CJK_RANGE}]+|[a-z0-9]+(?:['’\-.][a-z0-9]+)*")
_CJK_BIGRAM: Final = re.compile(rf"^[{_CJK_RANGE}]{{2}}$")

_EN_STOPWORDS: Final = frozenset(
    """a an the is are was were be been being am do does did done how what which who whom whose when
    where why i me my mine you your yours we us our he him his she her it its they them their this
    that these those there here to of in on at by for with from into as if so than then and or but
    can could would should will shall may might must have has had having about please hi hello hey
    any some just also too very much many get got let dont doesnt im ive id youre thats whats
    tell know want need like""".split()
)
_ZH_STOP_WORDS: Final = (
    "为什么 有没有 能不能 是不是 怎么样 什么 怎么 怎样 如何 为何 可以 能否 请问 一下 我们 你们 他们 "
    "这个 那个 哪个 哪些 这些 那些 是否 还是 但是 或者 因为 所以 如果 已经 关于 的话 谢谢 你好 您好"
).split()
_ZH_STOP_CHARS: Final = "的了吗呢吧啊呀嘛哦哈是我你您他她它也都就"
_ZH_SPLIT: Final = re.compile("|".join([*_ZH_STOP_WORDS, f"[{_ZH_STOP_CHARS}]"]))


def tokenize(text: str) -> list[str]:
    """Search terms of ``text``: English words and Chinese characters and bigrams, stopwords out.

    Example:
        >>> tokenize("How do I return the Lumo earbuds within 7-day?")
        ['return', 'lumo', 'earbud', 'within', '7-day', '7', 'day']
        >>> tokenize("退货多久到账")
        ['退', '货', '多', '久', '到', '账', '退货', '货多', '多久', '久到', '到账']
    """
    tokens: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if word[0] > "\u3000":  # a run of Chinese characters
            for run in _ZH_SPLIT.split(word):
                tokens.extend(run)
                tokens.extend(map(str.__add__, run[:-1], run[1:]))
        else:
            tokens.extend(_latin_terms(word))
    return tokens


@lru_cache(maxsize=1 << 16)
def _latin_terms(word: str) -> tuple[str, ...]:
    """Terms of one Latin/digit word (cached: documents repeat their words)."""
    word = word.replace("’", "'")
    word = word.removesuffix("'s").replace("'", "")
    if "-" not in word:
        return (_stem(word),) if _keep(word) else ()
    parts = [_stem(part) for part in word.split("-") if _keep(part)]
    if len(parts) <= 1:
        return tuple(parts)
    return ("-".join(parts), *parts)


def _keep(word: str) -> bool:
    return bool(word) and word not in _EN_STOPWORDS and (len(word) > 1 or word.isdigit())


def _stem(word: str) -> str:
    """A light plural strip, applied alike to documents and queries (``refunds`` → ``refund``)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


class BM25Index:
    """An immutable BM25 index over a list of documents; document ``i`` is row ``i``."""

    def __init__(
        self, documents: Sequence[str], *, groups: Sequence[str] | None = None, k1: float = K1, b: float = B
    ) -> None:
        """Tokenise and index ``documents``.

        Args:
            documents: The texts, in the order their scores are returned.
            groups: A label per document (its language); document lengths are normalised against
                the average length in their group. ``None``: one group.
            k1: Term-frequency saturation.
            b: Length normalisation, 0 (none) to 1 (full).
        """
        if groups is not None and len(groups) != len(documents):
            raise ValueError(f"{len(groups)} groups for {len(documents)} documents")
        self.k1 = k1
        self.size = len(documents)
        doc_terms: list[str] = []
        freqs: list[int] = []
        doc_ids: list[int] = []
        lengths = np.zeros(self.size, dtype=np.float64)
        for doc, text in enumerate(documents):
            tokens = tokenize(text)
            counts = Counter(tokens)
            lengths[doc] = len(tokens)
            doc_terms.extend(counts)
            freqs.extend(counts.values())
            doc_ids.extend([doc] * len(counts))
        vocabulary = {term: i for i, term in enumerate(dict.fromkeys(doc_terms))}
        term_ids = list(map(vocabulary.__getitem__, doc_terms))
        self._vocabulary = vocabulary
        norms = np.ones(self.size, dtype=np.float64)
        labels = np.asarray(groups if groups is not None else [""] * self.size, dtype=object)
        for label in set(labels.tolist()):
            members = labels == label
            average = float(lengths[members].mean()) if members.any() else 0.0
            if average > 0:
                norms[members] = 1 - b + b * lengths[members] / average
        terms = np.asarray(term_ids, dtype=np.int64)
        order = np.argsort(terms, kind="stable")
        tf = np.asarray(freqs, dtype=np.float64)[order]
        self._docs = np.asarray(doc_ids, dtype=np.int32)[order]
        self._weights = (tf * (k1 + 1) / (tf + k1 * norms[self._docs])).astype(np.float32)
        df = np.bincount(terms, minlength=len(vocabulary))
        self._starts = np.concatenate(([0], np.cumsum(df))).astype(np.int64)
        self._idf = np.log1p((self.size - df + 0.5) / (df + 0.5))
        self._unseen_idf = math.log1p((self.size + 0.5) / 0.5)

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """Every document's BM25 score for ``query`` over the query's ceiling, in [0, 1].

        Returns:
            One score per document (zeros when the query has no terms or the index is empty).
        """
        scores = np.zeros(self.size, dtype=np.float32)
        ceiling = 0.0
        for term in dict.fromkeys(tokenize(query)):
            term_id = self._vocabulary.get(term)
            if term_id is None:
                if not _CJK_BIGRAM.match(term):
                    ceiling += self._unseen_idf * (self.k1 + 1)
                continue
            idf = float(self._idf[term_id])
            ceiling += idf * (self.k1 + 1)
            start, end = self._starts[term_id], self._starts[term_id + 1]
            scores[self._docs[start:end]] += np.float32(idf) * self._weights[start:end]
        if ceiling <= 0:
            return scores
        normalised: npt.NDArray[np.float32] = np.clip(scores / np.float32(ceiling), 0.0, 1.0)
        return normalised
