"""Columns for chDB as an Arrow table, typed from the target table's own column types.

chDB reads Arrow in C++ (the Python table function); the values need no Python per value
beyond pyarrow's conversion of each list. The types are taken from the table rather than
inferred from the values: a column with only NULLs, or only empty arrays, infers as Arrow's null
type, and integers for a Decimal column would be taken as whole units.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from services.storage.base import ColumnValues, Scaled, StorageError

_INTEGERS = {
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "Float32": pa.float32(), "Float64": pa.float64(), "Bool": pa.bool_(),
}  # fmt: skip
_DECIMAL = re.compile(r"Decimal\((\d+),\s*(\d+)\)$")
_DECIMAL_SIZED = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38}
_WRAPPERS = ("Nullable(", "LowCardinality(")


def _unwrapped(type_name: str) -> str:
    while type_name.startswith(_WRAPPERS):
        type_name = type_name[type_name.index("(") + 1 : -1]
    return type_name


def _decimal(type_name: str) -> tuple[int, int] | None:
    """(precision, scale) of a Decimal type, in either of ClickHouse's spellings."""
    found = _DECIMAL.match(type_name)
    if found:
        return int(found.group(1)), int(found.group(2))
    for name, precision in _DECIMAL_SIZED.items():
        if type_name.startswith(name + "("):
            return precision, int(type_name[len(name) + 1 : -1])
    return None


def _first_value(values: Sequence[Any]) -> Any:
    return next((value for value in values if value is not None), None)


def arrow_type(type_name: str, values: Sequence[Any] = ()) -> pa.DataType | None:
    """The Arrow type that carries ``values`` into a column of ``type_name``; None to let
    pyarrow infer it (a type this module has no rule for)."""
    type_name = _unwrapped(type_name)
    if type_name == "String" or type_name.startswith(("FixedString(", "Enum8(", "Enum16(")):
        return pa.string()  # an Enum column takes its names
    if type_name in _INTEGERS:
        return _INTEGERS[type_name]
    if type_name.startswith("DateTime") and not type_name.startswith("DateTime64"):
        # whole epoch seconds on the hot paths (services/storage/base.py), datetimes elsewhere
        return pa.timestamp("s", tz="UTC") if isinstance(_first_value(values), datetime) else pa.uint32()
    if type_name == "Date":
        return pa.date32()
    decimal = _decimal(type_name)
    if decimal is not None:
        return pa.decimal128(*decimal)
    if type_name.startswith("Array("):
        inner = arrow_type(type_name[len("Array(") : -1])
        return None if inner is None else pa.list_(inner)
    return None


def warm_up_conversions() -> None:
    """Do once what pyarrow does on its first conversion of a list (it imports pandas)."""
    pa.array([0], pa.int64())


def _scaled_array(column: Scaled, type_: pa.Decimal128Type) -> pa.Array:
    """Integers of 10**-scale units laid out as Arrow's 128-bit decimals: the integer is the
    decimal's unscaled value, so this is a copy and a sign extension, no arithmetic."""
    if column.scale != type_.scale:
        raise StorageError(f"integers of scale {column.scale} given for a decimal of scale {type_.scale}")
    ints = pa.array(column.values, pa.int64())
    validity, data = ints.buffers()
    low = np.frombuffer(data, dtype=np.int64, count=len(ints))
    wide = np.empty((len(ints), 2), dtype=np.int64)
    wide[:, 0] = low
    wide[:, 1] = low >> 63
    return pa.Array.from_buffers(type_, len(ints), [validity, pa.py_buffer(wide)], null_count=ints.null_count)


def arrow_table(columns: Mapping[str, ColumnValues], types: Mapping[str, str]) -> pa.Table:
    """The columns as one Arrow table, in the mapping's order; ``types`` maps each column's name
    to its ClickHouse type."""
    arrays: list[pa.Array] = []
    for name, values in columns.items():
        if name not in types:
            raise StorageError(f"no column {name!r} in the table")
        try:
            if isinstance(values, Scaled):
                type_ = arrow_type(types[name])
                if not isinstance(type_, pa.Decimal128Type):
                    raise StorageError(f"integers of scale {values.scale} given for a {types[name]}")
                arrays.append(_scaled_array(values, type_))
            else:
                arrays.append(pa.array(values, arrow_type(types[name], values)))
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as error:
            raise StorageError(f"column {name} ({types[name]}): {error}") from None
        except StorageError as error:
            raise StorageError(f"column {name}: {error}") from None
    return pa.Table.from_arrays(arrays, names=list(columns))
