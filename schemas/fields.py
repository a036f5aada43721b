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
TIME_RULE = 'an RFC 3339 time with an offset, in the years 2000 to 2100, e.g. "2026-11-25T09:30:00+08:00"'
USCC_RULE = "the 18-character unified social credit code: digits and capital letters"
REGION_RULE = 'a 6-digit administrative division code, e.g. "220102"'
REGION_PREFIX_RULE = 'a region prefix of 2 to 6 digits, e.g. "22" or "2201"'
RATE_RULE = 'a decimal fraction string, e.g. "0.085" for 8.5 %'
ID_RULE = (
    "a non-empty string of at most 128 characters, not only spaces, without control characters "
    "or bidirectional marks"
)
CURRENCY_RULE = "a 3-letter ISO 4217 code in capitals, e.g. CNY"


def _whole(body: str) -> str:
    # Python's "$" also matches before a final newline, so "CNY\n" passed as a currency; the
    # lookahead refuses that, and means nothing more to the ECMA-262 readers of the OpenAPI document
    return rf"^{body}$(?!\n)"


# The bodies of the patterns records' values must match whole, for a reader that checks several
# values with one regex (services/gateway/reader.py) rather than one call per value.
AMOUNT_BODY = r"(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?"
BALANCE_BODY = r"-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?"
_AMOUNT_PATTERN = _whole(AMOUNT_BODY)
_BALANCE_PATTERN = _whole(BALANCE_BODY)
# RFC 3339 date-time; the offset (Z or ±hh:mm) is mandatory, fractions of a second are allowed.
# Years 2000 to 2100 only: no record of this service can be older, and ClickHouse's DateTime
# (epoch seconds in 32 bits, unsigned) would silently clamp anything before 1970 or after 2106.
TIME_BODY = r"(20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
_TIME_PATTERN = _whole(TIME_BODY)
# The earliest instant a record may carry (2000-01-01T00:00:00Z): the pattern bounds the written
# year, this bounds the instant, since "2000-01-01T05:00:00+08:00" is still 1999 in UTC.
EARLIEST_EPOCH = 946_684_800
# An identifier holds no C0/C1 control character (NUL included) and no Unicode bidirectional
# control (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069): either can make two ids look
# alike in a log, a console or a report while they differ, or cut a C string short. Nor may it be
# only whitespace.
_ID_FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ID_PATTERN = _whole(rf"(?!\s*$)[^{_ID_FORBIDDEN}]*")
_ID_REGEX = re.compile(_ID_PATTERN)
_RATE_PATTERN = _whole(r"(0|[1-9][0-9]{0,2})(\.[0-9]{1,6})?")
_USCC_PATTERN = _whole(r"[0-9A-Z]{18}")
_REGION_PATTERN = _whole(r"[0-9]{6}")
_REGION_PREFIX_PATTERN = _whole(r"[0-9]{2,6}")
CURRENCY_BODY = r"[A-Z]{3}"
_CURRENCY_PATTERN = _whole(CURRENCY_BODY)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=_ID_PATTERN, description=ID_RULE)]
# The same rule for the fields of pushed records, checked by ``id_breaks_rule`` in the records'
# __post_init__ rather than by msgspec's pattern: a regex search per field was a third of the
# cost of decoding a record. The OpenAPI document shows the same pattern for both.
RecordId = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=128, description=ID_RULE, extra_json_schema={"pattern": _ID_PATTERN}
    ),
]
Amount = Annotated[str, msgspec.Meta(pattern=_AMOUNT_PATTERN, description=AMOUNT_RULE)]
SignedAmount = Annotated[str, msgspec.Meta(pattern=_BALANCE_PATTERN, description=BALANCE_RULE)]
Time = Annotated[str, msgspec.Meta(pattern=_TIME_PATTERN, description=TIME_RULE)]
Uscc = Annotated[str, msgspec.Meta(pattern=_USCC_PATTERN, description=USCC_RULE)]
Region = Annotated[str, msgspec.Meta(pattern=_REGION_PATTERN, description=REGION_RULE)]
RegionPrefix = Annotated[str, msgspec.Meta(pattern=_REGION_PREFIX_PATTERN, description=REGION_PREFIX_RULE)]
Rate = Annotated[str, msgspec.Meta(pattern=_RATE_PATTERN, description=RATE_RULE)]
Currency = Annotated[str, msgspec.Meta(pattern=_CURRENCY_PATTERN, description=CURRENCY_RULE)]
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
    _ID_PATTERN: ID_RULE,
    _USCC_PATTERN: USCC_RULE,
    _REGION_PATTERN: REGION_RULE,
    _REGION_PREFIX_PATTERN: REGION_PREFIX_RULE,
    _RATE_PATTERN: RATE_RULE,
    _CURRENCY_PATTERN: CURRENCY_RULE,
}


def patterned(body: str, rule: str) -> msgspec.Meta:
    """The Meta of a string type whose values match ``body`` whole, its rule in words: other
    modules' patterns are told back in words too."""
    pattern = _whole(body)
    RULE_BY_PATTERN[pattern] = rule
    return msgspec.Meta(pattern=pattern, description=rule)


# China has kept one offset all year since 1991, so a fixed zone is exact for Beijing days.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_FRACTION = re.compile(r"\.(\d+)")
_TIME_REGEX = re.compile(_TIME_PATTERN)


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


def id_breaks_rule(value: str) -> bool:
    """Whether an identifier breaks ID_RULE (its length is msgspec's to check).

    Printable and not all whitespace is the common case and is decided by two C string methods;
    every character the pattern forbids is unprintable, so only an unprintable value needs the
    pattern, which then decides exactly as msgspec would."""
    if value.isprintable() and not value.isspace():
        return False
    return _ID_REGEX.search(value) is None


def time_breaks_rule(text: str) -> str | None:
    """What is wrong with a time that matched TIME_RULE's pattern, or None: a day that does not
    exist, or an instant before 2000 in UTC."""
    try:
        seconds = epoch_seconds(text)
    except ValueError:
        return "a real calendar date and time (RFC 3339 with an offset)"
    return "at or after 2000-01-01T00:00:00Z" if seconds < EARLIEST_EPOCH else None


def query_time(text: str) -> datetime:
    """A time given as a query parameter (``since``), held to TIME_RULE as records' times are:
    raises ValueError for one without an offset (RFC 3339 requires it; a naive time would be read
    in the server's zone), off the calendar, or outside 2000 to 2100."""
    if _TIME_REGEX.search(text) is None or time_breaks_rule(text) is not None:
        raise ValueError(f"not {TIME_RULE}: {text!r}")
    return parse_time(text)


def utc_from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def rate_to_decimal(text: str) -> Decimal:
    return Decimal(text)
