"""services/storage/arrow.py: insert_columns' values as the Arrow table chDB reads, typed from the
table's own column types."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from services.storage.arrow import arrow_table, arrow_type
from services.storage.base import Scaled, StorageError


@pytest.mark.parametrize(
    ("type_name", "values", "expected"),
    [
        ("String", [], pa.string()),
        ("Nullable(String)", [], pa.string()),
        ("LowCardinality(Nullable(String))", [], pa.string()),
        ("Enum8('debit' = 1, 'credit' = 2)", [], pa.string()),
        ("Decimal(18, 2)", [], pa.decimal128(18, 2)),
        ("Nullable(Decimal(18, 2))", [], pa.decimal128(18, 2)),
        ("Decimal64(4)", [], pa.decimal128(18, 4)),
        ("UInt32", [], pa.uint32()),
        ("Int64", [], pa.int64()),
        ("Float64", [], pa.float64()),
        ("DateTime('UTC')", [None, 1_764_000_000], pa.uint32()),
        ("Nullable(DateTime('UTC'))", [None, datetime(2026, 1, 1, tzinfo=UTC)], pa.timestamp("s", tz="UTC")),
        ("Array(String)", [], pa.list_(pa.string())),
        ("Map(String, String)", [], None),
    ],
)
def test_arrow_types_follow_the_clickhouse_types(type_name, values, expected):
    assert arrow_type(type_name, values) == expected


def test_cents_become_decimals_exactly_negatives_nulls_and_the_largest_included():
    table = arrow_table(
        {"m": Scaled([-1, None, 99_999_999_999_999_99, 0, -99_999_999_999_999_99], 2)},
        {"m": "Nullable(Decimal(18, 2))"},
    )
    assert table.column("m").type == pa.decimal128(18, 2)
    assert table.column("m").to_pylist() == [
        Decimal("-0.01"),
        None,
        Decimal("99999999999999.99"),
        Decimal("0.00"),
        Decimal("-99999999999999.99"),
    ]


def test_columns_keep_their_order_and_nulls_and_empty_arrays_keep_their_types():
    table = arrow_table(
        {"tags": [[], []], "name": [None, None], "at": [0, 4_294_967_295]},
        {"name": "Nullable(String)", "at": "DateTime('UTC')", "tags": "Array(String)"},
    )
    assert table.column_names == ["tags", "name", "at"]
    assert table.schema.types == [pa.list_(pa.string()), pa.string(), pa.uint32()]
    assert table.to_pylist() == [
        {"tags": [], "name": None, "at": 0},
        {"tags": [], "name": None, "at": 4_294_967_295},
    ]


@pytest.mark.parametrize(
    ("columns", "types", "says"),
    [
        ({"m": Scaled([1], 3)}, {"m": "Decimal(18, 2)"}, "column m: integers of scale 3"),
        ({"m": Scaled([1], 2)}, {"m": "String"}, "column m: integers of scale 2 given for a String"),
        ({"n": ["x"]}, {"n": "UInt32"}, r"column n \(UInt32\)"),
        ({"m": Scaled([2**63], 2)}, {"m": "Decimal(38, 2)"}, r"column m \(Decimal\(38, 2\)\)"),
        ({"nope": [1]}, {"n": "UInt32"}, "no column 'nope'"),
    ],
)
def test_values_the_table_cannot_take_are_refused_naming_the_column(columns, types, says):
    with pytest.raises(StorageError, match=says):
        arrow_table(columns, types)


def test_after_the_warm_up_a_conversion_imports_nothing_more():
    """What a worker's first insert would load (pyarrow imports pandas at its first conversion of
    a list) is loaded by the warm-up, in a process that has converted nothing yet."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from services.storage.arrow import arrow_table, warm_up_conversions\n"
        "warm_up_conversions()\n"
        "loaded = set(sys.modules)\n"
        "arrow_table({'n': [1, 2], 's': ['a', None]}, {'n': 'UInt32', 's': 'Nullable(String)'})\n"
        "print(sorted(set(sys.modules) - loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
