"""The WeChat channel, driven with signed XML callbacks over HTTP against a local fake of WeChat's API."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from agent.intents import IntentModel
from core.errors import BackendError, InvalidInputError
from core.settings import Settings
from core.types import Channel
from serving.app import create_app
from serving.service import KefuService, TurnResult
from serving.wechat import WeChatChannel, parse_xml, split_reply
from serving.wechat_crypto import DecryptError, MessageCrypto, SignatureError, check_signature, signature
from tests.serving.fake_wechat import FakeWeChat

TOKEN = "kefu-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx-test-app"
SECRET = "test-secret"
ACCOUNT = "gh_0123456789ab"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclasses.dataclass
class WeChat:
    """The app with the channel on, its HTTP client and the fake WeChat API behind it."""

    app: FastAPI
    client: TestClient
    fake: FakeWeChat
    settings: Settings

    @property
    def service(self) -> KefuService:
        service: KefuService = self.app.state.service
        return service

    @property
    def channel(self) -> WeChatChannel:
        channel: WeChatChannel = self.app.state.wechat
        return channel

    def post(self, xml: str, query: dict[str, str] | None = None) -> Any:
        return self.client.post("/wechat", params=query or signed(), content=xml.encode())

    def count_turns(self, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0, reply: str | None = None) -> list[str]:
        """Wrap the service's ``chat``: record each turn's message id, optionally slow it or replace its reply."""
        real = self.service.chat
        calls: list[str] = []

        def chat(*args: Any, **kwargs: Any) -> TurnResult:
            calls.append(kwargs.get("message_id", ""))
            time.sleep(delay_s)
            result = real(*args, **kwargs)
            return result if reply is None else dataclasses.replace(result, reply=reply)

        monkeypatch.setattr(self.service, "chat", chat)
        return calls


@pytest.fixture
def make_wechat(settings: Settings, intent_model: IntentModel) -> Iterator[Callable[..., WeChat]]:
    """Start the app with the WeChat channel on (token, app id and secret, API at the fake), with overrides."""
    with ExitStack() as stack:

        def factory(**overrides: Any) -> WeChat:
            fake = stack.enter_context(FakeWeChat(APP_ID, SECRET))
            update: dict[str, Any] = {
                "wechat_token": SecretStr(TOKEN),
                "wechat_app_id": APP_ID,
                "wechat_app_secret": SecretStr(SECRET),
                "wechat_api_base": fake.base_url,
                **overrides,
            }
            local = settings.model_copy(update=update)
            app = create_app(
                local, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model)
            )
            client = stack.enter_context(TestClient(app))
            return WeChat(app, client, fake, local)

        yield factory


def signed(token: str = TOKEN, **extra: str) -> dict[str, str]:
    timestamp, nonce = str(int(time.time())), "1320562132"
    return {"signature": signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, **extra}


def text_xml(content: str, msg_id: str = "6054768590064713728", openid: str = OPENID) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def message_xml(kind: str, openid: str = OPENID, **fields: str) -> str:
    extra = "".join(f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{extra}</xml>"
    )


def passive(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return parse_xml(response.text)


# -- URL verification -------------------------------------------------------------------------


def test_url_verification_echoes_echostr(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    response = wechat.client.get("/wechat", params=signed(echostr="8253046527811929123"))
    assert response.status_code == 200
    assert response.text == "8253046527811929123"
    assert response.headers["content-type"].startswith("text/plain")


def test_url_verification_in_safe_mode_decrypts_echostr(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat(wechat_aes_key=SecretStr(AES_KEY))
    crypto = MessageCrypto(TOKEN, AES_KEY, APP_ID)
    echostr = crypto.encrypt("5927782489442352469")
    query = signed()
    query |= {"echostr": echostr, "msg_signature": crypto.sign(query["timestamp"], query["nonce"], echostr)}
    response = wechat.client.get("/wechat", params=query)
    assert response.status_code == 200
    assert response.text == "5927782489442352469"
    query["msg_signature"] = "0" * 40
    assert wechat.client.get("/wechat", params=query).status_code == 403


def test_a_wrong_signature_is_403(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    forged = signed(token="not-the-token")
    response = wechat.client.get("/wechat", params={**forged, "echostr": "x"})
    assert response.status_code == 403
    assert "signature" in response.json()["detail"]
    response = wechat.post(text_xml("你好"), forged)
    assert response.status_code == 403
    assert wechat.service.desk.answered(f"wechat:{OPENID}", "6054768590064713728") is None


BAD_CALLBACKS: list[tuple[dict[str, str] | None, str, str]] = [
    (None, "<xml><ToUserName>", "malformed XML"),
    (None, "not xml at all", "malformed XML"),
    (None, "<note><MsgType>text</MsgType></note>", "root element"),
    (None, message_xml("text").replace(f"<![CDATA[{OPENID}]]>", ""), "FromUserName"),
    (None, message_xml("text"), "Content"),
    (None, message_xml("text", Content="x").replace(OPENID, "../etc"), "openid"),
    (None, text_xml("hi", msg_id="1 OR 1=1"), "MsgId"),
    (None, '<!DOCTYPE xml [<!ENTITY x "boom">]><xml><Content>&x;</Content></xml>', "DOCTYPE"),
    ({"timestamp": "1", "nonce": "2"}, text_xml("hi"), "signature"),
    (signed(encrypt_type="aes"), text_xml("hi"), "KEFU_WECHAT_AES_KEY"),
]


def test_bad_callbacks_are_400_with_a_reason(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()  # one app for all cases: starting one is the slow part
    for query, body, reason in BAD_CALLBACKS:
        response = wechat.post(body, query)
        assert response.status_code == 400, (body, response.text)
        assert reason in response.json()["detail"], (body, response.text)


def test_an_unconfigured_channel_is_404(settings: Settings, intent_model: IntentModel) -> None:
    app = create_app(settings, service_factory=lambda s: KefuService.start(s, use_llm=False, intent_model=intent_model))
    with TestClient(app) as client:
        response = client.post("/wechat", params=signed(), content=text_xml("你好").encode())
        assert response.status_code == 404
        assert response.json()["detail"] == "the WeChat channel is not configured"
        assert client.get("/wechat", params=signed(echostr="1")).status_code == 404
        assert "/wechat" not in client.get("/openapi.json").json()["paths"]


# -- text messages ----------------------------------------------------------------------------


def test_a_text_message_gets_a_passive_reply_in_the_customers_language(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    reply = passive(wechat.post(text_xml("你好", msg_id="1001")))
    assert reply["ToUserName"] == OPENID
    assert reply["FromUserName"] == ACCOUNT
    assert reply["MsgType"] == "text"
    assert CJK.search(reply["Content"])
    assert abs(int(reply["CreateTime"]) - time.time()) < 60

    english = passive(wechat.post(text_xml("hello", msg_id="1002", openid="oEnglishSpeaker_0000000000")))
    assert english["Content"] and not CJK.search(english["Content"])

    # The customer is a guest created on first contact, and the conversation is wechat:<openid>.
    customer_id = wechat.service.desk.channel_customer(Channel.WECHAT, OPENID)
    _state, history = wechat.service.history(f"wechat:{OPENID}", customer_id)
    assert [(entry.role, entry.text) for entry in history] == [("customer", "你好"), ("agent", reply["Content"])]
    assert wechat.fake.sent == []  # a passive reply needs no API call


def test_the_encrypted_mode_round_trips(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat(wechat_aes_key=SecretStr(AES_KEY))
    crypto = MessageCrypto(TOKEN, AES_KEY, APP_ID)
    encrypted = crypto.encrypt(text_xml("你好", msg_id="2001"))
    query = signed(encrypt_type="aes", openid=OPENID)
    query["msg_signature"] = crypto.sign(query["timestamp"], query["nonce"], encrypted)
    body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"

    envelope = passive(wechat.post(body, query))
    assert set(envelope) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    crypto.verify(envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    reply = parse_xml(crypto.decrypt(envelope["Encrypt"]))
    assert reply["ToUserName"] == OPENID
    assert reply["FromUserName"] == ACCOUNT
    assert CJK.search(reply["Content"])

    query["msg_signature"] = crypto.sign(query["timestamp"], query["nonce"], encrypted + "x")
    assert wechat.post(body, query).status_code == 403
    other_app = MessageCrypto(TOKEN, AES_KEY, "wx-another-app").encrypt(text_xml("你好", msg_id="2002"))
    query["msg_signature"] = crypto.sign(query["timestamp"], query["nonce"], other_app)
    response = wechat.post(body.replace(encrypted, other_app), query)
    assert response.status_code == 400
    assert "app id" in response.json()["detail"]


def test_a_retried_msgid_runs_one_turn_and_gets_one_reply(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    wechat = make_wechat()
    turns = wechat.count_turns(monkeypatch)
    first = wechat.post(text_xml("你好", msg_id="3001"))
    assert passive(first)["Content"]
    for _retry in range(3):
        retry = wechat.post(text_xml("你好", msg_id="3001"))
        assert (retry.status_code, retry.text) == (200, "success")
    assert turns == ["3001"]
    customer_id = wechat.service.desk.channel_customer(Channel.WECHAT, OPENID)
    assert len(wechat.service.audit(f"wechat:{OPENID}", customer_id)) == 1
    assert wechat.fake.sent == []


def test_a_slow_turn_answers_success_at_once_and_delivers_through_the_api(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    wechat = make_wechat(wechat_reply_within_s=0.3)
    turns = wechat.count_turns(monkeypatch, delay_s=1.5)
    started = time.monotonic()
    response = wechat.post(text_xml("你好", msg_id="4001"))
    assert (response.status_code, response.text) == (200, "success")
    assert time.monotonic() - started < 1.2
    # WeChat's retries while the turn still runs get "success" too, and no second turn.
    assert wechat.post(text_xml("你好", msg_id="4001")).text == "success"

    sent = wechat.fake.wait_for(1)
    assert len(sent) == 1
    assert sent[0].touser == OPENID
    assert CJK.search(sent[0].content)
    assert "\\u" not in wechat.fake.raw_bodies[0].decode()  # UTF-8 JSON, not ASCII escapes
    time.sleep(0.3)
    assert wechat.post(text_xml("你好", msg_id="4001")).text == "success"
    assert len(wechat.fake.sent) == 1
    assert turns == ["4001"]


def test_a_late_reply_without_api_credentials_is_logged(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wechat = make_wechat(wechat_reply_within_s=0.2, wechat_app_id=None, wechat_app_secret=None)
    wechat.count_turns(monkeypatch, delay_s=0.6)
    assert wechat.post(text_xml("你好", msg_id="4101")).text == "success"
    deadline = time.monotonic() + 10
    while "could not be delivered" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "KEFU_WECHAT_APP_SECRET" in caplog.text
    assert OPENID not in caplog.text
    assert wechat.fake.sent == []


def test_a_long_reply_is_split_into_ordered_parts(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    long_reply = "".join(f"第{n}句话讲的是订单的一个细节，内容不算短。" for n in range(1, 9))
    wechat = make_wechat(wechat_max_reply_chars=50)
    wechat.count_turns(monkeypatch, reply=long_reply)
    first = passive(wechat.post(text_xml("我的订单", msg_id="5001")))["Content"]
    rest = [message.content for message in wechat.fake.wait_for(3)]
    parts = [first, *rest]
    assert all(len(part) <= 50 for part in parts)
    assert all(part.endswith("。") for part in parts)
    assert "".join(parts) == long_reply
    assert len(parts) == len(split_reply(long_reply, 50)) == 4


def test_an_empty_reply_while_a_human_owns_the_conversation_is_success(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    wechat = make_wechat()
    wechat.count_turns(monkeypatch, reply="")
    response = wechat.post(text_xml("你好", msg_id="5101"))
    assert (response.status_code, response.text) == (200, "success")


# -- other messages and events ----------------------------------------------------------------


NON_TEXT = [
    ("image", {"PicUrl": "http://mmbiz.qpic.cn/x", "MediaId": "m1", "MsgId": "6001"}),
    ("voice", {"MediaId": "m2", "Format": "amr", "MsgId": "6002"}),
    ("video", {"MediaId": "m3", "ThumbMediaId": "t3", "MsgId": "6003"}),
    ("location", {"Location_X": "23.1", "Location_Y": "113.3", "Label": "广州", "MsgId": "6004"}),
    ("link", {"Title": "t", "Description": "d", "Url": "http://example.com", "MsgId": "6005"}),
]


def test_a_non_text_message_gets_a_polite_text_only_reply(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    for kind, fields in NON_TEXT:
        reply = passive(wechat.post(message_xml(kind, **fields)))
        assert reply["ToUserName"] == OPENID
        assert "文字" in reply["Content"], kind  # Chinese by default
    # A customer who wrote in English gets it in English.
    english = "oEnglishSpeaker_0000000000"
    passive(wechat.post(text_xml("hello", msg_id="6101", openid=english)))
    image = passive(wechat.post(message_xml("image", openid=english, MediaId="m", MsgId="6102")))
    assert "only read text" in image["Content"]
    assert len(wechat.fake.sent) == 0


def test_a_recognised_voice_message_is_a_text_message(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    voice = passive(wechat.post(message_xml("voice", MediaId="m", Format="amr", Recognition="你好", MsgId="6201")))
    assert "文字" not in voice["Content"]
    customer_id = wechat.service.desk.channel_customer(Channel.WECHAT, OPENID)
    assert wechat.service.history(f"wechat:{OPENID}", customer_id)[1][0].text == "你好"


def test_subscribing_gets_a_welcome_and_other_events_success(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    welcome = passive(wechat.post(message_xml("event", Event="subscribe")))
    assert "欢迎" in welcome["Content"] and "welcome" in welcome["Content"]
    for event in ("unsubscribe", "CLICK", "VIEW"):
        assert wechat.post(message_xml("event", Event=event)).text == "success"


# -- outbound ---------------------------------------------------------------------------------


def test_deliver_sends_through_the_customer_service_api(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    wechat.channel.deliver(f"wechat:{OPENID}", "G0000000000", "人工客服 Lin 已加入对话。")
    assert [(m.touser, m.content) for m in wechat.fake.sent] == [(OPENID, "人工客服 Lin 已加入对话。")]
    with pytest.raises(InvalidInputError, match="not a WeChat conversation"):
        wechat.channel.deliver("web-1", "C0001", "hello")


def test_an_expired_token_is_refreshed_and_the_message_sent_once(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    wechat.channel.deliver(f"wechat:{OPENID}", "G0000000000", "第一条")
    wechat.channel.deliver(f"wechat:{OPENID}", "G0000000000", "第二条")
    assert wechat.fake.token_requests == 1  # cached between messages
    wechat.fake.expire_token_once()
    wechat.channel.deliver(f"wechat:{OPENID}", "G0000000000", "第三条")
    assert wechat.fake.token_requests == 2
    assert [(m.content, m.token) for m in wechat.fake.sent] == [
        ("第一条", "TOKEN-1"),
        ("第二条", "TOKEN-1"),
        ("第三条", "TOKEN-2"),
    ]


def test_the_access_token_is_fetched_once_by_concurrent_senders(make_wechat: Callable[..., WeChat]) -> None:
    wechat = make_wechat()
    threads = [
        threading.Thread(target=wechat.channel.deliver, args=(f"wechat:{OPENID}", "G0", f"消息{n}")) for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(wechat.fake.sent) == 6
    assert wechat.fake.token_requests == 1


def test_deliver_without_credentials_or_with_a_wrong_secret_raises(settings: Settings) -> None:
    with FakeWeChat(APP_ID, SECRET) as fake:
        base = {"wechat_token": SecretStr(TOKEN), "wechat_api_base": fake.base_url}
        service: Any = object()  # delivering never touches the service
        bare = WeChatChannel(settings.model_copy(update=base), service)
        with pytest.raises(BackendError, match="KEFU_WECHAT_APP_SECRET"):
            bare.deliver(f"wechat:{OPENID}", "G0", "hi")
        bare.close()
        wrong = settings.model_copy(
            update={**base, "wechat_app_id": APP_ID, "wechat_app_secret": SecretStr("not-the-secret")}
        )
        channel = WeChatChannel(wrong, service)
        with pytest.raises(BackendError, match="40125"):
            channel.deliver(f"wechat:{OPENID}", "G0", "hi")
        channel.close()
        assert fake.sent == []


# -- units: crypto and splitting ---------------------------------------------------------------

# The published test vector of wechatpy (tests/test_crypto.py), which follows WeChat's WXBizMsgCrypt.
VECTOR_TOKEN = "123456"
VECTOR_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
VECTOR_APP_ID = "wx49f0ab532d5d035a"
VECTOR_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
VECTOR_ENCRYPTED = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtOb"
    "vesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
    "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
    "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)
VECTOR_INBOUND = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymz"
    "xh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIi"
    "OAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvc"
    "cTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)


@pytest.fixture
def vector() -> MessageCrypto:
    return MessageCrypto(VECTOR_TOKEN, VECTOR_KEY, VECTOR_APP_ID)


def test_crypto_matches_the_known_vector(vector: MessageCrypto) -> None:
    assert vector.encrypt(VECTOR_REPLY, random_prefix=b"1234567890123456") == VECTOR_ENCRYPTED
    assert vector.sign("1411525903", "461056294", VECTOR_ENCRYPTED) == "407518b7649e86ef23978113f92d27afa9296533"
    vector.verify("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", VECTOR_INBOUND)
    inbound = parse_xml(vector.decrypt(VECTOR_INBOUND))
    assert (inbound["FromUserName"], inbound["Content"], inbound["MsgId"]) == (
        "messense",
        "test",
        "4363689963896700987",
    )
    assert vector.decrypt(VECTOR_ENCRYPTED) == VECTOR_REPLY


def test_crypto_round_trips_and_pads_to_32_byte_blocks(vector: MessageCrypto) -> None:
    for message in ("", "a", "你好" * 7, "x" * 100, text_xml("订单 ]]> 到哪了？")):
        encrypted = vector.encrypt(message)
        assert len(base64.b64decode(encrypted)) % 32 == 0
        assert vector.decrypt(encrypted) == message
    assert vector.encrypt("same") != vector.encrypt("same")  # a fresh random prefix each time


def test_crypto_refuses_a_tampered_signature_or_message(vector: MessageCrypto) -> None:
    with pytest.raises(SignatureError):
        vector.verify("74d92dfeb87ba7c714f89d98870ae5eb62dff26e", "1411525903", "461056294", VECTOR_INBOUND)
    with pytest.raises(SignatureError):
        vector.verify("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525904", "461056294", VECTOR_INBOUND)
    key = base64.b64decode(VECTOR_KEY + "=")
    for plain in (b"x" * 31 + b"\x00", b"x" * 31 + b"\x21", b"x" * 30 + b"\x01\x02"):  # 0, 33, mismatched pads
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        with pytest.raises(DecryptError, match="padding"):
            vector.decrypt(base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode())
    with pytest.raises(DecryptError, match="base64"):
        vector.decrypt("not base64!")
    with pytest.raises(DecryptError, match="AES blocks"):
        vector.decrypt(base64.b64encode(b"x" * 20).decode())


def test_crypto_refuses_another_app_id() -> None:
    theirs = MessageCrypto(VECTOR_TOKEN, VECTOR_KEY, "wx-another-app").encrypt("<xml/>")
    with pytest.raises(DecryptError, match="another app id"):
        MessageCrypto(VECTOR_TOKEN, VECTOR_KEY, VECTOR_APP_ID).decrypt(theirs)
    with pytest.raises(DecryptError):  # another key: garbage padding, or a length or app id that does not fit
        MessageCrypto(VECTOR_TOKEN, AES_KEY, VECTOR_APP_ID).decrypt(VECTOR_INBOUND)


def test_plain_signature_is_sha1_of_the_sorted_parts() -> None:
    expected = hashlib.sha1("".join(sorted([TOKEN, "1411443780", "437374425"])).encode()).hexdigest()
    assert signature(TOKEN, "1411443780", "437374425") == expected
    check_signature(expected.upper(), "437374425", TOKEN, "1411443780")
    with pytest.raises(SignatureError):
        check_signature(expected, "other-token", "1411443780", "437374425")


def test_split_reply_cuts_at_sentence_ends() -> None:
    assert split_reply("短回复。", 50) == ["短回复。"]
    text = "Your order A-1042 shipped on Monday. It should arrive by Friday!\nTrack it at example.com/t/1. Thanks?"
    parts = split_reply(text, 50)
    assert parts == [
        "Your order A-1042 shipped on Monday.",
        "It should arrive by Friday!",
        "Track it at example.com/t/1. Thanks?",
    ]
    assert split_reply("一" * 120, 50) == ["一" * 50, "一" * 50, "一" * 20]
    assert split_reply("  ", 50) == []


def test_parse_xml_refuses_entity_declarations() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml>&lol2;</xml>'
    with pytest.raises(InvalidInputError, match="DOCTYPE"):
        parse_xml(bomb)
    with pytest.raises(InvalidInputError, match="DOCTYPE"):
        parse_xml('<xml><!entity x "y"></xml>')
    assert parse_xml(text_xml("你好"))["Content"] == "你好"


def test_a_reply_cannot_break_out_of_its_cdata_section(
    make_wechat: Callable[..., WeChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    wechat = make_wechat()
    wechat.count_turns(monkeypatch, reply="a ]]><evil/> b")
    response = wechat.post(text_xml("你好", msg_id="7001"))
    assert response.status_code == 200
    assert ElementTree.fromstring(response.text).findtext("Content") == "a ]]><evil/> b"
