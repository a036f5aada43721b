"""Field formats shared by every record and reference kind (CONTRACT.md §3).

Each constrained type carries its rule as a human sentence in ``description``; the validation
layer quotes it when a value breaks the rule, and the OpenAPI document shows the same sentence.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Annotated

import msgspec

AMOUNT_RULE = 'a decimal string with at most 2 decimals and greater than 0, e.g. "12345.67"'
BALANCE_RULE = 'a decimal string with at most 2 decimals, e.g. "-12.50" or "0"'
TIME_RULE = 'an RFC 3339 time with an offset, e.g. "2026-11-25T09:30:00+08:00"'
USCC_RULE = "the 18-character unified social credit code: digits and capital letters"
REGION_RULE = 'a 6-digit administrative division code, e.g. "220102"'
REGION_PREFIX_RULE = 'a region prefix of 2 to 6 digits, e.g. "22" or "2201"'
RATE_RULE = 'a decimal fraction string, e.g. "0.085" for 8.5 %'
ID_RULE = "a non-empty string of at most 128 characters"
CURRENCY_RULE = "a 3-letter ISO 4217 code in capitals, e.g. CNY"

_AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$"
_BALANCE_PATTERN = r"^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$"
# RFC 3339 date-time; the offset (Z or ±hh:mm) is mandatory, fractions of a second are allowed.
_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RATE_PATTERN = r"^(0|[1-9][0-9]{0,2})(\.[0-9]{1,6})?$"

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, description=ID_RULE)]
Amount = Annotated[str, msgspec.Meta(pattern=_AMOUNT_PATTERN, description=AMOUNT_RULE)]
SignedAmount = Annotated[str, msgspec.Meta(pattern=_BALANCE_PATTERN, description=BALANCE_RULE)]
Time = Annotated[str, msgspec.Meta(pattern=_TIME_PATTERN, description=TIME_RULE)]
Uscc = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{18}$", description=USCC_RULE)]
Region = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$", description=REGION_RULE)]
RegionPrefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{2,6}$", description=REGION_PREFIX_RULE)]
Rate = Annotated[str, msgspec.Meta(pattern=_RATE_PATTERN, description=RATE_RULE)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$", description=CURRENCY_RULE)]
Text = Annotated[str, msgspec.Meta(max_length=2000, description="free text of at most 2000 characters")]
PositiveDays = Annotated[
    int, msgspec.Meta(ge=1, le=36500, description="a whole number of days from 1 to 36500")
]
Count = Annotated[int, msgspec.Meta(ge=1, le=10_000_000, description="a whole number of at least 1")]

# Every rule above by its regular expression, so a msgspec pattern error can be told back in words.
RULE_BY_PATTERN = {
    _AMOUNT_PATTERN: AMOUNT_RULE,
    _BALANCE_PATTERN: BALANCE_RULE,
    _TIME_PATTERN: TIME_RULE,
    r"^[0-9A-Z]{18}$": USCC_RULE,
    r"^[0-9]{6}$": REGION_RULE,
    r"^[0-9]{2,6}$": REGION_PREFIX_RULE,
    _RATE_PATTERN: RATE_RULE,
    r"^[A-Z]{3}$": CURRENCY_RULE,
}

# China has kept one offset all year since 1991, so a fixed zone is exact for Beijing days.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_FRACTION = re.compile(r"\.(\d+)")


def amount_to_cents(text: str) -> int:
    """Exact integer cents of an amount string already checked against its pattern.

    The digits with the decimal point taken out and the decimals padded to two are the cents,
    sign included ("-0.5" is "-050")."""
    whole, _, frac = text.partition(".")
    return int(whole + (frac + "00")[:2])


def is_zero_amount(text: str) -> bool:
    """Whether an amount string already checked against its pattern is zero, without parsing it:
    only zeros and the point are left once the sign is off."""
    return not text.lstrip("-").replace("0", "").replace(".", "")


def cents_to_decimal(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def cents_to_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def parse_time(text: str) -> datetime:
    """An aware datetime from an RFC 3339 string already checked against its pattern.

    Fractions beyond microseconds are cut, since Python keeps six digits.
    """
    try:
        # Python 3.11 reads the usual forms (T or space, Z, any fraction) in one C call
        return datetime.fromisoformat(text)
    except ValueError:
        pass  # a lower-case z, or a day that does not exist: the long way says which
    normal = text.replace("t", "T").replace(" ", "T").replace("z", "Z")
    match = _FRACTION.search(normal)
    if match and len(match.group(1)) > 6:
        normal = normal[: match.start(1) + 6] + normal[match.end(1) :]
    return datetime.fromisoformat(normal)


@lru_cache(maxsize=4096)
def epoch_seconds(text: str) -> int:
    """Whole epoch seconds of an RFC 3339 string (raises ValueError for a day that does not
    exist). Cached: the gateway checks a record's time while decoding it and converts it right
    after, and a batch repeats times."""
    return int(parse_time(text).timestamp())


def utc_from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def rate_to_decimal(text: str) -> Decimal:
    return Decimal(text)
