"""How findings write figures and words: money in metrics and in Chinese and English sentences,
ratios, percentages, masked accounts, account roles and citations of the plan's sections."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from schemas.fields import cents_to_text


def money(cents: int) -> str:
    """Money in metrics and thresholds: a decimal string, "1234567.89"."""
    return cents_to_text(cents)


def _grouped(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


def yuan_zh(cents: int) -> str:
    return f"{_grouped(cents)} 元"


def yuan_en(cents: int) -> str:
    return f"CNY {_grouped(cents)}"


def ratio_text(value: Fraction | Decimal | float, places: int = 6) -> str:
    """A ratio in metrics: a decimal string with fixed places."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    quantum = Decimal(1).scaleb(-places)
    return str(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def percent(value: Fraction | Decimal, places: int = 2) -> str:
    """A ratio for a sentence: "7.25%"."""
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    quantum = Decimal(1).scaleb(-places)
    text = str((Decimal(value) * 100).quantize(quantum, rounding=ROUND_HALF_UP))
    return f"{text}%"


def mask(account_id: str | None) -> str:
    """An account as explanations show it: only its last 4 characters ("****1234").

    An id of 4 characters or fewer would be shown whole, so it is hidden entirely."""
    text = str(account_id or "")
    return "****" + text[-4:] if len(text) > 4 else "****"


ROLE_ZH = {
    "customer_custody": "客户资金存管账户",
    "payment_reserve": "客户备付金账户",
    "own_operating": "自有运营账户",
    "related_party": "关联方账户",
    "investor": "投资人账户",
    "borrower": "借款人账户",
    "other": "账户",
}


ROLE_EN = {
    "customer_custody": "customer-custody account",
    "payment_reserve": "payment-reserve account",
    "own_operating": "own operating account",
    "related_party": "related-party account",
    "investor": "investor account",
    "borrower": "borrower account",
    "other": "account",
}


_CN_DIGITS = {
    "一": "1",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}


def role_zh(role: str | None) -> str:
    return ROLE_ZH.get(role or "other", "账户")


def role_en(role: str | None) -> str:
    return ROLE_EN.get(role or "other", "account")


def section_en(section: str) -> str:
    """A seed-plan section for an English sentence: 二(一) -> "§2(1)", 四(二)4 -> "§4(2)4"."""
    return "§" + "".join(_CN_DIGITS.get(ch, ch) for ch in section)


def cite_zh(section: str) -> str:
    return f"（《方案》{section}）"


def cite_en(section: str) -> str:
    return f"(rectification plan {section_en(section)})"
