"""Synthetic support conversations that carry canary personal data, for the PII leak test.

Every value is made up for one run and differs from the demo store's customers, so finding one
anywhere proves it came from these conversations. The numbers are valid where a real one would
be checked (Luhn for cards, GB 11643 check characters for resident IDs, except the deliberately
mistyped IDs) and are written the ways customers write them (``+86 138 1234 5678``,
``0086-138-1234-5678``, ``(021)6234-5678``, ``4111-1111-1111-1111``, ``沪A·3K7Q2``).

Example:
    >>> conversations = generate_conversations(4, seed=1)
    >>> [c.customer_id for c in conversations]
    ['C0001', 'C0002', 'C0001', 'C0002']

"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import CustomerRow, make_engine
from core.seed import DEMO_CUSTOMER_EN, DEMO_CUSTOMER_ZH, seed
from core.store import SqlStore
from core.types import CustomerId
from evals.fake_llm import FOREIGN_PII

__all__ = [
    "KINDS",
    "NER_KINDS",
    "Canary",
    "Conversation",
    "generate_conversations",
    "luhn_ok",
    "resident_id_check",
]

KINDS: Final[tuple[str, ...]] = (
    "CN_MOBILE", "CN_LANDLINE", "CN_RESIDENT_ID", "CN_BANK_CARD", "CREDIT_CARD", "CN_PASSPORT", "CN_LICENSE_PLATE",
    "EMAIL_ADDRESS", "IP_ADDRESS", "URL", "PHONE_NUMBER", "PERSON", "ADDRESS",
)  # fmt: skip
"""Every kind of canary, named as the redactor names what it finds."""
NER_KINDS: Final = frozenset({"PERSON", "ADDRESS"})
"""Kinds only named-entity recognition can find (no pattern describes them); reported separately."""


@dataclass(frozen=True)
class Canary:
    """One made-up piece of personal data, written into a customer message."""

    kind: str
    """One of ``KINDS``."""
    value: str
    """Exactly as the customer typed it."""
    variant: str
    """How it is written, e.g. ``+86 spaced`` or ``mistyped check character``."""
    parts: tuple[str, ...] = ()
    """Fragments that are personal data on their own (an address's street, a URL's query)."""
    digits: str = ""
    """For numbers: the digits without country code, trunk prefix or separators, as a program
    that normalised the number would write them."""

    @property
    def needles(self) -> tuple[str, ...]:
        """Lower-cased strings whose presence anywhere means this canary is there."""
        forms = {self.value, *self.parts, self.value.replace("·", "").replace(" ", "")}
        escaped = {json.dumps(form)[1:-1] for form in forms}  # as JSON with \\u escapes stores it
        return tuple(sorted({form.lower() for form in forms | escaped if len(form) >= 3}))


@dataclass(frozen=True)
class Conversation:
    """One synthetic conversation: who chats, in which language, what they type, what they reveal."""

    id: str
    lang: str
    customer_id: str
    turns: tuple[str, ...]
    canaries: tuple[Canary, ...]


@dataclass(frozen=True)
class _Reserved:
    values: frozenset[str]
    orders: Mapping[str, tuple[str, ...]]
    other_orders: tuple[str, ...]


@cache
def _reserved() -> _Reserved:
    """The demo store's own personal data (canaries must differ) and its order numbers."""
    engine = make_engine("sqlite://")
    seed(engine)
    values = set(FOREIGN_PII)
    with Session(engine) as session:
        for name, email, phone in session.execute(select(CustomerRow.name, CustomerRow.email, CustomerRow.phone)):
            values |= {name.lower(), email.lower(), phone, re.sub(r"\D", "", phone)}
    store = SqlStore(engine)
    orders = {
        customer: tuple(order.id for order in store.list_orders(CustomerId(customer), limit=20))
        for customer in (DEMO_CUSTOMER_ZH, DEMO_CUSTOMER_EN)
    }
    others = tuple(order.id for order in store.list_orders(CustomerId("C0003"), limit=5))
    engine.dispose()
    return _Reserved(frozenset(values), orders, others)


def _luhn_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    """Whether the digits of ``number`` pass the Luhn checksum."""
    digits = re.sub(r"\D", "", number)
    return bool(digits) and _luhn_digit(digits[:-1]) == digits[-1]


def resident_id_check(body: str) -> str:
    """The GB 11643-1999 check character of a resident ID's first 17 digits."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def _groups(digits: str, sizes: Sequence[int], sep: str) -> str:
    out, start = [], 0
    for size in sizes:
        out.append(digits[start : start + size])
        start += size
    if start < len(digits):
        out.append(digits[start:])
    return sep.join(out)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


_MOBILE_PREFIXES = (
    "130 131 132 133 135 136 137 139 147 150 153 155 156 157 166 173 176 178 180 181 182 183 185 187 189 191 198 199"
).split()
_AREAS = (("10", 8), ("21", 8), ("20", 8), ("22", 8), ("25", 8), ("27", 8), ("28", 8), ("29", 8), ("571", 8),
          ("755", 8), ("512", 8), ("731", 8), ("591", 7), ("891", 7), ("931", 7), ("851", 8))  # fmt: skip
_ID_AREAS = ("110105", "310115", "440305", "330106", "510107", "420106", "320506", "370202", "350203", "610113")
_BINS = (("622202", 19), ("622848", 19), ("621700", 19), ("622588", 16), ("621483", 16), ("955880", 19),
         ("622609", 16), ("625965", 16))  # fmt: skip
_PROVINCES = "京沪粤浙苏川鄂湘闽陕鲁津渝"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_ZH_SURNAMES = "李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏"
_ZH_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红建文辉力宁晨浩宇轩梓涵欣怡佳琪睿博"
_EN_FIRST = (
    "Priya Mateo Aisha Tobias Ingrid Rafael Yuki Sven Leila Dmitri Camila Kwame Freya Anton Nadia Felix Zara Hugo "
    "Elif Marco Astrid Omar Signe Bruno Maren Idris Lena Caspian Noor Emil Paloma Rohan Saoirse Tariq"
).split()
_EN_LAST = (
    "Natarajan Okafor Lindqvist Moreau Castellano Haddad Kowalski Fitzgerald Abernathy Takahashi Oyelaran Brennan "
    "Vasquez Delacroix Nakamura Sorensen Whitlock Pemberton Achterberg Quintero Rasmussen Iyer Kovacs Lachance"
).split()
_ZH_PLACES = ("上海市浦东新区", "北京市朝阳区", "广州市天河区", "深圳市南山区", "杭州市西湖区", "成都市武侯区",
              "南京市鼓楼区", "武汉市洪山区", "苏州市吴中区", "西安市雁塔区")  # fmt: skip
_ZH_ROADS = ("张杨路", "建国路", "天河北路", "科技园南路", "文三路", "人民南路", "中山北路", "珞喻路", "星湖街",
             "小寨东路", "长宁路", "解放大道", "滨江大道", "学院路")  # fmt: skip
_EN_STREETS = ("Larkspur Road", "Willow Crescent", "Hawthorne Avenue", "Marlowe Street", "Juniper Close",
               "Kingfisher Way", "Alder Lane", "Copperfield Drive", "Bramble Court", "Oakmere Terrace")  # fmt: skip
_EN_TOWNS = (("Leeds", "LS6 {}{}{}"), ("Bristol", "BS7 {}{}{}"), ("Manchester", "M14 {}{}{}"),
             ("Portland, OR", "972{}{}"), ("Austin, TX", "787{}{}"), ("Cambridge", "CB4 {}{}{}"))  # fmt: skip
_MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "foxmail.com", "sina.com", "hotmail.com")
_URL_HOSTS = ("https://pan.baidu-share.example/s/", "https://www.dropbox.example/s/",
              "https://m.kefu-shop.example/track", "http://pay.bank-refund.example/return",
              "www.photos-share.example/album/")  # fmt: skip


class _Factory:
    """Makes canaries that differ from each other and from the demo store's data."""

    def __init__(self, rng: random.Random, reserved: frozenset[str]) -> None:
        self.rng = rng
        self.seen: set[str] = set(reserved)
        self.zh = True

    def make(self, kind: str, lang: str) -> Canary:
        """A new canary of ``kind`` for a customer writing in ``lang``."""
        self.zh = self.rng.random() < (0.9 if lang == "zh" else 0.3)  # names and addresses follow the customer
        maker: Callable[[], Canary] = getattr(self, f"_{kind.lower()}")
        for _ in range(1000):
            canary = maker()
            keys = {canary.value.lower(), canary.digits or canary.value.lower()}
            if not keys & self.seen:
                self.seen |= keys
                return canary
        raise RuntimeError(f"could not make a new {kind} canary")

    def _cn_mobile(self) -> Canary:
        rng = self.rng
        digits = rng.choice(_MOBILE_PREFIXES) + _digits(rng, 8)
        variant = rng.choice(["plain", "plain", "+86 spaced", "+86", "0086 dashed", "spaced 3-4-4", "dashed 3-4-4"])
        value = {
            "plain": digits,
            "+86 spaced": "+86 " + _groups(digits, (3, 4), " "),
            "+86": "+86" + digits,
            "0086 dashed": "0086-" + _groups(digits, (3, 4), "-"),
            "spaced 3-4-4": _groups(digits, (3, 4), " "),
            "dashed 3-4-4": _groups(digits, (3, 4), "-"),
        }[variant]
        return Canary("CN_MOBILE", value, variant, digits=digits)

    def _cn_landline(self) -> Canary:
        rng = self.rng
        area, length = rng.choice(_AREAS)
        number = rng.choice("2345678") + _digits(rng, length - 1)
        variant = rng.choice(["dashed", "parentheses", "+86", "spaced"])
        value = {
            "dashed": f"0{area}-{number}",
            "parentheses": f"(0{area}){number[: length - 4]}-{number[length - 4 :]}",
            "+86": f"+86 {area} {number[: length - 4]} {number[length - 4 :]}",
            "spaced": f"0{area} {number[: length - 4]} {number[length - 4 :]}",
        }[variant]
        return Canary("CN_LANDLINE", value, variant, digits=area + number)

    def _cn_resident_id(self) -> Canary:
        rng = self.rng
        born = f"{rng.randint(1955, 2006)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        body = rng.choice(_ID_AREAS) + born + _digits(rng, 3)
        check = resident_id_check(body)
        if rng.random() < 0.15:
            wrong = rng.choice([c for c in "0123456789X" if c != check])
            return Canary("CN_RESIDENT_ID", body + wrong, "mistyped check character", digits=body)
        if check == "X" and rng.random() < 0.5:
            return Canary("CN_RESIDENT_ID", body + "x", "valid, lower-case x", digits=body)
        return Canary("CN_RESIDENT_ID", body + check, "valid", digits=body)

    def _card(self, kind: str, prefix: str, length: int, sizes: Sequence[int]) -> Canary:
        body = prefix + _digits(self.rng, length - len(prefix) - 1)
        digits = body + _luhn_digit(body)
        variant = self.rng.choice(["plain", "spaced", "dashed"])
        value = {"plain": digits, "spaced": _groups(digits, sizes, " "), "dashed": _groups(digits, sizes, "-")}[variant]
        return Canary(kind, value, variant, digits=digits)

    def _cn_bank_card(self) -> Canary:
        prefix, length = self.rng.choice(_BINS)
        return self._card("CN_BANK_CARD", prefix, length, (4, 4, 4, 4))

    def _credit_card(self) -> Canary:
        network = self.rng.choice(["visa", "mastercard", "amex"])
        if network == "amex":
            return self._card("CREDIT_CARD", self.rng.choice(["34", "37"]), 15, (4, 6))
        prefix = "4" if network == "visa" else str(self.rng.randint(51, 55))
        return self._card("CREDIT_CARD", prefix, 16, (4, 4, 4))

    def _cn_passport(self) -> Canary:
        rng = self.rng
        variant = rng.choice(["E", "G", "E+letter"])
        value = (
            f"E{rng.choice('ABCDFGHJKLMNPQRS')}{_digits(rng, 7)}"
            if variant == "E+letter"
            else variant + _digits(rng, 8)
        )
        return Canary("CN_PASSPORT", value, variant)

    def _cn_license_plate(self) -> Canary:
        rng = self.rng
        head = rng.choice(_PROVINCES) + rng.choice(_PLATE_LETTERS)
        if rng.random() < 0.3:
            tail, variant = rng.choice("DF") + _digits(rng, 5), "new energy"
        else:
            letter = rng.randrange(5)  # one letter among the digits, as on most plates
            tail = "".join(rng.choice(_PLATE_LETTERS) if i == letter else rng.choice("0123456789") for i in range(5))
            variant = "ordinary"
        sep = rng.choice(["", "·", " "])
        return Canary("CN_LICENSE_PLATE", head + sep + tail, variant + (f" '{sep}'" if sep else ""))

    def _email_address(self) -> Canary:
        rng = self.rng
        first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
        style = rng.choice(["first.last", "pinyin_year", "qq number", "FirstLast"])
        local = {
            "first.last": f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}",
            "pinyin_year": f"{rng.choice(['xiao', 'lin', 'chen', 'zhou'])}{rng.choice(['yu', 'mei', 'hao', 'jun'])}"
            f"_{rng.randint(1970, 2005)}",
            "qq number": str(rng.randint(10_000_000, 2_999_999_999)),
            "FirstLast": f"{first}{last}{rng.randint(10, 999)}",
        }[style]
        return Canary("EMAIL_ADDRESS", f"{local}@{rng.choice(_MAIL_DOMAINS)}", style)

    def _ip_address(self) -> Canary:
        rng = self.rng
        if rng.random() < 0.2:
            groups = [
                "2408",
                f"{rng.randint(0x8000, 0x8FFF):x}",
                f"{rng.randint(1, 0xFFFF):x}",
                f"{rng.randint(1, 0xFFFF):x}",
            ]
            return Canary("IP_ADDRESS", ":".join(groups) + f"::{rng.randint(1, 0xFFFF):x}", "ipv6")
        first = rng.choice([36, 58, 101, 112, 114, 117, 183, 202, 220, 223, 81, 86, 92])
        return Canary(
            "IP_ADDRESS", f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", "ipv4"
        )

    def _url(self) -> Canary:
        rng = self.rng
        host = rng.choice(_URL_HOSTS)
        token = "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(10))
        who = f"{rng.choice(_EN_FIRST).lower()}{rng.randint(10, 99)}"
        if host.endswith("/"):
            query = f"{token}?pwd={rng.choice('abcdefghk')}{_digits(rng, 3)}&owner={who}"
            return Canary("URL", host + query, "share link", parts=(token, f"owner={who}"))
        query = f"?uid={who}&token={token}"
        return Canary("URL", host + query, "personal query", parts=(token, f"uid={who}"))

    def _phone_number(self) -> Canary:
        rng = self.rng
        if rng.random() < 0.5:
            area = rng.choice(["212", "415", "617", "312", "206", "646", "503", "737"])
            exchange, line = f"{rng.randint(2, 9)}{_digits(rng, 2)}", _digits(rng, 4)
            variant = rng.choice(["(415) 638-2291", "415-638-2291", "+1 415 638 2291", "415.638.2291"])
            value = {
                "(415) 638-2291": f"({area}) {exchange}-{line}",
                "415-638-2291": f"{area}-{exchange}-{line}",
                "+1 415 638 2291": f"+1 {area} {exchange} {line}",
                "415.638.2291": f"{area}.{exchange}.{line}",
            }[variant]
            return Canary("PHONE_NUMBER", value, "US " + variant, digits=area + exchange + line)
        mobile = f"7{rng.choice(['4', '5', '8', '9'])}{_digits(rng, 2)}", _digits(rng, 6)
        variant = rng.choice(["+44 7911 123456", "07911 123456", "+44 20 7946 0123", "020 7946 0123"])
        london = _digits(rng, 4), _digits(rng, 4)
        value = {
            "+44 7911 123456": f"+44 {mobile[0]} {mobile[1]}",
            "07911 123456": f"0{mobile[0]} {mobile[1]}",
            "+44 20 7946 0123": f"+44 20 {london[0]} {london[1]}",
            "020 7946 0123": f"020 {london[0]} {london[1]}",
        }[variant]
        digits = "".join(mobile) if variant.startswith(("+44 7", "07")) else "20" + "".join(london)
        return Canary("PHONE_NUMBER", value, "UK " + variant, digits=digits)

    def _person(self) -> Canary:
        rng = self.rng
        if self.zh:
            return Canary("PERSON", rng.choice(_ZH_SURNAMES) + rng.choice(_ZH_GIVEN) + rng.choice(_ZH_GIVEN), "zh")
        return Canary("PERSON", f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}", "en")

    def _address(self) -> Canary:
        rng = self.rng
        if self.zh:
            building, room = rng.randint(1, 30), f"{rng.randint(1, 33)}0{rng.randint(1, 8)}"
            street = f"{rng.choice(_ZH_ROADS)}{rng.randint(1, 2999)}号{building}栋{room}室"
            return Canary("ADDRESS", rng.choice(_ZH_PLACES) + street, "zh", parts=(street,))
        street = f"{rng.randint(2, 2999)} {rng.choice(_EN_STREETS)}"
        town, code = rng.choice(_EN_TOWNS)
        letters = rng.choice("ABDEFGHJLNPQRSTUWXYZ"), rng.choice("ABDEFGHJLNPQRSTUWXYZ")
        postcode = (
            code.format(rng.randint(1, 9), *letters)
            if "{}{}{}" in code
            else code.format(rng.randint(0, 9), rng.randint(0, 9))
        )
        flat = rng.choice(["", f"Flat {rng.randint(1, 12)}, ", f"Apt {rng.randint(1, 9)}{rng.choice('ABC')}, "])
        return Canary("ADDRESS", f"{flat}{street}, {town} {postcode}", "en", parts=(street,))


# What customers say, by language: a topic's opening (with an order number), then lines carrying
# personal data. Every line with a card or a national-format phone has the context word real
# customers use ("银行卡", "card", "mobile").
_OPENERS: Final[dict[str, tuple[str, ...]]] = {
    "zh": (
        "你好，我的订单{order}到哪了？", "订单{order}一直没收到，帮我查下物流。", "我想退货，订单号{order}。",
        "订单{order}的收货地址要改一下。", "{order}这个订单能开发票吗？", "我想修改账户里的联系方式。",
        "订单{order}能不能取消？", "{order}的退款什么时候到账？", "我要投诉，订单{order}发错货了。",
    ),
    "en": (
        "Hi, where is my order {order}?", "Order {order} still hasn't arrived, can you check the delivery?",
        "I'd like to return order {order}.", "I need to change the delivery address for {order}.",
        "Can I get an invoice for order {order}?", "I want to update the contact details on my account.",
        "Please cancel order {order}.", "When will the refund for {order} reach me?",
        "I want to complain, order {order} came with the wrong item.",
    ),
}  # fmt: skip
_LINES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "zh": {
        "CN_MOBILE": ("我的手机号是{v}，有问题随时联系我。", "收件人电话改成{v}。", "快递员可以打我手机{v}"),
        "CN_LANDLINE": ("白天可以打我办公室座机{v}。", "公司电话是{v}，找前台也行。"),
        "CN_RESIDENT_ID": ("我的身份证号是{v}，实名认证用。", "发票要个人抬头，身份证号码{v}。"),
        "CN_BANK_CARD": ("退款请打到我的银行卡{v}。", "我的招商银行卡号{v}，户名是我本人。"),
        "CREDIT_CARD": ("我用信用卡{v}付的款，好像扣了两次钱。", "付款用的信用卡卡号是{v}，帮我查一下。"),
        "CN_PASSPORT": ("清关需要的话，我的护照号是{v}。", "护照{v}，海外仓发货要用。"),
        "CN_LICENSE_PLATE": ("送到小区门口就行，我的车牌是{v}。", "自提的时候车牌号{v}，麻烦登记一下。"),
        "EMAIL_ADDRESS": ("电子发票发到我邮箱{v}。", "我的邮箱改成{v}了。"),
        "IP_ADDRESS": ("我登录的时候IP是{v}，提示异常。", "后台显示的登录地址是{v}，不是我本人。"),
        "URL": ("商品问题的照片在这个链接：{v}", "我把订单截图放在{v}了。"),
        "PHONE_NUMBER": ("我在国外，电话是{v}。", "海外联系电话{v}，有事打这个。"),
        "PERSON": ("收件人写{v}，是我家人。", "我是{v}，上次联系过你们。"),
        "ADDRESS": ("新的收货地址是{v}。", "发票寄到{v}。"),
    },
    "en": {
        "CN_MOBILE": ("My Chinese mobile is {v}.", "Please ask the courier to call my phone {v}."),
        "CN_LANDLINE": ("You can also call my office landline {v}.", "My office phone in China is {v}."),
        "CN_RESIDENT_ID": ("My resident identity card number is {v}.", "For the real-name check, my ID card is {v}."),
        "CN_BANK_CARD": ("Please refund to my bank card {v}.", "My bank account card number is {v}."),
        "CREDIT_CARD": ("I paid with my Visa card {v} and was charged twice.", "The credit card I used is {v}."),
        "CN_PASSPORT": ("My passport number is {v} if customs needs it.", "For customs, passport {v}."),
        "CN_LICENSE_PLATE": ("I'll pick it up by car, licence plate {v}.", "My car plate is {v} for the locker."),
        "EMAIL_ADDRESS": ("Please send the invoice to {v}.", "My new email is {v}."),
        "IP_ADDRESS": ("Someone logged in from IP {v}, that wasn't me.", "The login came from address {v}."),
        "URL": ("Photos of the damage are here: {v}", "I uploaded the receipt to {v}"),
        "PHONE_NUMBER": ("You can reach me on my mobile {v}.", "My phone number is {v}, call me anytime."),
        "PERSON": ("The parcel is for {v}, my sister.", "This is {v}, I chatted with you last week."),
        "ADDRESS": ("The new delivery address is {v}.", "Please send it to {v} instead."),
    },
}
_CLOSERS: Final[dict[str, tuple[str, ...]]] = {
    "zh": ("谢谢，麻烦尽快处理。", "好的，谢谢。", "那就这样吧。"),
    "en": ("Thanks, please sort it out quickly.", "Ok, thank you.", "That's all, thanks."),
}
_DECKS: Final[dict[str, tuple[str, ...]]] = {
    # How often each kind comes up, by language: a deck is dealt in turn so every kind appears often.
    "zh": (*KINDS, "CN_MOBILE", "CN_MOBILE", "CN_RESIDENT_ID", "EMAIL_ADDRESS", "PERSON", "ADDRESS", "CN_BANK_CARD"),
    "en": (
        *KINDS,
        "PHONE_NUMBER",
        "PHONE_NUMBER",
        "EMAIL_ADDRESS",
        "EMAIL_ADDRESS",
        "CREDIT_CARD",
        "PERSON",
        "ADDRESS",
    ),
}


def _dealer(rng: random.Random, deck: Sequence[str]) -> Iterator[str]:
    while True:
        cards = list(deck)
        rng.shuffle(cards)
        yield from cards


def generate_conversations(n: int = 600, seed: int = 20261122) -> list[Conversation]:
    """``n`` conversations, half in Chinese (customer C0001) and half in English (C0002).

    Each has 2 to 4 customer turns; nearly every turn reveals one or two canaries, and now and
    then a customer repeats a value they gave earlier. Same ``n`` and ``seed``, same conversations.
    """
    rng = random.Random(seed)
    reserved = _reserved()
    factory = _Factory(rng, reserved.values)
    dealers = {lang: _dealer(rng, deck) for lang, deck in _DECKS.items()}
    conversations = []
    for index in range(n):
        lang = "zh" if index % 2 == 0 else "en"
        customer = DEMO_CUSTOMER_ZH if lang == "zh" else DEMO_CUSTOMER_EN
        own = reserved.orders[customer]
        order = rng.choice(own) if rng.random() < 0.85 else rng.choice(reserved.other_orders)
        canaries: list[Canary] = []
        turns = []
        count = rng.randint(2, 4)
        for turn in range(count):
            given = len(canaries)  # a customer may repeat a value from an earlier turn
            lines = [rng.choice(_OPENERS[lang]).format(order=order)] if turn == 0 else []
            for _ in range(1 if rng.random() < 0.7 else 2):
                kind = next(dealers[lang])
                earlier = [c for c in canaries[:given] if c.kind == kind]
                canary = rng.choice(earlier) if earlier and rng.random() < 0.3 else factory.make(kind, lang)
                if canary not in canaries:
                    canaries.append(canary)
                lines.append(rng.choice(_LINES[lang][kind]).format(v=canary.value))
            if turn == count - 1 and rng.random() < 0.4:
                lines.append(rng.choice(_CLOSERS[lang]))
            turns.append(("" if lang == "zh" else " ").join(lines))
        conversations.append(Conversation(f"{lang}-{index:04d}", lang, customer, tuple(turns), tuple(canaries)))
    return conversations
