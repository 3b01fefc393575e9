"""Tests for the offline Presidio redactor in ``agent.pii``."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import spacy.cli

from agent.pii import OfflineNlpEngine, PiiRedactor, PiiSpan, restore

LANGS = ("en", "zh")


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    """Share one redactor, as the application does."""
    return PiiRedactor()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every socket connection, subprocess and spaCy download fail, and record attempts."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: object, **kwargs: object) -> None:
            attempts.append(what)
            raise OSError(f"network disabled in tests: {what}")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(spacy.cli, "download", refuse("spacy.cli.download"))
    yield attempts


def found(redactor: PiiRedactor, text: str, lang: str) -> list[tuple[str, str]]:
    """Return (entity type, matched text) for each finding."""
    return [(span.entity_type, span.text) for span in redactor.analyze(text, lang)]


# --- construction ---------------------------------------------------------------------------


def test_construction_and_analysis_never_touch_the_network(no_network: list[str]) -> None:
    """Building the analyzer and analyzing must not download a model or open a socket."""
    fresh = PiiRedactor()
    for lang in LANGS:
        assert found(fresh, "我的手机是13812345678谢谢", lang) == [("CN_MOBILE", "13812345678")]
        assert found(fresh, "mail zhang.san@example.com", lang) == [("EMAIL_ADDRESS", "zhang.san@example.com")]
    assert no_network == []


def test_nlp_engine_tokenizes_cjk_runs_apart_from_digits() -> None:
    """The offline engine keeps CJK words whole so context words like 手机 can match."""
    engine = OfflineNlpEngine()
    engine.load()
    artifacts = engine.process_text("我的手机是13812345678谢谢, Call me", "zh")
    assert [token.text for token in artifacts.tokens] == ["我的手机是", "13812345678", "谢谢", ",", "Call", "me"]
    assert artifacts.tokens_indices == [0, 5, 16, 18, 20, 25]
    assert artifacts.lemmas[-2:] == ["call", "me"]
    assert artifacts.entities == []
    with pytest.raises(ValueError, match="not supported"):
        engine.process_text("hello", "fr")


def test_unsupported_language_is_rejected(redactor: PiiRedactor) -> None:
    """Only en and zh are accepted."""
    with pytest.raises(ValueError, match="unsupported language"):
        redactor.analyze("a@b.com", "fr")


def test_invalid_threshold_is_rejected() -> None:
    """The threshold is a probability."""
    with pytest.raises(ValueError, match="score_threshold"):
        PiiRedactor(score_threshold=1.5)


# --- positives ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email me at john.doe+kefu@example.co.uk.", "john.doe+kefu@example.co.uk"),
        ("我的邮箱是zhang.san@example.com谢谢", "zhang.san@example.com"),
        ("联系：li_si@mail.qq.com，尽快", "li_si@mail.qq.com"),
    ],
)
def test_email_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """E-mail addresses are found in plain and CJK-glued text."""
    assert found(redactor, text, lang) == [("EMAIL_ADDRESS", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is 4111 1111 1111 1111 thanks", "4111 1111 1111 1111"),
        ("card 5555-5555-5555-4444", "5555-5555-5555-4444"),
        ("amex 378282246310005", "378282246310005"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        ("卡号6212345678901234569谢谢", "6212345678901234569"),
        ("银行卡是6212 3456 7890 1265，请退款", "6212 3456 7890 1265"),
    ],
)
def test_credit_card_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """Luhn-valid card numbers of 13-19 digits are found, with or without separators."""
    assert found(redactor, text, lang) == [("CREDIT_CARD", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +44 7700 900123 please", "+44 7700 900123"),
        ("my number is +1 415-555-0123.", "+1 415-555-0123"),
        ("tel +1 (415) 555 0123 x 2", "+1 (415) 555 0123"),
        ("phone +1 415 555 0123 4 items", "+1 415 555 0123"),
        ("Berlin office +49 30 901820", "+49 30 901820"),
        ("reach me at (415) 555-0123", "(415) 555-0123"),
        ("office: 415-555-0123", "415-555-0123"),
        ("my phone is 415 555 0123", "415 555 0123"),
        ("请打+44 7700 900123联系我", "+44 7700 900123"),
        ("电话：415 555 0123", "415 555 0123"),
    ],
)
def test_phone_number_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """International and North American numbers are found, also glued to CJK text."""
    assert found(redactor, text, lang) == [("PHONE_NUMBER", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机是13812345678谢谢", "13812345678"),
        ("手机号 138 1234 5678，晚上联系", "138 1234 5678"),
        ("手机:+86-138-1234-5678", "+86-138-1234-5678"),
        ("call me on +86 13912345678", "+86 13912345678"),
        ("号码0086 186 1234 5678谢谢", "0086 186 1234 5678"),
        ("号码8615012345678", "8615012345678"),
        ("mobile 199-1234-5678.", "199-1234-5678"),
    ],
)
def test_cn_mobile_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """Mainland mobiles are found with any prefix and separators, glued to CJK text or not."""
    assert found(redactor, text, lang) == [("CN_MOBILE", expected)]


def test_several_entities_in_one_message(redactor: PiiRedactor) -> None:
    """Different entities in one message are all reported, in order, with offsets."""
    text = "电话13812345678，邮箱a@b.com，卡号4111111111111111"
    spans = redactor.analyze(text, "zh")
    assert [s.entity_type for s in spans] == ["CN_MOBILE", "EMAIL_ADDRESS", "CREDIT_CARD"]
    for span in spans:
        assert text[span.start : span.end] == span.text
        assert 0.4 <= span.score <= 1.0


def test_context_words_raise_the_score(redactor: PiiRedactor) -> None:
    """Presidio's context enhancement works through the offline engine, in both languages."""
    assert found(redactor, "415 555 0123", "en") == []
    assert found(redactor, "my phone is 415 555 0123", "en") == [("PHONE_NUMBER", "415 555 0123")]
    plain = redactor.analyze("是13812345678", "zh")[0].score
    boosted = redactor.analyze("手机是13812345678", "zh")[0].score
    assert boosted > plain


# --- negatives ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "text",
    [
        "订单KF100234什么时候发货？",
        "order KF100234 has shipped",
        "价格¥1299.00，优惠后1299元",
        "it costs $1,299.00 or 1299 yuan",
        "预计2026-11-01送达",
        "delivered on 2026-11-01 at 14:30",
        "验证码 123456",
        "quantity 12345, room 1203",
        "tracking SF13812345678",
        "card 4111 1111 1111 1112",
        "卡号4111111111111112",
        "user@localhost",
        "a..b@example.com",
    ],
)
def test_not_pii(redactor: PiiRedactor, lang: str, text: str) -> None:
    """Order ids, prices, dates, short numbers and invalid values are left alone."""
    assert found(redactor, text, lang) == []


# --- redaction and the vault ----------------------------------------------------------------


def test_redact_numbers_per_type(redactor: PiiRedactor) -> None:
    """Two different numbers get _1 and _2; a repeat reuses its placeholder."""
    text = "我的手机13812345678，备用13912345678，邮箱a@b.com，再说一次13812345678"
    red = redactor.redact(text, "zh")
    assert red.text == "我的手机<CN_MOBILE_1>，备用<CN_MOBILE_2>，邮箱<EMAIL_ADDRESS_1>，再说一次<CN_MOBILE_1>"
    assert red.vault == {
        "<CN_MOBILE_1>": "13812345678",
        "<CN_MOBILE_2>": "13912345678",
        "<EMAIL_ADDRESS_1>": "a@b.com",
    }
    assert len(red.spans) == 4
    assert all(isinstance(span, PiiSpan) for span in red.spans)


def test_vault_carries_placeholders_across_messages(redactor: PiiRedactor) -> None:
    """Passing the vault back keeps placeholders stable and continues the numbering."""
    first = redactor.redact("call me on 13812345678", "en")
    second = redactor.redact("还是13812345678，或者13700001111，mail x@y.cn", "zh", first.vault)
    assert first.text == "call me on <CN_MOBILE_1>"
    assert second.text == "还是<CN_MOBILE_1>，或者<CN_MOBILE_2>，mail <EMAIL_ADDRESS_1>"
    assert second.vault == {
        "<CN_MOBILE_1>": "13812345678",
        "<CN_MOBILE_2>": "13700001111",
        "<EMAIL_ADDRESS_1>": "x@y.cn",
    }
    assert first.vault == {"<CN_MOBILE_1>": "13812345678"}  # the input vault is not modified


def test_same_digits_as_another_type_get_their_own_placeholder(redactor: PiiRedactor) -> None:
    """Placeholders are reused only for the same value of the same type."""
    vault = {"<PHONE_NUMBER_1>": "13812345678"}
    red = redactor.redact("13812345678", "zh", vault)
    assert red.text == "<CN_MOBILE_1>"
    assert red.vault == {"<PHONE_NUMBER_1>": "13812345678", "<CN_MOBILE_1>": "13812345678"}


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("我的手机是13812345678谢谢，邮箱zhang.san@example.com，卡号6212 3456 7890 1265。", "zh"),
        ("Call +1 (415) 555-0123 or +44 7700 900123; card 4111-1111-1111-1111, mail a.b@c.io.", "en"),
        ("no personal data here, order KF100234, ¥1299.00", "en"),
        ("", "en"),
    ],
)
def test_restore_round_trip(redactor: PiiRedactor, text: str, lang: str) -> None:
    """restore() undoes redact() exactly."""
    red = redactor.redact(text, lang)
    for value in red.vault.values():
        assert value not in red.text
    assert restore(red.text, red.vault) == text


def test_restore_is_single_pass_and_leaves_unknown_placeholders() -> None:
    """Restored values are not substituted again, and unknown placeholders stay."""
    vault = {"<EMAIL_ADDRESS_1>": "<EMAIL_ADDRESS_2>", "<EMAIL_ADDRESS_2>": "b@c.com"}
    text = "<EMAIL_ADDRESS_1> <EMAIL_ADDRESS_2> <CN_MOBILE_9>"
    assert restore(text, vault) == "<EMAIL_ADDRESS_2> b@c.com <CN_MOBILE_9>"
    assert restore(text, {}) == text


def test_existing_placeholders_are_untouched(redactor: PiiRedactor) -> None:
    """Placeholders already in the text are neither reported nor broken, and are not reused."""
    vault = {"<EMAIL_ADDRESS_1>": "a@b.com", "<CN_MOBILE_1>": "13812345678"}
    text = "之前的<EMAIL_ADDRESS_1>和<CN_MOBILE_1>，新的c@d.com"
    red = redactor.redact(text, "zh", vault)
    assert red.text == "之前的<EMAIL_ADDRESS_1>和<CN_MOBILE_1>，新的<EMAIL_ADDRESS_2>"
    assert [span.text for span in red.spans] == ["c@d.com"]
    assert restore(red.text, red.vault) == "之前的a@b.com和13812345678，新的c@d.com"


def test_placeholders_in_text_without_vault_are_not_renumbered(redactor: PiiRedactor) -> None:
    """A placeholder in the text, even unknown to the vault, keeps its number to itself."""
    red = redactor.redact("<CN_MOBILE_1> 13912345678", "zh")
    assert red.text == "<CN_MOBILE_1> <CN_MOBILE_2>"


def test_concurrent_analysis_is_consistent(redactor: PiiRedactor) -> None:
    """Calls from a thread pool give the same answers as sequential ones."""
    texts = [
        ("我的手机是13812345678谢谢", "zh"),
        ("Call +1 415-555-0123, mail a@b.com", "en"),
        ("卡号4111111111111111", "zh"),
        ("order KF100234", "en"),
    ] * 25
    expected = [redactor.analyze(text, lang) for text, lang in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        actual = list(pool.map(lambda item: redactor.analyze(*item), texts))
    assert actual == expected
