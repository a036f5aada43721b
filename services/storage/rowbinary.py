"""Rows in ClickHouse's RowBinary format, for the plain column types the gateway's tables hold.

chDB takes an insert's data inline, in the query's text, and inline data costs it more the more
JSON-like it is: a megabyte of JSON text in one String column took 22 ms to insert as
JSONCompactEachRow, a megabyte of one letter 8 ms; as TabSeparated, which escapes no quote, 27 and
13 ms. The outbox holds every records message as published, JSON, and state snapshots are JSON.
RowBinary, read from a file, is each value's bytes behind a length. Measured on the bench's
60,035 records in rounds of five batches: the outbox insert took 4.4-4.8 µs of wall time a record
inline as JSON, 2.9-3.4 from RowBinary.

Only the types below are written; a row whose value is not of the plain Python type its column
takes (a datetime for a DateTime column, a float for an integer) makes ``encode_rows`` return None,
and the caller writes the rows as it did before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

_Writer = Callable[[Any, list[bytes]], bool]

_UINT32 = struct.Struct("<I").pack
_UINT64 = struct.Struct("<Q").pack
_INT64 = struct.Struct("<q").pack
_UINT32_MAX = (1 << 32) - 1


def _varint(number: int) -> bytes:
    """LEB128, as RowBinary gives lengths and counts."""
    if number < 0x80:
        return bytes((number,))
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _string(value: Any, out: list[bytes]) -> bool:
    if type(value) is str:
        value = value.encode("utf-8")
    elif type(value) is not bytes:
        return False
    out.append(_varint(len(value)))
    out.append(value)
    return True


def _uint32(value: Any, out: list[bytes]) -> bool:
    # DateTime is UInt32 epoch seconds; the rows give epoch seconds as int (services/storage/base.py)
    if type(value) is not int or not 0 <= value <= _UINT32_MAX:
        return False
    out.append(_UINT32(value))
    return True


def _uint64(value: Any, out: list[bytes]) -> bool:
    if type(value) is not int or not 0 <= value < 1 << 64:
        return False
    out.append(_UINT64(value))
    return True


def _int64(value: Any, out: list[bytes]) -> bool:
    if type(value) is not int or not -(1 << 63) <= value < 1 << 63:
        return False
    out.append(_INT64(value))
    return True


def _array_of(inner: _Writer) -> _Writer:
    def write(value: Any, out: list[bytes]) -> bool:
        if type(value) not in (list, tuple):
            return False
        out.append(_varint(len(value)))
        return all(inner(item, out) for item in value)

    return write


def writer_of(type_name: str) -> _Writer | None:
    """How to write a value of the ClickHouse type ``type_name``; None for a type not written here."""
    if type_name == "String":
        return _string
    if type_name in ("UInt32", "DateTime") or type_name.startswith("DateTime("):  # not DateTime64
        return _uint32
    if type_name == "UInt64":
        return _uint64
    if type_name == "Int64":
        return _int64
    if type_name.startswith("Array(") and type_name.endswith(")"):
        inner = writer_of(type_name[len("Array(") : -1])
        return None if inner is None else _array_of(inner)
    return None


def encode_rows(rows: Sequence[Sequence[Any]], type_names: Sequence[str]) -> bytes | None:
    """The rows in RowBinary, their values in ``type_names``' order; None when a column's type or
    one value is not one written here."""
    writers = [writer_of(type_name) for type_name in type_names]
    known = [write for write in writers if write is not None]
    if len(known) != len(writers):
        return None
    out: list[bytes] = []
    for row in rows:
        if len(row) != len(known):
            return None
        for write, value in zip(known, row, strict=True):
            if not write(value, out):
                return None
    return b"".join(out)
