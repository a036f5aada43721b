"""RowBinary rows (services/storage/rowbinary.py): the bytes ClickHouse's format defines for the
types written, and no bytes at all (the caller's JSON path) for anything else."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.storage.rowbinary import _varint, encode_rows, writer_of


@pytest.mark.parametrize(
    ("number", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"), (1 << 21, b"\x80\x80\x80\x01")],
)
def test_lengths_are_leb128(number, encoded):
    assert _varint(number) == encoded


def test_rows_are_their_values_bytes_behind_lengths():
    rows = [["m/1", 3, '{"a":"红"}', 1_764_000_000, ["r1", ""], 2**64 - 1, -5]]
    types = ["String", "UInt32", "String", "DateTime('UTC')", "Array(String)", "UInt64", "Int64"]
    payload = '{"a":"红"}'.encode()
    assert encode_rows(rows, types) == (
        b"\x03m/1" + struct.pack("<I", 3) + bytes([len(payload)]) + payload + struct.pack("<I", 1_764_000_000)
        + b"\x02\x02r1\x00" + struct.pack("<Q", 2**64 - 1) + struct.pack("<q", -5)
    )  # fmt: skip


def test_bytes_are_written_as_given():
    assert encode_rows([[b"\x00\xff"]], ["String"]) == b"\x02\x00\xff"


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("String", None), ("String", 5), ("UInt32", -1), ("UInt32", 1 << 32), ("UInt32", True),
        ("DateTime", datetime(2026, 1, 1, tzinfo=UTC)), ("UInt32", 1.0), ("Int64", 1 << 63),
        ("UInt64", -1), ("Array(String)", "ab"), ("Array(String)", ["a", None]),
    ],
)  # fmt: skip
def test_a_value_not_of_its_columns_plain_type_leaves_the_rows_to_the_caller(type_name, value):
    assert encode_rows([[value]], [type_name]) is None


@pytest.mark.parametrize(
    "type_name", ["Nullable(String)", "Decimal(18, 2)", "DateTime64(3)", "LowCardinality(String)", "Float64", ""]
)
def test_a_type_not_written_here_leaves_the_rows_to_the_caller(type_name):
    assert writer_of(type_name) is None
    assert encode_rows([["1"]], ["String", type_name][1:]) is None
    assert encode_rows([[Decimal("1")]], [type_name]) is None


def test_a_row_of_the_wrong_width_leaves_the_rows_to_the_caller():
    assert encode_rows([["a", "b"]], ["String"]) is None
