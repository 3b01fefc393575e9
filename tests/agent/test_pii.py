"""Tests for the offline Presidio redactor in ``agent.pii``."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.ner import LacTagger
from agent.pii import OfflineNlpEngine, PiiRedactor, PiiSpan, restore

LANGS = ("en", "zh")


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    """Share one redactor, as the application does."""
    return PiiRedactor()


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


# --- Chinese identifiers, landlines, IP addresses and URLs ----------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(first17: str, *, valid: bool = True) -> str:
    """Complete 17 digits into a resident ID with the right (or, if not ``valid``, a wrong) check character."""
    assert len(first17) == 17 and first17.isdigit()
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]
    if not valid:
        check = "0" if check != "0" else "1"
    return first17 + check


def luhn_complete(prefix: str) -> str:
    """Append the digit that makes ``prefix`` pass the Luhn checksum."""
    for last in "0123456789":
        digits = prefix + last
        total = 0
        for position, char in enumerate(reversed(digits)):
            value = int(char) * (2 if position % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


VALID_ID = resident_id("11010519491231002")
VALID_ID_X = next(
    candidate
    for candidate in (resident_id(f"44030419900307{seq:03d}") for seq in range(1000))
    if candidate.endswith("X")
)
MISTYPED_ID = resident_id("32010619851120123", valid=False)
BANK_CARD = luhn_complete("955880123456789012")  # 19 digits, an issuer CREDIT_CARD does not know
BANK_CARD_16 = luhn_complete("955881234567890")


def test_test_helpers_compute_known_checksums() -> None:
    """The helpers reproduce published examples, so the values below are real checksums."""
    assert resident_id("11010519491231002") == "11010519491231002X"  # GB 11643-1999's own example
    assert luhn_complete("411111111111111") == "4111111111111111"
    assert VALID_ID_X.endswith("X") and len(VALID_ID_X) == 18
    assert MISTYPED_ID != resident_id("32010619851120123")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("座机010-12345678，工作日可打", "010-12345678"),
        ("office line 0755-8765 4321 during work hours", "0755-8765 4321"),
        ("电话(021)62345678谢谢", "(021)62345678"),
        ("固话（021）62345678", "（021）62345678"),
        ("call +86 10 1234 5678 please", "+86 10 1234 5678"),
        ("请拨打0086-755-8765-4321联系", "0086-755-8765-4321"),
        ("我家座机是01062345678", "01062345678"),
        ("landline 0571 8888 1234.", "0571 8888 1234"),
    ],
)
def test_cn_landline_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """Landlines with an area code are found, separated or (in context) bare, glued to CJK or not."""
    assert found(redactor, text, lang) == [("CN_LANDLINE", expected)]


def test_bare_landline_needs_context(redactor: PiiRedactor) -> None:
    """A bare 0-led number is only a landline when a word such as 座机 precedes it."""
    assert found(redactor, "01062345678", "zh") == []
    assert found(redactor, "座机01062345678", "zh") == [("CN_LANDLINE", "01062345678")]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机13812345678", "13812345678"),
        ("call +86 138 1234 5678", "+86 138 1234 5678"),
        ("号码0086 186 1234 5678", "0086 186 1234 5678"),
    ],
)
def test_mobiles_are_not_landlines(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """11-digit mobiles, with or without +86, stay CN_MOBILE."""
    assert found(redactor, text, lang) == [("CN_MOBILE", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "template",
    [
        "我的身份证号是{}，请核实",
        "身份证{}谢谢",
        "my ID number is {}.",
        "{}",
    ],
)
@pytest.mark.parametrize("value", [VALID_ID, VALID_ID_X, VALID_ID_X.lower(), MISTYPED_ID])
def test_resident_id_found(redactor: PiiRedactor, lang: str, template: str, value: str) -> None:
    """18-character IDs are found in sentences and glued to CJK, with a valid or wrong check character."""
    assert found(redactor, template.format(value), lang) == [("CN_RESIDENT_ID", value)]


def test_resident_id_checksum_sets_the_score(redactor: PiiRedactor) -> None:
    """A valid checksum scores 0.9; a mistyped ID is still masked, with a lower score above the threshold."""
    (valid,) = redactor.analyze(f"号{VALID_ID}", "en")
    (mistyped,) = redactor.analyze(f"号{MISTYPED_ID}", "en")
    assert valid.score == pytest.approx(0.9)
    assert mistyped.score == pytest.approx(0.6)
    assert 0.4 < mistyped.score < valid.score
    red = redactor.redact(f"{VALID_ID}，打错了，是{MISTYPED_ID}", "zh")
    assert red.text == "<CN_RESIDENT_ID_1>，打错了，是<CN_RESIDENT_ID_2>"


@pytest.mark.parametrize("lang", LANGS)
def test_legacy_15_digit_resident_id_found(redactor: PiiRedactor, lang: str) -> None:
    """15-digit IDs from before 1999 (YYMMDD birth date) are found."""
    assert found(redactor, "老身份证110105491231002还能用吗", lang) == [("CN_RESIDENT_ID", "110105491231002")]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "text",
    [
        "身份证11010519491331002X",  # month 13
        "身份证110105194902300020",  # 30 February
        "身份证110105180001010020",  # born 1800
        "身份证991234199001010020",  # no such province
        "身份证11010519491231002X5",  # 19 characters
    ],
)
def test_implausible_resident_id_ignored(redactor: PiiRedactor, lang: str, text: str) -> None:
    """Numbers without a real province and date of birth are not IDs."""
    assert [t for t, _ in found(redactor, text, lang) if t == "CN_RESIDENT_ID"] == []


def test_resident_id_beats_cards_and_phones(redactor: PiiRedactor) -> None:
    """An ID that also passes Luhn (so CREDIT_CARD or CN_BANK_CARD find it) is reported once, as an ID."""
    luhn_ids = [
        candidate
        for candidate in (resident_id(f"44030419900307{seq:03d}") for seq in range(1000))
        if candidate.isdigit() and candidate.startswith("4")
    ]
    both = next(candidate for candidate in luhn_ids if luhn_complete(candidate[:-1]) == candidate)
    assert found(redactor, f"卡号{both}", "zh") == [("CN_RESIDENT_ID", both)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"我的银行卡号{BANK_CARD}，请退款", BANK_CARD),
        (f"储蓄卡{BANK_CARD_16}谢谢", BANK_CARD_16),
        (f"refund to my bank card {BANK_CARD}", BANK_CARD),
        (f"account {BANK_CARD_16[:4]} {BANK_CARD_16[4:8]} {BANK_CARD_16[8:12]} {BANK_CARD_16[12:]}", None),
    ],
)
def test_cn_bank_card_found_in_context(redactor: PiiRedactor, lang: str, text: str, expected: str | None) -> None:
    """Luhn-valid 16-19 digit bank cards are found when a context word precedes them."""
    if expected is None:
        expected = text.removeprefix("account ")
    assert found(redactor, text, lang) == [("CN_BANK_CARD", expected)]


@pytest.mark.parametrize("lang", LANGS)
def test_cn_bank_card_needs_context_and_luhn(redactor: PiiRedactor, lang: str) -> None:
    """Without context a bank-card-like number is left alone; with a bad checksum too."""
    assert found(redactor, f"编号{BANK_CARD}", lang) == []
    assert found(redactor, BANK_CARD, lang) == []
    wrong = BANK_CARD[:-1] + str((int(BANK_CARD[-1]) + 1) % 10)
    assert found(redactor, f"银行卡{wrong}", lang) == []


def test_card_found_by_both_card_recognizers_is_reported_once(redactor: PiiRedactor) -> None:
    """A UnionPay 62 card matches CREDIT_CARD and CN_BANK_CARD; one span comes back."""
    card = luhn_complete("621234567890123456")
    assert found(redactor, f"储蓄卡{card}", "zh") == [("CREDIT_CARD", card)]
    assert found(redactor, f"银行卡 {card[:4]} {card[4:8]} {card[8:12]} {card[12:16]} {card[16:]}", "zh") == [
        ("CREDIT_CARD", f"{card[:4]} {card[4:8]} {card[8:12]} {card[12:16]} {card[16:]}")
    ]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("护照号E12345678，请登记", "E12345678"),
        ("passport G23456789 expires soon", "G23456789"),
        ("我的证件是G23456789", "G23456789"),
        ("E12345678", "E12345678"),
        ("护照P12345678", "P12345678"),
        ("my passport: D12345678.", "D12345678"),
        ("护照号码EA1234567", "EA1234567"),
    ],
)
def test_cn_passport_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """Passport numbers are found, glued to CJK or not."""
    assert found(redactor, text, lang) == [("CN_PASSPORT", expected)]


@pytest.mark.parametrize("lang", LANGS)
def test_cn_passport_context_raises_the_score(redactor: PiiRedactor, lang: str) -> None:
    """P/S/D numbers need a word like 护照; E/G numbers score higher with one."""
    assert found(redactor, "编号S12345678", lang) == []
    assert found(redactor, "护照S12345678", lang) == [("CN_PASSPORT", "S12345678")]
    plain = redactor.analyze("号E12345678", lang)[0].score
    boosted = redactor.analyze("护照E12345678", lang)[0].score
    assert 0.4 <= plain < boosted


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("车牌号京A12345，停在B2", "京A12345"),
        ("我的车粤B·D12345在门口", "粤B·D12345"),
        ("plate 沪C 8K9J2 is mine", "沪C 8K9J2"),
        ("川A-12345的车主", "川A-12345"),
        ("浙A12345D新能源", "浙A12345D"),
    ],
)
def test_cn_license_plate_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """Mainland plates, 5 or 6 characters after the letter, with or without a separator."""
    assert found(redactor, text, lang) == [("CN_LICENSE_PLATE", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的IP是192.168.1.23，连不上", "192.168.1.23"),
        ("server at 10.0.0.255.", "10.0.0.255"),
        ("地址8.8.8.8谢谢", "8.8.8.8"),
        ("ipv6 2001:db8:85a3::8a2e:370:7334 fails", "2001:db8:85a3::8a2e:370:7334"),
        ("地址2001:0db8:0000:0000:0000:ff00:0042:8329。", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
    ],
)
def test_ip_address_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """IPv4 and IPv6 addresses are found, glued to CJK or not."""
    assert found(redactor, text, lang) == [("IP_ADDRESS", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "text",
    ["256.1.1.1", "1.2.3.4.5", "版本 1.2.3", "会议 12:30:45", "MAC 00:1A:2B:3C:4D:5E", "a::b"],
)
def test_not_ip_address(redactor: PiiRedactor, lang: str, text: str) -> None:
    """Out-of-range octets, dotted runs of five, versions, times and MAC addresses are not IPs."""
    assert [t for t, _ in found(redactor, text, lang) if t == "IP_ADDRESS"] == []


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请看https://kefu.example.com/orders?id=3。谢谢", "https://kefu.example.com/orders?id=3"),
        ("访问www.example.cn，然后登录", "www.example.cn"),
        ("see http://192.168.1.1:8080/admin.", "http://192.168.1.1:8080/admin"),
        ("link: https://example.com/a_b/c-d#top, thanks", "https://example.com/a_b/c-d#top"),
        ("(https://example.com/x)", "https://example.com/x"),
    ],
)
def test_url_found(redactor: PiiRedactor, lang: str, text: str, expected: str) -> None:
    """http(s) and www URLs are found without trailing punctuation, Chinese or not."""
    assert found(redactor, text, lang) == [("URL", expected)]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("text", ["邮箱zhang@www.example.com", "mail admin@example.com", "mail a.b@web.example.org"])
def test_email_domain_is_not_a_url(redactor: PiiRedactor, lang: str, text: str) -> None:
    """An e-mail address is one EMAIL_ADDRESS, never a URL."""
    assert [t for t, _ in found(redactor, text, lang)] == ["EMAIL_ADDRESS"]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(
    "text",
    [
        "订单KF100234什么时候发货？",
        "order KF100234, tracking SF1234567890123",
        "运单号SF1234567890123",
        "tracking number JDVA12345678901",
        "运单号 712345678901",  # ZTO
        "tracking number 0123456789",  # DHL waybill
        "EMS EA123456789CN",
        "价格¥1299.00，优惠后1299元",
        "total 1299元 or ¥1,299.00",
        "预计2026-11-01送达",
        "delivered 2026-11-01 14:30:00",
        "2026.11.01",
        "quantity 12345, 数量 20件, room 1203",
        "型号G2345，新款A12",
        "买了3件，共1299元，订单号KF100235",
        "请在24小时内处理，工单 T-20261101-0001",
    ],
)
def test_new_recognizers_leave_business_text_alone(redactor: PiiRedactor, lang: str, text: str) -> None:
    """Order ids, tracking numbers, prices, dates and quantities are not PII."""
    assert found(redactor, text, lang) == []


@pytest.mark.parametrize("lang", LANGS)
def test_new_entities_round_trip(redactor: PiiRedactor, lang: str) -> None:
    """Every new type gets a numbered placeholder, and restore() gives the text back."""
    text = (
        f"身份证{VALID_ID}，座机010-12345678，手机13812345678，银行卡{BANK_CARD}，护照E12345678，"
        "车牌粤B·D12345，IP 192.168.1.23，网址https://kefu.example.com/a。订单KF100234。"
    )
    red = redactor.redact(text, lang)
    assert red.text == (
        "身份证<CN_RESIDENT_ID_1>，座机<CN_LANDLINE_1>，手机<CN_MOBILE_1>，银行卡<CN_BANK_CARD_1>，"
        "护照<CN_PASSPORT_1>，车牌<CN_LICENSE_PLATE_1>，IP <IP_ADDRESS_1>，网址<URL_1>。订单KF100234。"
    )
    assert restore(red.text, red.vault) == text
    again = redactor.redact(f"再说一次{VALID_ID}和{MISTYPED_ID}", lang, red.vault)
    assert again.text == "再说一次<CN_RESIDENT_ID_1>和<CN_RESIDENT_ID_2>"
    assert restore(again.text, again.vault) == f"再说一次{VALID_ID}和{MISTYPED_ID}"


# --- names and addresses (NER) ----------------------------------------------------------------


def test_names_and_addresses_get_placeholders_and_round_trip(redactor: PiiRedactor) -> None:
    """Chinese names and a full address become <PERSON_n> and one <LOCATION_1>; restore() undoes it."""
    text = "收件人王芳，手机13812345678，地址上海市浦东新区张江路88号，备用联系人李建国。"
    red = redactor.redact(text, "zh")
    assert red.text == "收件人<PERSON_1>，手机<CN_MOBILE_1>，地址<LOCATION_1>，备用联系人<PERSON_2>。"
    assert red.vault["<LOCATION_1>"] == "上海市浦东新区张江路88号"
    assert restore(red.text, red.vault) == text
    again = redactor.redact("王芳说欧阳娜娜也要一台", "zh", red.vault)
    assert again.text == "<PERSON_1>说<PERSON_3>也要一台"
    assert restore(again.text, again.vault) == "王芳说欧阳娜娜也要一台"


def test_english_names_and_addresses_round_trip(redactor: PiiRedactor) -> None:
    text = "I'm Emma Clark, please ship to 12 Oak Street, Boston, MA 02115 and mail emma@example.com."
    red = redactor.redact(text, "en")
    assert red.text == "I'm <PERSON_1>, please ship to <LOCATION_1> and mail <EMAIL_ADDRESS_1>."
    assert restore(red.text, red.vault) == text


def test_ner_leaves_placeholders_and_business_words_alone(redactor: PiiRedactor) -> None:
    """Earlier placeholders, products, roles and cities are not names or addresses."""
    assert found(redactor, "<PERSON_1>说<LOCATION_1>收不到，找客服", "zh") == []
    assert found(redactor, "扫地机器人寄到北京要几天？订单KF100234", "zh") == []
    assert found(redactor, "Ask <PERSON_1> whether the Lumo Air Pro ships to London", "en") == []


def test_supported_entities_follow_the_loaded_taggers(redactor: PiiRedactor) -> None:
    assert {"PERSON", "LOCATION"} <= set(redactor.supported_entities)
    patterns_only = PiiRedactor(taggers=())
    assert "LOCATION" not in patterns_only.supported_entities
    assert "PERSON" in patterns_only.supported_entities  # names after "my name is", "我叫" need no model
    assert found(patterns_only, "王芳的手机13812345678", "zh") == [("CN_MOBILE", "13812345678")]


def test_one_tagger_per_supported_language() -> None:
    with pytest.raises(ValueError, match="distinct languages"):
        PiiRedactor(taggers=(LacTagger(), LacTagger()))


def test_known_terms_are_never_names_or_addresses() -> None:
    """A product name is no one's personal data, whatever the NER model thinks of its words."""
    text = "Is the Nestia X1 Robot Vacuum and Mop in stock? My name is Priya Natarajan."
    catalog = PiiRedactor(known_terms=["Nestia X1 Robot Vacuum and Mop", "扫拖一体机器人 X1"])
    assert [(s.entity_type, s.text) for s in catalog.analyze(text, "en")] == [("PERSON", "Priya Natarajan")]


@pytest.mark.parametrize(
    ("text", "lang", "name"),
    [
        ("my name is paloma lachance and I need help", "en", "paloma lachance"),
        ("收件人写Omar Kowalski，是我家人。", "zh", "Omar Kowalski"),
        ("我叫李雷。", "zh", "李雷"),
        ("Kind regards, Tom", "en", "Tom"),
    ],
)
def test_a_name_after_a_cue_is_found_in_any_case_and_script(
    redactor: PiiRedactor, text: str, lang: str, name: str
) -> None:
    assert ("PERSON", name) in [(s.entity_type, s.text) for s in redactor.analyze(text, lang)]


@pytest.mark.parametrize("text", ["my name is in the order", "name: KF100234", "my name is on the invoice"])
def test_a_cue_without_a_name_finds_nothing(redactor: PiiRedactor, text: str) -> None:
    assert [s for s in redactor.analyze(text, "en") if s.entity_type == "PERSON"] == []


def test_presidio_debug_logs_never_carry_the_data(redactor: PiiRedactor, caplog: pytest.LogCaptureFixture) -> None:
    """Presidio logs the context words it checks at DEBUG; Kefu keeps that logger quieter."""
    with caplog.at_level(logging.DEBUG):
        redactor.analyze("手机13812345678，身份证11010519491231002X", "zh")
    assert "13812345678" not in caplog.text and "11010519491231002X" not in caplog.text
