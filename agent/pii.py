r"""Offline PII redaction for customer messages, built on Presidio with regex recognizers and NER.

Customer text is redacted before it reaches the model or the logs: every e-mail address,
payment or bank card, phone number (mobile, landline, international), resident ID, passport number,
licence plate, IP address and URL, and every person's name and postal address, is replaced by a
numbered placeholder such as ``<CN_MOBILE_1>`` or ``<PERSON_1>``, and the original values are kept
in a per-conversation *vault* so that ``restore`` can put them back into the reply.

Names and addresses (``PERSON``, ``LOCATION``) come from the NER adapters in ``agent.ner``, one
model per language, chosen by the ``lang`` of the call (LAC for Chinese, spaCy's
``en_core_web_sm`` for English), each wrapped in a Presidio recognizer. They are optional: a
language whose model package is missing or fails to load logs one warning and keeps only the
pattern recognizers.

Nothing here downloads anything. Presidio's default ``AnalyzerEngine()`` fetches a spaCy model,
so the analyzer is given an explicit NLP engine: ``OfflineNlpEngine`` tokenizes with a regular
expression (runs of CJK ideographs, runs of other letters, runs of digits, single symbols) and
builds a spaCy ``Doc`` over a throw-away ``Vocab``; the engine itself runs no NER (the NER
recognizers bring their own models, packaged and loaded from disk). ``spacy.blank("zh")`` is no
substitute: it splits Chinese (and digits) into single characters, so a context word such as
"手机" could never match, and blank pipelines have no lemmas. Lemmas here are the lower-cased
tokens, which keeps Presidio's context enhancement working: a weak pattern (say a bare
``415 555 0123``) only scores high enough when a word like "phone" or "电话" precedes it.

Every pattern is delimited with lookarounds on ASCII letters and digits rather than ``\b``:
CJK characters are word characters, so ``\b`` never fires inside "我的手机是13812345678谢谢".
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from spacy.lang.en.stop_words import STOP_WORDS as _EN_STOP_WORDS
from spacy.lang.zh.stop_words import STOP_WORDS as _ZH_STOP_WORDS
from spacy.tokens import Doc
from spacy.vocab import Vocab

from agent.ner import NameAddressTagger, NerRecognizer, load_taggers

__all__ = [
    "SUPPORTED_LANGUAGES",
    "OfflineNlpEngine",
    "PiiRedactor",
    "PiiSpan",
    "Redaction",
    "mask",
    "restore",
]

logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
# At DEBUG, Presidio logs every context word list it checks: the personal data itself. Kefu's logs
# must hold placeholders only, whatever level an operator turns on.

SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = ("en", "zh")
"""Languages the redactor analyzes; the pattern recognizers serve both, each has its own NER model."""

_CJK: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE: Final = re.compile(rf"[{_CJK}]+|[^\W\d_{_CJK}]+|\d+|\S")
"""Runs of CJK ideographs, runs of other letters, runs of digits, any other single character."""

_STOP_WORDS: Final[Mapping[str, frozenset[str]]] = {
    "en": frozenset(_EN_STOP_WORDS),
    "zh": frozenset(_ZH_STOP_WORDS),
}

_PLACEHOLDER_RE: Final = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
"""A placeholder this module writes, e.g. ``<EMAIL_ADDRESS_1>``; group 1 is the type, 2 the number."""

# Delimiters: no ASCII letter or digit may touch a match (CJK text may), so "KF100234" and
# "SF13812345678" never yield numbers while "手机13812345678谢谢" does.
_L: Final = r"(?<![0-9A-Za-z])"
_LP: Final = r"(?<![0-9A-Za-z+])"  # ... nor a "+": "+86 138..." is a phone, not a card
_R: Final = r"(?![0-9A-Za-z])"

# When two findings overlap and are equally long, the more specific type wins (whatever the
# scores: a checksum-valid resident ID that happens to pass Luhn is still an ID); a type not
# listed ranks last. CREDIT_CARD ranks above CN_BANK_CARD so that a card both find is reported once,
# as it always was.
_PRIORITY: Final[Mapping[str, int]] = {
    name: rank
    for rank, name in enumerate(
        (
            "CN_RESIDENT_ID",
            "CN_PASSPORT",
            "CN_LICENSE_PLATE",
            "EMAIL_ADDRESS",
            "URL",
            "IP_ADDRESS",
            "CREDIT_CARD",
            "CN_BANK_CARD",
            "CN_MOBILE",
            "CN_LANDLINE",
            "PHONE_NUMBER",
            "PERSON",
            "LOCATION",
        )
    )
}

_PHONE_CONTEXT: Final = [
    "phone", "mobile", "cell", "tel", "call", "contact", "number", "whatsapp", "wechat", "fax", "desk", "landline",
    "电话", "手机", "号码", "联系", "致电", "微信", "来电",
]  # fmt: skip

_NATIONAL_PHONE_CONTEXT: Final = [
    "phone", "mobile", "cell", "tel", "fax", "desk", "landline", "whatsapp", "电话", "手机", "座机", "传真",
]  # fmt: skip

_LANDLINE_CONTEXT: Final = [
    "phone", "tel", "landline", "call", "office", "contact",
    "电话", "座机", "固话", "联系", "致电", "来电", "总机", "分机",
]  # fmt: skip
"""Like ``_PHONE_CONTEXT`` without "number"/"号码": "tracking number 0..." must not lift a bare number."""

_RESIDENT_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK: Final = "10X98765432"
_RESIDENT_ID_VALID_SCORE: Final = 0.9
_RESIDENT_ID_MISTYPED_SCORE: Final = 0.6
"""An 18-character ID whose check character is wrong is probably a typo: still masked, less surely."""
_RESIDENT_ID_LEGACY_SCORE: Final = 0.5

_PROVINCES: Final = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_URL_CHARS: Final = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_URL_END_CHARS: Final = r"A-Za-z0-9\-_~/#=&%+"
"""A URL does not end on ``. , ; : ! ? ) ' (``: those are the sentence's punctuation."""
_HOST_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data found in a text.

    Attributes:
        entity_type: The kind of data, e.g. ``"CN_MOBILE"`` or ``"EMAIL_ADDRESS"``.
        start: Offset of the first character in the analyzed text.
        end: Offset one past the last character.
        text: The matched text, ``text[start:end]``.
        score: Presidio's confidence, between 0 and 1.

    """

    entity_type: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Redaction:
    """The result of redacting one text.

    Attributes:
        text: The text with every finding replaced by a placeholder such as ``<CN_MOBILE_1>``.
        vault: Placeholder to original value, including the entries that were passed in; pass it
            back with the conversation's next message so repeated values keep their placeholder.
        spans: What was found in this text, in order, with offsets into the original text.

    """

    text: str
    vault: dict[str, str]
    spans: tuple[PiiSpan, ...]


class OfflineNlpEngine(NlpEngine):
    """A Presidio NLP engine that tokenizes with a regular expression and loads no model.

    It returns tokens, their offsets and lower-cased tokens as lemmas, which is all Presidio's
    ``LemmaContextAwareEnhancer`` needs, and no named entities. Every call builds its ``Doc`` over
    a fresh ``Vocab``, so no state is shared between calls and nothing grows with the traffic.
    """

    def __init__(self, languages: Iterable[str] = SUPPORTED_LANGUAGES) -> None:
        """Configure the engine.

        Args:
            languages: Language codes to accept; each needs a stop-word list (``"en"``, ``"zh"``).

        Raises:
            ValueError: If a language has no stop-word list.

        """
        self._languages = tuple(languages)
        unknown = [lang for lang in self._languages if lang not in _STOP_WORDS]
        if unknown:
            raise ValueError(f"no stop words for languages {unknown}; supported: {sorted(_STOP_WORDS)}")
        self._loaded = False

    def load(self) -> None:
        """Mark the engine as loaded; there is no model to load."""
        self._loaded = True

    def is_loaded(self) -> bool:
        """Return whether ``load`` was called."""
        return self._loaded

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        """Tokenize ``text``.

        Args:
            text: The text to tokenize.
            language: One of the configured languages.

        Returns:
            Tokens, token offsets and lemmas; no entities.

        """
        self._check_language(language)
        matches = list(_TOKEN_RE.finditer(text))
        words = [m.group() for m in matches]
        spaces = [m.end() < len(text) and text[m.end()].isspace() for m in matches]
        return NlpArtifacts(
            entities=[],
            tokens=Doc(Vocab(), words=words, spaces=spaces),
            tokens_indices=[m.start() for m in matches],
            lemmas=[word.lower() for word in words],
            nlp_engine=self,
            language=language,
            scores=[],
        )

    def process_batch(
        self,
        texts: Iterable[str],
        language: str,
        batch_size: int = 1,
        n_process: int = 1,
        **kwargs: Any,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        """Tokenize several texts, one after the other.

        Args:
            texts: The texts to tokenize.
            language: One of the configured languages.
            batch_size: Ignored.
            n_process: Ignored.
            **kwargs: Ignored.

        Yields:
            Each text with its artifacts.

        """
        for text in texts:
            yield text, self.process_text(text, language)

    def is_stopword(self, word: str, language: str) -> bool:
        """Return whether ``word`` is a stop word of ``language``."""
        return word.lower() in _STOP_WORDS.get(language, frozenset())

    def is_punct(self, word: str, language: str) -> bool:
        """Return whether ``word`` consists of punctuation only."""
        return bool(word) and all(unicodedata.category(char).startswith("P") for char in word)

    def get_supported_entities(self) -> list[str]:
        """Return no entities: this engine runs no NER."""
        return []

    def get_supported_languages(self) -> list[str]:
        """Return the configured languages."""
        return list(self._languages)

    def _check_language(self, language: str) -> None:
        if not self._loaded:
            raise ValueError("NLP engine is not loaded; call load() first")
        if language not in self._languages:
            raise ValueError(f"language {language!r} is not supported; supported: {list(self._languages)}")


def _luhn_ok(digits: str) -> bool:
    """Return whether a string of digits passes the Luhn checksum."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isascii() and char.isdigit())


class _EmailRecognizer(PatternRecognizer):
    """E-mail addresses; unlike Presidio's own, no ``tldextract`` (which may go online)."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="EMAIL_ADDRESS",
            name="KefuEmailRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "email",
                    r"(?<![0-9A-Za-z._%+\-])[0-9A-Za-z][0-9A-Za-z._%+\-]*@"
                    r"[0-9A-Za-z](?:[0-9A-Za-z\-]*[0-9A-Za-z])?"
                    r"(?:\.[0-9A-Za-z](?:[0-9A-Za-z\-]*[0-9A-Za-z])?)*\.[A-Za-z]{2,24}(?![0-9A-Za-z\-])",
                    0.85,
                )
            ],
            context=["email", "mail", "邮箱", "邮件", "电邮"],
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject local parts with consecutive or trailing dots."""
        local = pattern_text.split("@", 1)[0]
        return ".." in local or local.endswith(".")


class _CreditCardRecognizer(PatternRecognizer):
    """Payment cards: 13-19 digits starting 2-6, plain or in groups, Luhn-checked."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="CREDIT_CARD",
            name="KefuCreditCardRecognizer",
            supported_language=language,
            patterns=[
                Pattern("card (plain)", rf"{_LP}[2-6][0-9]{{12,18}}{_R}", 0.3),
                Pattern(
                    "card (groups of 4)",
                    rf"{_LP}[2-6][0-9]{{3}}([ \-])[0-9]{{4}}\1[0-9]{{4}}(?:\1[0-9]{{1,4}}){{1,2}}{_R}",
                    0.3,
                ),
                Pattern("card (4-6-5)", rf"{_LP}3[47][0-9]{{2}}([ \-])[0-9]{{6}}\1[0-9]{{5}}{_R}", 0.3),
            ],
            context=["card", "credit", "debit", "visa", "mastercard", "卡号", "信用卡", "银行卡", "借记卡"],
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        """Accept only numbers of 13 to 19 digits that pass the Luhn checksum."""
        digits = _digits(pattern_text)
        return 13 <= len(digits) <= 19 and _luhn_ok(digits)


class _CnMobileRecognizer(PatternRecognizer):
    """Mainland China mobile numbers, ``1[3-9]`` and nine digits, with optional +86/0086/86."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="CN_MOBILE",
            name="KefuCnMobileRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "cn mobile",
                    rf"{_L}(?:(?:\+|00)?86[ \-]?)?1[3-9][0-9](?:[ \-]?[0-9]{{4}}){{2}}{_R}",
                    0.75,
                )
            ],
            context=_PHONE_CONTEXT,
        )


class _PhoneRecognizer(PatternRecognizer):
    """International (``+`` and country code) and North American phone numbers."""

    def __init__(self, language: str) -> None:
        nanp = r"[2-9][0-9]{2}"
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="KefuPhoneRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "international",
                    rf"{_LP}\+[1-9][0-9]{{0,3}}(?:[ \-.]?\(?[0-9]{{2,}}\)?){{1,5}}{_R}",
                    0.7,
                ),
                Pattern("nanp (parentheses)", rf"{_L}(?:1[ \-.]?)?\({nanp}\)[ \-.]?{nanp}[\-. ][0-9]{{4}}{_R}", 0.6),
                Pattern("nanp (dashes or dots)", rf"{_L}(?:1([\-.]))?{nanp}([\-.]){nanp}\2[0-9]{{4}}{_R}", 0.5),
                # Three groups of digits are too common to trust without "phone"/"电话" nearby.
                Pattern("nanp (spaces)", rf"{_L}(?:1 )?{nanp} {nanp} [0-9]{{4}}{_R}", 0.3),
                Pattern(
                    "nanp with extension",
                    rf"{_L}(?:1[\-.])?\(?{nanp}\)?[\-. ]?{nanp}[\-.][0-9]{{4}}x[0-9]{{1,5}}{_R}",
                    0.6,
                ),
                Pattern(
                    "international with trunk (0)",
                    rf"{_LP}\+[1-9][0-9]{{0,3}} ?\(0\)[0-9]{{1,4}}(?:[ \-.]?[0-9]{{2,4}}){{1,4}}{_R}",
                    0.7,
                ),
            ],
            context=_PHONE_CONTEXT,
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject matches with fewer than 7 or more than 15 digits (the E.164 limit), and dates."""
        digits = _digits(pattern_text.split("x")[0])
        if re.fullmatch(r"(19|20)[0-9]{2}[\-./][01]?[0-9][\-./][0-3]?[0-9]", pattern_text.strip()):
            return True
        return not 7 <= len(digits) <= 15


def _resident_id_checksum_ok(value: str) -> bool:
    """Return whether an 18-character resident ID has the right GB 11643-1999 check character."""
    total = sum(int(char) * weight for char, weight in zip(value[:17], _RESIDENT_ID_WEIGHTS, strict=True))
    return _RESIDENT_ID_CHECK[total % 11] == value[17].upper()


def _resident_id_birth_date_ok(value: str) -> bool:
    """Return whether an 18- or 15-character resident ID holds a real calendar date of birth."""
    try:
        if len(value) == 18:
            date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        else:  # 15-character IDs (before 1999) hold YYMMDD, all in the 1900s
            date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
    except ValueError:
        return False
    return True


class _NationalPhoneRecognizer(_PhoneRecognizer):
    """Phone numbers in national formats, trusted only next to a word that says "phone".

    Its context list leaves out "number"/"号码", so "tracking number 0123456789" stays.
    """

    def __init__(self, language: str) -> None:
        PatternRecognizer.__init__(
            self,
            supported_entity="PHONE_NUMBER",
            name="KefuNationalPhoneRecognizer",
            supported_language=language,
            patterns=[
                # National numbers in groups ("0494 92 82 32", "03.93.92.16.85") or ten plain digits:
                # only with "phone", "mobile", "fax", "电话" … nearby.
                Pattern(
                    "national groups (context)",
                    rf"{_L}\(?[0-9]{{2,4}}\)?(?:[ \-.][0-9]{{2,4}}){{1,4}}(?:x[0-9]{{1,5}})?{_R}",
                    0.3,
                ),
                Pattern("ten digits (context)", rf"{_L}[0-9]{{10}}{_R}", 0.3),
                # British style: a five-digit trunk code and six digits ("07907 117568").
                Pattern("trunk 5 + 6 (context)", rf"{_L}0[0-9]{{4}} [0-9]{{6}}{_R}", 0.3),
            ],
            context=_NATIONAL_PHONE_CONTEXT,
        )


class _CnLandlineRecognizer(PatternRecognizer):
    """Mainland landlines: an area code (010, 02x, 0xxx; or without the 0 after +86) and 7-8 digits.

    Beijing (010) and the 02x cities have 8-digit numbers, other areas 7 or 8. Area codes
    never start with 1 after the trunk 0, so 11-digit mobiles never match; without separators
    the number is trusted only with a context word such as "座机" or "电话".
    """

    def __init__(self, language: str) -> None:
        big, small = r"(?:10|2[0-9])", r"[3-9][0-9]{2}"
        eight, seven_or_eight = r"[1-9][0-9]{3}[ \-]?[0-9]{4}", r"[1-9][0-9]{2,3}[ \-]?[0-9]{4}"
        super().__init__(
            supported_entity="CN_LANDLINE",
            name="KefuCnLandlineRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "cn landline (+86)",
                    rf"{_LP}(?:\+|00)86[ \-]?(?:[(（]0?{big}[)）]|0?{big})[ \-]?{eight}{_R}"
                    rf"|{_LP}(?:\+|00)86[ \-]?(?:[(（]0?{small}[)）]|0?{small})[ \-]?{seven_or_eight}{_R}",
                    0.7,
                ),
                Pattern(
                    "cn landline (separated)",
                    rf"{_L}(?:[(（]0{big}[)）][ \-]?|0{big}[ \-]){eight}{_R}"
                    rf"|{_L}(?:[(（]0{small}[)）][ \-]?|0{small}[ \-]){seven_or_eight}{_R}",
                    0.65,
                ),
                Pattern(
                    "cn landline (bare)",
                    rf"{_L}(?:0{big}[1-9][0-9]{{7}}|0{small}[1-9][0-9]{{6,7}}){_R}",
                    0.3,
                ),
            ],
            context=_LANDLINE_CONTEXT,
        )


class _CnResidentIdRecognizer(PatternRecognizer):
    """Resident identity card numbers (居民身份证号码), 18 characters or the 15-digit legacy form.

    The province code and the date of birth must be plausible. An 18-character ID with the
    right check character scores 0.9; with a wrong one (a typo) 0.6, still above the threshold.
    """

    def __init__(self, language: str) -> None:
        area = r"(?:1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[1-3])[0-9]{4}"
        month_day = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
        super().__init__(
            supported_entity="CN_RESIDENT_ID",
            name="KefuCnResidentIdRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "resident id (18)",
                    rf"{_L}{area}(?:19|20)[0-9]{{2}}{month_day}[0-9]{{3}}[0-9X]{_R}",
                    _RESIDENT_ID_VALID_SCORE,
                ),
                Pattern(
                    "resident id (15)", rf"{_L}{area}[0-9]{{2}}{month_day}[0-9]{{3}}{_R}", _RESIDENT_ID_LEGACY_SCORE
                ),
            ],
            context=["身份证", "身份", "证件", "identity", "idcard"],
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject impossible dates of birth such as 0231."""
        return not _resident_id_birth_date_ok(pattern_text)

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        """Find IDs, then lower the score of 18-character ones whose check character is wrong."""
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            value = text[result.start : result.end]
            if len(value) == 18 and not _resident_id_checksum_ok(value):
                result.score = min(result.score, _RESIDENT_ID_MISTYPED_SCORE)
        return results


class _CnBankCardRecognizer(PatternRecognizer):
    """Mainland bank (UnionPay, debit) cards: 16-19 digits, Luhn-checked, trusted only in context.

    Payment cards starting 2-6 are found by ``_CreditCardRecognizer`` anyway (and win the tie);
    this adds the other issuers (such as 9558...) when "银行卡", "卡号", "bank" or "account" is near.
    """

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="CN_BANK_CARD",
            name="KefuCnBankCardRecognizer",
            supported_language=language,
            patterns=[
                Pattern("bank card (plain)", rf"{_LP}[1-9][0-9]{{15,18}}{_R}", 0.3),
                Pattern(
                    "bank card (groups of 4)",
                    rf"{_LP}[1-9][0-9]{{3}}([ \-])[0-9]{{4}}\1[0-9]{{4}}\1[0-9]{{4}}(?:\1[0-9]{{1,3}})?{_R}",
                    0.3,
                ),
            ],
            context=["银行卡", "卡号", "储蓄卡", "借记卡", "信用卡", "银行", "账号", "账户", "bank", "card", "account"],
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject numbers outside 16 to 19 digits or failing the Luhn checksum."""
        digits = _digits(pattern_text)
        return not (16 <= len(digits) <= 19 and _luhn_ok(digits))


class _CnPassportRecognizer(PatternRecognizer):
    """Chinese passports: E or G and 8 digits on their own; P, S, D (and EA1234567) only in context."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="CN_PASSPORT",
            name="KefuCnPassportRecognizer",
            supported_language=language,
            patterns=[
                Pattern("passport (ordinary)", rf"{_L}[EG][0-9]{{8}}{_R}", 0.5),
                Pattern("passport (official)", rf"{_L}[PSD][0-9]{{8}}{_R}", 0.3),
                Pattern("passport (e-passport, letter)", rf"{_L}E[A-HJ-NP-Z][0-9]{{7}}{_R}", 0.3),
            ],
            context=["护照", "passport", "证件"],
        )


class _CnLicensePlateRecognizer(PatternRecognizer):
    """Mainland licence plates: province, issuing letter, 5 (6 for new energy) letters and digits.

    At least three of the last characters must be digits, as on every issued plate, so words
    such as "新ABCDE" are not plates.
    """

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="CN_LICENSE_PLATE",
            name="KefuCnLicensePlateRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "cn licence plate",
                    rf"{_L}[{_PROVINCES}][A-HJ-NP-Z][ ·•・.\-]?[A-HJ-NP-Z0-9]{{5,6}}{_R}",
                    0.6,
                )
            ],
            context=["车牌", "牌照", "车", "plate", "licence", "license", "vehicle"],
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject plates with fewer than three digits."""
        return sum(char.isdigit() for char in pattern_text[2:]) < 3


class _IpAddressRecognizer(PatternRecognizer):
    """IPv4 (each part 0-255) and IPv6 addresses (full or ``::``-compressed, at least 3 groups)."""

    def __init__(self, language: str) -> None:
        octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
        super().__init__(
            supported_entity="IP_ADDRESS",
            name="KefuIpAddressRecognizer",
            supported_language=language,
            patterns=[
                Pattern("ipv4", rf"(?<![0-9A-Za-z.]){octet}(?:\.{octet}){{3}}(?![0-9A-Za-z]|\.[0-9])", 0.6),
                Pattern("ipv6", r"(?<![0-9A-Za-z:.])(?:[0-9A-F]{0,4}:){2,7}[0-9A-F]{0,4}(?![0-9A-Za-z:])", 0.6),
            ],
            context=["ip", "地址", "address", "server", "服务器"],
        )

    def invalidate_result(self, pattern_text: str) -> bool | None:
        """Reject IPv6 look-alikes (times such as 12:30:45) and addresses of fewer than 3 groups."""
        if "." in pattern_text:
            return False
        try:
            ipaddress.IPv6Address(pattern_text)
        except ValueError:
            return True
        return len([group for group in pattern_text.split(":") if group]) < 3


class _UrlRecognizer(PatternRecognizer):
    """``http(s)://`` and ``www.`` URLs; never an e-mail's domain, never trailing punctuation."""

    def __init__(self, language: str) -> None:
        host = rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*"
        super().__init__(
            supported_entity="URL",
            name="KefuUrlRecognizer",
            supported_language=language,
            patterns=[
                Pattern(
                    "url",
                    rf"(?<![0-9A-Za-z@._%+\-/])(?:https?://{host}|www\.{_HOST_LABEL}(?:\.{_HOST_LABEL})+)"
                    rf"(?::[0-9]{{1,5}})?(?:[/?#](?:[{_URL_CHARS}]*[{_URL_END_CHARS}])?)?",
                    0.6,
                )
            ],
            context=["url", "link", "website", "网址", "链接", "网站"],
        )


_RECOGNIZERS: Final[tuple[type[PatternRecognizer], ...]] = (
    _EmailRecognizer,
    _CreditCardRecognizer,
    _CnMobileRecognizer,
    _PhoneRecognizer,
    _NationalPhoneRecognizer,
    _CnLandlineRecognizer,
    _CnResidentIdRecognizer,
    _CnBankCardRecognizer,
    _CnPassportRecognizer,
    _CnLicensePlateRecognizer,
    _IpAddressRecognizer,
    _UrlRecognizer,
)


_NAME_WORD: Final = r"[A-Za-z][A-Za-z'\-]+"
_CUED_NAME_RE: Final = re.compile(
    r"(?:(?i:my name is|my name's|name is|name:|recipient is|recipient:|addressed to|signed,|regards,)\s*"
    rf"(?P<en>{_NAME_WORD}(?: {_NAME_WORD}){{0,2}})(?![0-9A-Za-z])"
    rf"|(?:我叫|我的名字是|名字是|姓名[:：]?|收件人(?:是|写|改成|为)?[:：]?|联系人(?:是|为)?[:：]?)\s*"
    rf"(?P<zh>[{_CJK}]{{2,4}}(?=[，。,.！!？?\s]|$)|{_NAME_WORD}(?: {_NAME_WORD}){{0,2}}(?![0-9A-Za-z])))"
)
"""A name right after words that introduce one ("my name is", "我叫", "收件人"), in any case.

The NER models miss lower-case names ("my name is paloma lachance") and Latin names in Chinese
text ("收件人写Omar Kowalski"); after such a cue a name is what follows.
"""


class _CuedNameRecognizer(EntityRecognizer):
    """Person names introduced by a cue phrase, in both languages."""

    def __init__(self, language: str) -> None:
        super().__init__(supported_entities=["PERSON"], name="KefuCuedNameRecognizer", supported_language=language)

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Names after cue phrases, without trailing stop words ("my name is Li and ...")."""
        results: list[RecognizerResult] = []
        for match in _CUED_NAME_RE.finditer(text):
            group = "en" if match.group("en") else "zh"
            start, end = match.span(group)
            words = text[start:end].split(" ")
            while words and words[-1].lower() in _STOP_WORDS["en"]:
                words.pop()
            if not words or words[0].lower() in _STOP_WORDS["en"] or text[start:end] in _STOP_WORDS["zh"]:
                continue
            end = start + len(" ".join(words))
            results.append(RecognizerResult("PERSON", start, end, 0.7))
        return results


_MODEL_TYPES: Final = frozenset({"PERSON", "LOCATION"})
"""Types found by the NER models, which make the mistakes ``known_terms`` corrects."""


def _build_analyzer(languages: tuple[str, ...], taggers: Iterable[NameAddressTagger]) -> AnalyzerEngine:
    """Build an analyzer with only Kefu's recognizers, the given NER taggers and the offline NLP engine."""
    registry = RecognizerRegistry(supported_languages=list(languages))
    for language in languages:
        for recognizer_type in _RECOGNIZERS:
            registry.add_recognizer(recognizer_type(language))
    for language in languages:
        registry.add_recognizer(_CuedNameRecognizer(language))
    for tagger in taggers:
        for language in languages:
            registry.add_recognizer(NerRecognizer(tagger, language))
    nlp_engine = OfflineNlpEngine(languages)
    nlp_engine.load()
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=list(languages))


def _placeholder_regions(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _PLACEHOLDER_RE.finditer(text)]


def _resolve_overlaps(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Keep, of each group of overlapping spans, the longest; then the most specific; then the surest."""
    ranked = sorted(
        spans,
        key=lambda s: (-(s.end - s.start), _PRIORITY.get(s.entity_type, len(_PRIORITY)), -s.score, s.start),
    )
    kept: list[PiiSpan] = []
    for span in ranked:
        if all(span.end <= other.start or other.end <= span.start for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


class PiiRedactor:
    """Finds and replaces personal data in customer messages, in English and Chinese.

    Build one per process and share it: construction compiles the recognizers and loads the NER
    models (once per process, a few seconds), and ``analyze`` and ``redact`` may be called from
    several threads at once.
    """

    def __init__(
        self,
        score_threshold: float = 0.4,
        taggers: Iterable[NameAddressTagger] | None = None,
        known_terms: Iterable[str] = (),
    ) -> None:
        """Build the analyzer.

        Args:
            score_threshold: Findings scoring below this (0 to 1) are ignored.
            known_terms: Names that are no one's personal data, such as the catalog's product
                names: a name or address the NER models find inside one of them is not reported
                ("Mop" in "Robot Vacuum and Mop" is no person).
            taggers: Name and address taggers, at most one per language; by default
                ``agent.ner.load_taggers()``, which leaves out (with a warning) those whose model
                cannot be loaded. Pass ``()`` to run the pattern recognizers only.

        Raises:
            ValueError: If ``score_threshold`` is outside 0 to 1, or a tagger's language is not
                supported or has two taggers.

        """
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be between 0 and 1, got {score_threshold}")
        chosen = list(load_taggers(SUPPORTED_LANGUAGES) if taggers is None else taggers)
        tagged = [tagger.language for tagger in chosen]
        if any(lang not in SUPPORTED_LANGUAGES or tagged.count(lang) > 1 for lang in tagged):
            raise ValueError(f"taggers must have distinct languages among {SUPPORTED_LANGUAGES}, got {tagged}")
        self._score_threshold = score_threshold
        self._known_terms = "\n".join(term.lower() for term in known_terms)
        self._analyzer = _build_analyzer(SUPPORTED_LANGUAGES, chosen)
        # Presidio makes no thread-safety promise (recognizers compile their patterns lazily and
        # mutate themselves on first use); matching short messages takes well under a millisecond
        # and the NER models a few, so serializing the calls costs little.
        self._lock = threading.Lock()
        for language in SUPPORTED_LANGUAGES:  # compile every pattern now, not on the first request
            self.analyze("warm-up a@b.co +1 415-555-0123", language)

    @property
    def supported_entities(self) -> list[str]:
        """Every entity type some recognizer can report, in either language.

        ``PERSON`` and ``LOCATION`` are included when an NER model is loaded for either language.
        """
        found: set[str] = set()
        for lang in SUPPORTED_LANGUAGES:
            found.update(self._analyzer.get_supported_entities(language=lang))
        return sorted(found)

    def analyze(self, text: str, lang: str) -> list[PiiSpan]:
        """Find personal data in ``text``.

        Names and addresses are looked for with the NER model of ``lang`` only (none if it was not
        loaded). Placeholders already in the text (``<EMAIL_ADDRESS_1>``) are never reported, and
        overlapping findings are resolved: the longest wins, then the more specific type (a resident
        ID over a card or phone number, a mobile over a landline), then the highest score.

        Args:
            text: The text to analyze.
            lang: ``"en"`` or ``"zh"`` (a ``core.types.Lang`` works too).

        Returns:
            The findings, ordered by position.

        Raises:
            ValueError: If ``lang`` is not supported.

        """
        language = str(lang)
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"unsupported language {lang!r}; expected one of {SUPPORTED_LANGUAGES}")
        if not text:
            return []
        with self._lock:
            results = self._analyzer.analyze(text=text, language=language, score_threshold=self._score_threshold)
        protected = _placeholder_regions(text)
        spans = (
            PiiSpan(r.entity_type, r.start, r.end, text[r.start : r.end], float(r.score))
            for r in results
            if all(r.end <= start or end <= r.start for start, end in protected) and not self._known(r, text)
        )
        return _resolve_overlaps(spans)

    def _known(self, result: RecognizerResult, text: str) -> bool:
        """A model-found name or address that is part of a known term, such as a product name."""
        return (
            result.entity_type in _MODEL_TYPES
            and bool(self._known_terms)
            and text[result.start : result.end].lower() in self._known_terms
        )

    def redact(self, text: str, lang: str, vault: Mapping[str, str] | None = None) -> Redaction:
        """Replace personal data in ``text`` by placeholders.

        Numbering is per entity type and per conversation: a value already in ``vault`` keeps its
        placeholder, a new value takes the next free number of its type (``<CN_MOBILE_1>``,
        ``<CN_MOBILE_2>``, ...). Values are compared exactly, so ``restore`` gives back the
        text as it was written.

        Args:
            text: The text to redact.
            lang: ``"en"`` or ``"zh"``.
            vault: The conversation's placeholders so far; it is not modified.

        Returns:
            The redacted text, the extended vault and the findings.

        Raises:
            ValueError: If ``lang`` is not supported.

        """
        spans = self.analyze(text, lang)
        new_vault = dict(vault or {})
        known: dict[tuple[str, str], str] = {}
        last_number: dict[str, int] = {}
        for placeholder in [*new_vault, *(m.group() for m in _PLACEHOLDER_RE.finditer(text))]:
            match = _PLACEHOLDER_RE.fullmatch(placeholder)
            if match is None:
                continue
            entity_type, number = match.group(1), int(match.group(2))
            last_number[entity_type] = max(last_number.get(entity_type, 0), number)
            if placeholder in new_vault:
                known.setdefault((entity_type, new_vault[placeholder]), placeholder)

        pieces: list[str] = []
        cursor = 0
        for span in spans:
            replacement = known.get((span.entity_type, span.text))
            if replacement is None:
                last_number[span.entity_type] = last_number.get(span.entity_type, 0) + 1
                replacement = f"<{span.entity_type}_{last_number[span.entity_type]}>"
                known[(span.entity_type, span.text)] = replacement
                new_vault[replacement] = span.text
            pieces += [text[cursor : span.start], replacement]
            cursor = span.end
        pieces.append(text[cursor:])
        return Redaction(text="".join(pieces), vault=new_vault, spans=tuple(spans))


def mask(text: str, spans: Iterable[PiiSpan]) -> str:
    """Replace each span with its bare type (``<CN_MOBILE>``): irreversible, for data that must not pass."""
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        text = text[: span.start] + f"<{span.entity_type}>" + text[span.end :]
    return text


def restore(text: str, vault: Mapping[str, str]) -> str:
    """Put the original values back in place of the placeholders found in ``vault``.

    Replacement is a single pass, so a restored value is never itself replaced. Placeholders
    missing from the vault are left as they are.

    Args:
        text: Text containing placeholders, e.g. the model's reply.
        vault: Placeholder to original value, as returned in ``Redaction.vault``.

    Returns:
        The text with the placeholders replaced.

    """
    keys = sorted((key for key in vault if key), key=len, reverse=True)
    if not keys:
        return text
    pattern = re.compile("|".join(re.escape(key) for key in keys))
    return pattern.sub(lambda match: vault[match.group()], text)
