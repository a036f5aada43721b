"""schemas/fields.py: exact money and time conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from schemas.fields import (
    BEIJING,
    amount_to_cents,
    cents_to_decimal,
    cents_to_text,
    epoch_seconds,
    is_zero_amount,
    parse_time,
    rate_to_decimal,
    utc_from_epoch,
)

# --- amounts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("0.1", 10),
        ("0.01", 1),
        ("0.10", 10),
        ("1", 100),
        ("1.5", 150),
        ("12345.67", 1234567),
        ("0", 0),
        ("0.00", 0),
        ("9999999999999999.99", 999999999999999999),
        ("-12.50", -1250),
        ("-0.50", -50),
        ("-0.01", -1),
        ("-7", -700),
    ],
)
def test_amount_to_cents_is_exact(text, cents):
    assert amount_to_cents(text) == cents


@pytest.mark.parametrize(
    ("text", "zero"),
    [("0", True), ("0.0", True), ("0.00", True), ("-0", True), ("-0.00", True), ("0.01", False),
     ("10", False), ("100.00", False), ("-0.10", False), ("-7", False)],
)  # fmt: skip
def test_is_zero_amount_agrees_with_the_cents(text, zero):
    assert is_zero_amount(text) is zero
    assert (amount_to_cents(text) == 0) is zero


def test_amount_to_cents_avoids_float_rounding():
    # 0.29 * 100 == 28.999999999999996 in binary floating point
    assert amount_to_cents("0.29") == 29
    assert amount_to_cents("1234567890123.29") == 123456789012329


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (10, "0.10"),
        (1, "0.01"),
        (0, "0.00"),
        (1234567, "12345.67"),
        (-1250, "-12.50"),
        (-50, "-0.50"),
        (-1, "-0.01"),
        (100, "1.00"),
    ],
)
def test_cents_to_text(cents, text):
    assert cents_to_text(cents) == text


@pytest.mark.parametrize(
    ("cents", "text"), [(10, "0.10"), (1234567, "12345.67"), (-1250, "-12.50"), (0, "0.00")]
)
def test_cents_to_decimal_is_exact_with_two_places(cents, text):
    value = cents_to_decimal(cents)
    assert isinstance(value, Decimal)
    assert value == Decimal(text)
    assert str(value) == text


@pytest.mark.parametrize("text", ["0.1", "12345.67", "-12.50", "-0.50", "0", "1", "9999999999999999.99"])
def test_amount_round_trip_through_cents(text):
    cents = amount_to_cents(text)
    assert Decimal(cents_to_text(cents)) == Decimal(text)
    assert cents_to_decimal(cents) == Decimal(text)
    assert amount_to_cents(cents_to_text(cents)) == cents


@pytest.mark.parametrize("cents", [-100001, -1, 0, 1, 99, 100, 101, 123456789])
def test_cents_round_trip_through_text(cents):
    assert amount_to_cents(cents_to_text(cents)) == cents


def test_rate_to_decimal_is_exact():
    assert rate_to_decimal("0.085") == Decimal("0.085")
    assert str(rate_to_decimal("0.085")) == "0.085"


# --- times ---------------------------------------------------------------------------------------


def test_parse_time_keeps_the_beijing_offset():
    moment = parse_time("2026-11-25T09:30:00+08:00")
    assert moment.utcoffset() == timedelta(hours=8)
    assert moment == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_parse_time_reads_z_as_utc():
    moment = parse_time("2026-11-25T01:30:00Z")
    assert moment.utcoffset() == timedelta(0)
    assert moment == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_parse_time_accepts_lowercase_t_and_z_and_space_separator():
    expected = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    assert parse_time("2026-11-25t01:30:00z") == expected
    assert parse_time("2026-11-25 09:30:00+08:00") == expected


def test_parse_time_negative_offset():
    assert parse_time("2026-11-25T09:30:00-05:30") == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def test_parse_time_cuts_fractions_beyond_microseconds():
    moment = parse_time("2026-11-25T09:30:00.123456789+08:00")
    assert moment.microsecond == 123456
    assert moment.utcoffset() == timedelta(hours=8)


def test_parse_time_fraction_of_seven_digits_with_z():
    moment = parse_time("2026-11-25T01:30:00.9999999Z")
    assert moment.microsecond == 999999
    assert moment.second == 0  # cut, not rounded up into the next second


def test_parse_time_short_fraction():
    assert parse_time("2026-11-25T09:30:00.1+08:00").microsecond == 100000


def test_parse_time_rejects_impossible_date():
    with pytest.raises(ValueError):
        parse_time("2026-02-30T10:00:00+08:00")


def test_epoch_seconds_same_instant_in_any_offset():
    assert epoch_seconds("2026-11-25T09:30:00+08:00") == epoch_seconds("2026-11-25T01:30:00Z")
    assert epoch_seconds("2026-11-25T01:30:00Z") == 1795570200


def test_epoch_seconds_truncates_fraction():
    assert epoch_seconds("2026-11-25T01:30:00.999999999Z") == 1795570200


def test_epoch_seconds_of_unix_epoch():
    assert epoch_seconds("1970-01-01T08:00:00+08:00") == 0


def test_utc_from_epoch_round_trip():
    moment = utc_from_epoch(1795570200)
    assert moment == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


# --- Beijing day boundaries ----------------------------------------------------------------------


def test_beijing_zone_is_fixed_plus_eight():
    assert BEIJING.utcoffset(None) == timedelta(hours=8)


def test_beijing_midnight_is_16_utc_the_day_before():
    last_second = parse_time("2026-11-24T23:59:59+08:00")
    midnight = parse_time("2026-11-25T00:00:00+08:00")
    assert last_second == datetime(2026, 11, 24, 15, 59, 59, tzinfo=UTC)
    assert midnight == datetime(2026, 11, 24, 16, 0, 0, tzinfo=UTC)
    assert last_second.astimezone(BEIJING).date().isoformat() == "2026-11-24"
    assert midnight.astimezone(BEIJING).date().isoformat() == "2026-11-25"


def test_utc_evening_is_next_beijing_day():
    moment = parse_time("2026-11-24T16:00:00Z")
    assert moment.date().isoformat() == "2026-11-24"
    assert moment.astimezone(BEIJING).date().isoformat() == "2026-11-25"
