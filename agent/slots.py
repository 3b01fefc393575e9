"""Slots from a message, found by regex and catalog lookup (no model).

Order numbers, products, quantities, dates and payment methods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = ["CatalogMatcher", "Slots", "extract_slots"]

_ORDER_ID = re.compile(r"(?<![A-Za-z0-9])(KF[0-9]{6})(?![A-Za-z0-9])", re.IGNORECASE)
_QUANTITY = re.compile(
    r"(?:(?<![0-9A-Za-z])[x×]\s?([0-9]{1,3})(?![0-9]))"
    r"|(?:(?<![0-9A-Za-z.])([0-9]{1,3})\s?(?:个|件|台|只|副|盒|pcs|pieces|units|items)(?![A-Za-z]|小时|月|钟))"
    r"|(?:([一两二三四五六七八九十]{1,3})(?:个|件|台|只|副|盒)(?!小时|月|钟))",
    re.IGNORECASE,
)
_CN_NUMBERS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DATE = re.compile(
    r"(?P<iso>20[0-9]{2}-[01]?[0-9]-[0-3]?[0-9])"
    r"|(?P<zh>(?:(?P<zy>20[0-9]{2})年)?(?P<zm>[01]?[0-9])月(?P<zd>[0-3]?[0-9])[日号])"
    r"|(?P<en>\b(?P<em>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(?P<ed>[0-3]?[0-9])(?:st|nd|rd|th)?\b)"
    r"|(?P<rel>今天|明天|后天|昨天|today|tomorrow|yesterday)",
    re.IGNORECASE,
)
_PAYMENT = {
    "alipay": ("alipay", "支付宝"),
    "wechat_pay": ("wechat pay", "wechatpay", "微信支付", "微信付"),
    "unionpay": ("unionpay", "union pay", "银联", "云闪付"),
    "credit_card": ("credit card", "visa", "mastercard", "信用卡"),
    "paypal": ("paypal",),
    "cash_on_delivery": ("cash on delivery", "货到付款"),
    "installments": ("installment", "instalment", "分期", "花呗"),
}


@dataclass(frozen=True)
class Slots:
    """What a message names."""

    order_ids: list[str] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    quantities: list[int] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    """ISO ``YYYY-MM-DD`` when the year is known, ``MM-DD`` otherwise, or a relative word."""
    payment_methods: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Only the slots that were found."""
        return {key: value for key, value in self.__dict__.items() if value}


class CatalogMatcher:
    """Finds catalog products named in a message, by their Chinese or English names."""

    def __init__(self, products: Iterable[tuple[str, str, str]]) -> None:
        """``products`` are ``(sku, name_en, name_zh)``; longer names are matched first."""
        names: list[tuple[str, str]] = []
        prefixes: dict[str, set[str]] = {}
        for sku, name_en, name_zh in products:
            names += [(name_en.lower(), sku), (name_zh.lower(), sku)]
            # A model name without its brand ("Air Pro" for "Lumo Air Pro") is how people say it.
            parts = name_en.split()
            if len(parts) >= 3:
                names.append((" ".join(parts[1:]).lower(), sku))
            # So is the start of the name ("Lumo Air Pro" for "Lumo Air Pro ANC Earbuds"), when only one product has it.
            for size in range(2, len(parts)):
                prefixes.setdefault(" ".join(parts[:size]).lower(), set()).add(sku)
        taken = {name for name, _sku in names}
        names += [
            (prefix, next(iter(skus)))
            for prefix, skus in prefixes.items()
            if len(skus) == 1 and len(prefix) >= 8 and prefix not in taken  # "Pulsa Watch 3" is its own product
        ]
        self._names = sorted({n for n in names if len(n[0]) >= 4}, key=lambda n: -len(n[0]))

    def find(self, text: str) -> list[str]:
        """SKUs whose names occur in ``text``, in order of first mention, without repeats."""
        lowered = text.lower()
        found: list[tuple[int, str]] = []
        taken: list[tuple[int, int]] = []
        for name, sku in self._names:
            for match in re.finditer(re.escape(name), lowered):
                start, end = match.span()
                glued = (end < len(lowered) and lowered[end].isascii() and lowered[end].isalnum()) or (
                    start > 0 and lowered[start - 1].isascii() and lowered[start - 1].isalnum()
                )
                if glued or any(a < end and start < b for a, b in taken):
                    continue  # "watch 3" inside "watch 30", or inside a longer product name
                taken.append((start, end))
                found.append((start, sku))
                break
        return list(dict.fromkeys(sku for _start, sku in sorted(found)))


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _date(match: re.Match[str]) -> str | None:
    """The date a match names, or None when it names no real date (2026-19-39)."""
    if match.group("iso"):
        year, month, day = (int(x) for x in match.group("iso").split("-"))
        return f"{year:04d}-{month:02d}-{day:02d}" if _valid(year, month, day) else None
    if match.group("zh"):
        year, month, day = int(match.group("zy") or 2024), int(match.group("zm")), int(match.group("zd"))
        if not _valid(year, month, day):  # 2024 is a leap year, so 2月29日 passes without a year
            return None
        return f"{year}-{month:02d}-{day:02d}" if match.group("zy") else f"{month:02d}-{day:02d}"
    if match.group("en"):
        month, day = _MONTHS.index(match.group("em").lower()[:3]) + 1, int(match.group("ed"))
        return f"{month:02d}-{day:02d}" if _valid(2024, month, day) else None
    return match.group("rel").lower()


def _cn_number(text: str) -> int:
    """一 … 九十九 as an int: 十二 → 12, 二十 → 20, 两 → 2."""
    if "十" not in text:
        return _CN_NUMBERS[text[-1]]
    tens, _, ones = text.partition("十")
    return (_CN_NUMBERS[tens] if tens else 1) * 10 + (_CN_NUMBERS[ones] if ones else 0)


def extract_slots(text: str, catalog: CatalogMatcher | None = None) -> Slots:
    """Every slot the message names."""
    lowered = text.lower()
    quantities = []
    for match in _QUANTITY.finditer(text):
        digits = match.group(1) or match.group(2)
        quantities.append(int(digits) if digits else _cn_number(match.group(3)))
    return Slots(
        order_ids=list(dict.fromkeys(m.upper() for m in _ORDER_ID.findall(text))),
        skus=catalog.find(text) if catalog is not None else [],
        quantities=quantities,
        dates=list(dict.fromkeys(d for m in _DATE.finditer(text) if (d := _date(m)) is not None)),
        payment_methods=[name for name, words in _PAYMENT.items() if any(word in lowered for word in words)],
    )
