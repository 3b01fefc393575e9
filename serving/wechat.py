"""The WeChat Official Account channel: ``GET /wechat`` (URL verification) and ``POST /wechat`` (callbacks).

A customer's text message runs one turn for the conversation ``wechat:<openid>``, as a guest
customer created on first contact. WeChat waits 5 s for the answer and retries three times
without one, so:

- a turn that ends within ``wechat_reply_within_s`` is answered passively (in the HTTP response);
  a slower one is answered ``success`` at once and its reply goes out later through the
  customer-service message API (WeChat's 48-hour window), as do a human agent's replies;
- a retry of a ``MsgId`` already running or answered gets ``success``: one turn, one reply.
  ``KefuService.chat(message_id=...)`` keeps that true across restarts;
- long replies go out as several messages split at sentence ends, in order, never streamed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from xml.etree import ElementTree

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.background import BackgroundTask

from agent.understanding import detect_lang
from core.errors import BackendError, ConfigError, InvalidInputError
from core.settings import Settings
from core.types import Channel, Lang
from serving.service import KefuService
from serving.wechat_api import HIDE_SECRETS, CustomerServiceApi, ref
from serving.wechat_crypto import DecryptError, MessageCrypto, SignatureError, check_signature

__all__ = ["SUCCESS", "WeChatChannel", "WeChatMessage", "WeChatReply", "parse_xml", "router", "split_reply"]

log = logging.getLogger(__name__)

SUCCESS = "success"
"""WeChat's "no passive reply": the message was received."""

_OPENID = re.compile(r"^[A-Za-z0-9_-]{1,56}$")  # "wechat:" + openid fits a 64-character conversation id
_MSG_ID = re.compile(r"^[A-Za-z0-9_-]{1,60}$")
_CREATE_TIME = re.compile(r"^[0-9]{0,20}$")
_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])|(?<=\.)(?=\s)")
_RECENT_TTL_S = 600.0
_RECENT_MAX = 10_000

_TEXT_ONLY = {
    Lang.ZH: "抱歉，我目前只能看懂文字消息。请用文字描述您的问题，例如订单号和遇到的情况。",
    Lang.EN: "Sorry, I can only read text messages for now. Please type your question, e.g. your order number.",
}
_TOO_LONG = {
    Lang.ZH: "消息太长了，请精简到 {limit} 字以内再发一次。",
    Lang.EN: "That message is too long; please send it again in under {limit} characters.",
}
_SORRY = {
    Lang.ZH: "抱歉，系统暂时出了点问题，请稍后再试，或回复“人工”联系人工客服。",
    Lang.EN: 'Sorry, something went wrong on our side. Please try again shortly, or say "human" to reach a person.',
}
_WELCOME = (
    "您好，欢迎关注！我是智能客服，订单、物流、退换货等问题都可以直接发消息问我，需要人工时回复“人工”。\n"
    'Hi, welcome! Ask me about orders, delivery or returns in Chinese or English; say "human" to reach a person.'
)


def parse_xml(text: str) -> dict[str, str]:
    """The fields of a WeChat XML message (``<xml><Field>value</Field>...</xml>``).

    Raises:
        InvalidInputError: malformed XML, another root element, or a DOCTYPE or ENTITY declaration.
    """
    if _DECLARATION.search(text):
        raise InvalidInputError("XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise InvalidInputError(f"malformed XML: {exc}") from exc
    if root.tag != "xml":
        raise InvalidInputError("the root element must be <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def split_reply(text: str, limit: int) -> list[str]:
    """Split a reply into messages of at most ``limit`` characters, at sentence ends where possible."""
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text.strip()):
        if len((current + sentence).strip()) <= limit:
            current += sentence
            continue
        if current.strip():
            parts.append(current.strip())
        current = sentence.lstrip()
        while len(current.strip()) > limit:  # one sentence longer than a message: cut it
            if current[:limit].strip():
                parts.append(current[:limit].strip())
            current = current[limit:].lstrip()
    if current.strip():
        parts.append(current.strip())
    return parts


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _openid_of(conversation_id: str) -> str:
    prefix, _, openid = conversation_id.partition(":")
    if prefix != Channel.WECHAT.value or not _OPENID.match(openid):
        raise InvalidInputError(f"{conversation_id!r} is not a WeChat conversation (wechat:<openid>)")
    return openid


def _required(values: Mapping[str, str], *names: str, what: str) -> list[str]:
    missing = [name for name in names if not values.get(name)]
    if missing:
        raise InvalidInputError(f"missing {what}: {', '.join(missing)}")
    return [values[name] for name in names]


@dataclass(frozen=True)
class WeChatMessage:
    """A verified (and decrypted) callback from WeChat."""

    fields: dict[str, str]
    """The message's XML fields: ``ToUserName``, ``FromUserName``, ``MsgType``, ``Content``, ``MsgId``..."""
    encrypted: bool
    """It came encrypted (safe or compatible mode), so the reply must be encrypted too."""
    received: float = field(default_factory=time.monotonic)

    @property
    def openid(self) -> str:
        """The customer (``FromUserName``)."""
        return self.fields["FromUserName"]

    @property
    def account(self) -> str:
        """The Official Account (``ToUserName``)."""
        return self.fields["ToUserName"]


@dataclass(frozen=True)
class WeChatReply:
    """The HTTP answer to a callback, and the parts of the reply that go out through the API after it."""

    body: str
    """Passive reply XML, or ``success``."""
    rest: tuple[str, ...] = ()


@dataclass
class _Turn:
    """One MsgId's turn; whoever comes second (the turn or the waiting request) owns delivering the reply."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    parts: list[str] | None = None
    late: bool = False

    def finish(self, parts: list[str]) -> bool:
        """Store the reply; True if the request stopped waiting and the reply must go through the API."""
        with self.lock:
            self.parts = parts
            return self.late

    def settle(self) -> list[str] | None:
        """The reply if the turn finished; otherwise None, and the turn delivers it when it does."""
        with self.lock:
            self.late = self.parts is None
            return self.parts


class _Recent:
    """MsgIds seen lately (bounded, with a TTL), so WeChat's retries never run a second turn."""

    def __init__(self, ttl_s: float = _RECENT_TTL_S, size: int = _RECENT_MAX) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: str) -> _Turn | None:
        """A new turn for a message not seen lately; None for a retry."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self._ttl_s or len(self._seen) >= self._size):
                self._seen.popitem(last=False)
            if key in self._seen:
                return None
            self._seen[key] = now
            return _Turn()


class WeChatChannel:
    """Answers WeChat's callbacks with the agent and delivers late and human replies through the API."""

    def __init__(self, settings: Settings, service: KefuService, *, http: httpx.Client | None = None) -> None:
        """Serve the account configured in ``settings`` with ``service``; ``http`` replaces the API client.

        Raises:
            ConfigError: no token, or an EncodingAESKey without an app id or that does not decode.
        """
        if settings.wechat_token is None:
            raise ConfigError("KEFU_WECHAT_TOKEN is not set")
        self._token = settings.wechat_token.get_secret_value()
        self._service = service
        self._within_s = settings.wechat_reply_within_s
        self._max_chars = settings.wechat_max_reply_chars
        self._max_message_chars = settings.max_message_chars
        self._crypto: MessageCrypto | None = None
        if settings.wechat_aes_key is not None:
            if not settings.wechat_app_id:
                raise ConfigError("KEFU_WECHAT_APP_ID is required with KEFU_WECHAT_AES_KEY")
            try:
                self._crypto = MessageCrypto(
                    self._token, settings.wechat_aes_key.get_secret_value(), settings.wechat_app_id
                )
            except ValueError as exc:
                raise ConfigError(f"KEFU_WECHAT_AES_KEY: {exc}") from exc
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=10.0)
        self._api: CustomerServiceApi | None = None
        if settings.wechat_app_id and settings.wechat_app_secret is not None:
            self._api = CustomerServiceApi(
                self._http,
                settings.wechat_api_base,
                settings.wechat_app_id,
                settings.wechat_app_secret.get_secret_value(),
            )
        self._recent = _Recent()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kefu-wechat")
        httpx_log = logging.getLogger("httpx")
        if HIDE_SECRETS not in httpx_log.filters:
            httpx_log.addFilter(HIDE_SECRETS)

    def close(self) -> None:
        """Let running turns finish and deliver their replies, then close the API client."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._owns_http:
            self._http.close()

    # -- inbound ----------------------------------------------------------------------------
    def verify_url(self, query: Mapping[str, str]) -> str:
        """The ``echostr`` to answer WeChat's URL verification with (decrypted in the safe mode).

        Raises:
            InvalidInputError: a parameter is missing, or the safe mode is used without an EncodingAESKey.
            SignatureError: the signature does not match.
            DecryptError: the encrypted echostr does not decrypt.
        """
        timestamp, nonce, echostr = _required(query, "timestamp", "nonce", "echostr", what="query parameters")
        if query.get("msg_signature"):
            crypto = self._need_crypto()
            crypto.verify(query["msg_signature"], timestamp, nonce, echostr)
            return crypto.decrypt(echostr)
        (given,) = _required(query, "signature", what="query parameters")
        check_signature(given, self._token, timestamp, nonce)
        return echostr

    def receive(self, query: Mapping[str, str], body: bytes, *, received: float | None = None) -> WeChatMessage:
        """Verify a callback, decrypt it if it is encrypted, and parse it; ``received`` starts the passive window.

        Raises:
            InvalidInputError: a missing parameter or field, malformed XML, or an unusable openid.
            SignatureError: the signature (or ``msg_signature``) does not match.
            DecryptError: the encrypted message does not decrypt for this app id.
        """
        given, timestamp, nonce = _required(query, "signature", "timestamp", "nonce", what="query parameters")
        check_signature(given, self._token, timestamp, nonce)
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise InvalidInputError("the body is not UTF-8") from exc
        fields = parse_xml(text)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if encrypted:
            crypto = self._need_crypto()
            (msg_signature,) = _required(query, "msg_signature", what="query parameters")
            (payload,) = _required(fields, "Encrypt", what="XML fields")
            crypto.verify(msg_signature, timestamp, nonce, payload)
            fields = parse_xml(crypto.decrypt(payload))
        _required(fields, "ToUserName", "FromUserName", "MsgType", what="XML fields")
        if not _OPENID.match(fields["FromUserName"]):
            raise InvalidInputError("FromUserName is not an openid")
        if fields.get("MsgId") and not _MSG_ID.match(fields["MsgId"]):
            raise InvalidInputError("MsgId is malformed")
        if not _CREATE_TIME.match(fields.get("CreateTime", "")):
            raise InvalidInputError("CreateTime is not a number")
        return WeChatMessage(fields, encrypted, time.monotonic() if received is None else received)

    def _need_crypto(self) -> MessageCrypto:
        if self._crypto is None:
            raise InvalidInputError("the message is encrypted but KEFU_WECHAT_AES_KEY is not set")
        return self._crypto

    async def answer(self, message: WeChatMessage) -> WeChatReply:
        """Answer a callback: passively within ``wechat_reply_within_s``, otherwise later through the API.

        Raises:
            InvalidInputError: a text message without ``Content``.
        """
        fields = message.fields
        kind = fields["MsgType"].lower()
        if kind == "event":
            subscribed = fields.get("Event", "").lower() == "subscribe"
            return self._passive(message, [_WELCOME]) if subscribed else WeChatReply(SUCCESS)
        if kind == "text":
            (text,) = _required(fields, "Content", what="XML fields")
        elif kind == "voice" and fields.get("Recognition"):
            text = fields["Recognition"]
        else:
            loop = asyncio.get_running_loop()
            lang = await loop.run_in_executor(self._pool, self._customer_lang, message.openid)
            return self._passive(message, [_TEXT_ONLY[lang]])
        lang = detect_lang(text)
        if len(text) > self._max_message_chars:
            return self._passive(message, [_TOO_LONG[lang].format(limit=self._max_message_chars)])
        # Without a MsgId (WeChat always sends one for messages), FromUserName + CreateTime is WeChat's advice.
        message_id = fields.get("MsgId") or f"ct-{fields.get('CreateTime', '')}"
        turn = self._recent.claim(f"{message.openid}:{message_id}")
        if turn is None:
            log.info("WeChat retry answered with success", extra={"msg_id": message_id})
            return WeChatReply(SUCCESS)
        job = asyncio.get_running_loop().run_in_executor(
            self._pool, self._run, turn, message.openid, message_id, text, lang
        )
        try:
            remaining = message.received + self._within_s - time.monotonic()
            if remaining > 0:
                await asyncio.wait({job}, timeout=remaining)
        finally:
            parts = turn.settle()  # also when the request is cancelled: the turn then delivers the reply
        if parts is None:
            log.info(
                "WeChat turn slower than the passive window: replying through the API", extra={"msg_id": message_id}
            )
        return self._passive(message, parts) if parts else WeChatReply(SUCCESS)

    def _passive(self, message: WeChatMessage, parts: list[str]) -> WeChatReply:
        xml = (
            f"<xml><ToUserName>{_cdata(message.openid)}</ToUserName>"
            f"<FromUserName>{_cdata(message.account)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{_cdata(parts[0])}</Content></xml>"
        )
        if message.encrypted and self._crypto is not None:
            xml = self._crypto.envelope(xml, str(int(time.time())), str(secrets.randbelow(10**10)))
        return WeChatReply(xml, tuple(parts[1:]))

    def _customer_lang(self, openid: str) -> Lang:
        try:
            customer = self._service.store.get_customer(self._service.desk.channel_customer(Channel.WECHAT, openid))
        except Exception:  # a polite reply in the default language beats no reply
            log.exception("could not look up a WeChat customer", extra={"openid_ref": ref(openid)})
            return Lang.ZH
        return customer.lang if customer is not None else Lang.ZH

    def _run(self, turn: _Turn, openid: str, message_id: str, text: str, lang: Lang) -> None:
        """One turn in a worker thread; delivers the reply through the API if the request stopped waiting."""
        try:
            customer_id = self._service.desk.channel_customer(Channel.WECHAT, openid, lang=lang)
            result = self._service.chat(
                f"{Channel.WECHAT.value}:{openid}", customer_id, text, channel=Channel.WECHAT, message_id=message_id
            )
            parts = split_reply(result.reply, self._max_chars)  # empty when a human agent owns the conversation
        except Exception:  # the customer gets an apology, never silence; the log has the cause
            log.exception("WeChat turn failed", extra={"msg_id": message_id, "openid_ref": ref(openid)})
            parts = [_SORRY[lang]]
        if turn.finish(parts) and parts:
            self.send_quietly(openid, parts)

    # -- outbound ---------------------------------------------------------------------------
    def send_quietly(self, openid: str, parts: list[str]) -> None:
        """Send messages in order through the API, logging (not raising) a failure; stops at the first."""
        if self._api is None:
            log.warning(
                "a WeChat reply could not be delivered: set KEFU_WECHAT_APP_ID and KEFU_WECHAT_APP_SECRET",
                extra={"openid_ref": ref(openid)},
            )
            return
        for part in parts:
            try:
                self._api.send_text(openid, part)
            except Exception:  # a background delivery has no caller to tell; the log says which customer
                log.exception("a WeChat reply could not be delivered", extra={"openid_ref": ref(openid)})
                return

    def deliver(self, conversation_id: str, customer_id: str, text: str) -> None:
        """Send a message to a WeChat conversation's customer (a human agent's reply, a desk notice).

        Args:
            conversation_id: ``wechat:<openid>``.
            customer_id: the conversation's customer; the openid in the conversation id is what WeChat needs.
            text: the message; split at sentence ends if it is longer than ``wechat_max_reply_chars``.

        Raises:
            InvalidInputError: not a WeChat conversation.
            BackendError: no app id and secret are configured, or WeChat refused or could not be reached.
        """
        openid = _openid_of(conversation_id)
        if self._api is None:
            raise BackendError("WeChat messages need KEFU_WECHAT_APP_ID and KEFU_WECHAT_APP_SECRET")
        for part in split_reply(text, self._max_chars):
            self._api.send_text(openid, part)


router = APIRouter(tags=["wechat"])


def _channel(request: Request) -> WeChatChannel:
    channel: WeChatChannel | None = getattr(request.app.state, "wechat", None)
    if channel is None:
        raise HTTPException(404, "the WeChat channel is not configured")
    return channel


@router.get("/wechat", include_in_schema=False)
def verify_url(request: Request) -> PlainTextResponse:
    """WeChat's check of the server URL: echo ``echostr`` back if the signature matches."""
    channel = _channel(request)
    try:
        return PlainTextResponse(channel.verify_url(request.query_params))
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    except (InvalidInputError, DecryptError) as exc:
        raise HTTPException(400, str(exc)) from exc


@router.post("/wechat", include_in_schema=False)
async def callback(request: Request) -> Response:
    """A message or event from WeChat: the passive reply XML, or ``success``."""
    received = time.monotonic()
    channel = _channel(request)
    try:
        message = channel.receive(request.query_params, await request.body(), received=received)
        reply = await channel.answer(message)
    except SignatureError as exc:
        raise HTTPException(403, str(exc)) from exc
    except (InvalidInputError, DecryptError) as exc:
        raise HTTPException(400, str(exc)) from exc
    if reply.body == SUCCESS:
        return PlainTextResponse(SUCCESS)
    # The rest of a long reply goes out after the passive part, so the customer reads them in order.
    later = BackgroundTask(channel.send_quietly, message.openid, list(reply.rest)) if reply.rest else None
    return Response(reply.body, media_type="application/xml", background=later)
