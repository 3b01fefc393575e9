"""Emotion of a customer message, in Chinese and English."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import pytest

from agent.emotion import Emotion, detect_emotion

CALM = [
    "你好，我想查一下订单",
    "请问这款耳机有货吗？",
    "谢谢你的帮助",
    "我想买两个充电器",
    "Hello, where is my order?",
    "Do you have this in blue?",
    "Thanks for your help",
    "I would like to buy a charger",
]
CONFUSED = [
    "我不明白你的意思",
    "这是什么意思",
    "我搞不清怎么退货",
    "说明书看不懂",
    "什么？？",
    "I am confused about the refund",
    "What do you mean by that",
    "I don't understand the invoice",
    "How do I apply the coupon",
    "what??",
]
DISSATISFIED = [
    "我很失望",
    "快递太慢了",
    "我的包裹还没到",
    "东西坏了",
    "I am disappointed with this",
    "The delivery is too slow",
    "My parcel never arrived",
    "The box arrived damaged",
]
ANGRY = [
    "你们就是骗子，气死我了",
    "垃圾服务，太过分了",
    "我受够了，离谱",
    "东西坏了，你们就是坑人",
    "This is ridiculous and unacceptable",
    "You are a scam, worst shop ever",
    "I am furious, the package is late",
    "Pathetic and useless support",
]


@pytest.mark.parametrize("text", CALM)
def test_calm(text: str) -> None:
    assert detect_emotion(text) is Emotion.CALM


@pytest.mark.parametrize("text", CONFUSED)
def test_confused(text: str) -> None:
    assert detect_emotion(text) is Emotion.CONFUSED


@pytest.mark.parametrize("text", DISSATISFIED)
def test_dissatisfied(text: str) -> None:
    assert detect_emotion(text) is Emotion.DISSATISFIED


@pytest.mark.parametrize("text", ANGRY)
def test_angry(text: str) -> None:
    assert detect_emotion(text) is Emotion.ANGRY


def test_every_class_has_examples_in_both_languages() -> None:
    for examples in (CALM, CONFUSED, DISSATISFIED, ANGRY):
        zh = [t for t in examples if not t.isascii()]
        en = [t for t in examples if t.isascii()]
        assert len(zh) >= 4
        assert len(en) >= 4


@pytest.mark.parametrize(
    ("quiet", "shouted"),
    [
        ("快递太慢了", "快递太慢了！！！"),
        ("快递太慢了", "快递太慢了!!!"),
        ("我很失望", "我很失望！！！！"),
        ("The delivery is too slow", "The delivery is too slow!!!"),
        ("The delivery is too slow", "THE DELIVERY IS TOO SLOW"),
        ("my parcel never arrived", "MY PARCEL NEVER ARRIVED"),
    ],
)
def test_shouting_escalates_dissatisfied_to_angry(quiet: str, shouted: str) -> None:
    assert detect_emotion(quiet) is Emotion.DISSATISFIED
    assert detect_emotion(shouted) is Emotion.ANGRY


@pytest.mark.parametrize(
    "text", ["HELLO WHERE IS MY ORDER", "谢谢！！！", "Thanks so much!!!", "GREAT SERVICE THANK YOU"]
)
def test_shouting_alone_is_not_anger(text: str) -> None:
    assert detect_emotion(text) is Emotion.CALM


@pytest.mark.parametrize("text", ["Where is my order KF100234", "Is it OK to pay by PayPal", "USB-C or HDMI?"])
def test_a_few_capitals_are_not_shouting(text: str) -> None:
    assert detect_emotion(text) in (Emotion.CALM, Emotion.CONFUSED)


def test_two_angry_words_are_angry() -> None:
    assert detect_emotion("ridiculous") is Emotion.DISSATISFIED
    assert detect_emotion("ridiculous, a scam") is Emotion.ANGRY


def test_an_angry_word_with_a_complaint_is_angry() -> None:
    assert detect_emotion("离谱") is Emotion.DISSATISFIED
    assert detect_emotion("离谱，东西坏了") is Emotion.ANGRY


def test_the_strongest_emotion_wins() -> None:
    assert detect_emotion("我不明白，为什么东西坏了") is Emotion.DISSATISFIED
    assert detect_emotion("I don't understand, this is ridiculous and unacceptable") is Emotion.ANGRY


def test_english_words_match_whole_words_only() -> None:
    assert detect_emotion("Do you have a latest model?") is Emotion.CALM  # not "late"
    assert detect_emotion("The cat is a poorly named model") is Emotion.CALM  # not "poor"


def test_matching_ignores_case() -> None:
    assert detect_emotion("Disappointed") is Emotion.DISSATISFIED
    assert detect_emotion("Confused") is Emotion.CONFUSED


def test_empty_text_is_calm() -> None:
    assert detect_emotion("") is Emotion.CALM


def test_ordering() -> None:
    assert Emotion.ANGRY > Emotion.DISSATISFIED > Emotion.CONFUSED > Emotion.CALM
    assert max(Emotion.CONFUSED, Emotion.ANGRY, Emotion.CALM) is Emotion.ANGRY
    assert sorted(Emotion) == [Emotion.CALM, Emotion.CONFUSED, Emotion.DISSATISFIED, Emotion.ANGRY]


def test_label() -> None:
    assert [e.label for e in Emotion] == ["calm", "confused", "dissatisfied", "angry"]
    assert Emotion.ANGRY.label == "angry"
