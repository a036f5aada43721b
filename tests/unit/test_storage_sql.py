"""services/storage/sql.py: ClickHouse literals, so values are never spliced by hand."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.storage.sql import literal, render

_UNESCAPE = {"\\": "\\", "'": "'", "b": "\b", "f": "\f", "r": "\r", "n": "\n", "t": "\t", "0": "\0"}


def read_string_literal(text: str) -> tuple[str, int]:
    """Read one ClickHouse string literal at the start of ``text``: its value and where it ends."""
    assert text[0] == "'", text
    out = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
        elif ch == "'":
            if i + 1 < len(text) and text[i + 1] == "'":  # '' is a quote too
                out.append("'")
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise AssertionError(f"unterminated literal {text!r}")


def assert_one_literal_of(value: str) -> None:
    rendered = literal(value)
    decoded, end = read_string_literal(rendered)
    assert end == len(rendered), f"literal ends early: {rendered!r}"
    assert decoded == value


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "it's",
        "back\\slash",
        "line\nbreak",
        "nul\0byte",
        "tab\tcr\rff\fbs\b",
        "\\'",
        "'\\",
        "x'; DROP TABLE t; --",
        "\\'; DROP TABLE t; --",
        "x'' OR 1=1 --",
        "长春市某某公司",
        "%(other)s",
    ],
)
def test_string_stays_one_literal_and_round_trips(value):
    assert_one_literal_of(value)


def test_quote_escaped():
    assert literal("it's") == "'it\\'s'"


def test_backslash_escaped():
    assert literal("a\\b") == "'a\\\\b'"


def test_newline_and_nul_escaped():
    assert literal("a\nb") == "'a\\nb'"
    assert literal("a\0b") == "'a\\0b'"
    assert "\n" not in literal("a\nb") and "\0" not in literal("a\0b")


def test_injection_attempt_is_one_literal():
    rendered = literal("x'; DROP TABLE t; --")
    assert rendered == "'x\\'; DROP TABLE t; --'"
    value, end = read_string_literal(rendered)
    assert end == len(rendered) and value == "x'; DROP TABLE t; --"


def test_none_is_null():
    assert literal(None) == "NULL"


def test_bool_is_one_or_zero_not_true():
    assert literal(True) == "1"
    assert literal(False) == "0"


def test_numbers():
    assert literal(42) == "42"
    assert literal(-7) == "-7"
    assert literal(1.5) == "1.5"
    assert literal(Decimal("12345.67")) == "12345.67"
    assert literal(Decimal("-12.50")) == "-12.50"


def test_aware_datetime_rendered_in_utc():
    beijing = timezone(timedelta(hours=8))
    assert literal(datetime(2026, 11, 25, 9, 30, 5, tzinfo=beijing)) == "'2026-11-25 01:30:05'"
    assert literal(datetime(2026, 11, 25, 0, 30, tzinfo=beijing)) == "'2026-11-24 16:30:00'"
    assert literal(datetime(2026, 11, 25, 1, 30, tzinfo=UTC)) == "'2026-11-25 01:30:00'"


def test_naive_datetime_rendered_as_is():
    assert literal(datetime(2026, 11, 25, 1, 30)) == "'2026-11-25 01:30:00'"


def test_date():
    assert literal(date(2026, 11, 25)) == "'2026-11-25'"


def test_enum_renders_its_value():
    class Color(str, enum.Enum):
        red = "r'ed"

    assert literal(Color.red) == "'r\\'ed'"


def test_list_is_array():
    assert literal([1, "a", None]) == "[1, 'a', NULL]"
    assert literal([]) == "[]"


def test_tuple_is_tuple():
    assert literal((1, "a")) == "(1, 'a')"


def test_nested_list_escapes_inside():
    assert literal(["x'y"]) == "['x\\'y']"


def test_set_rendered_as_tuple():
    assert literal({"only"}) == "('only')"


@pytest.mark.parametrize("value", [object(), b"bytes", {"a": 1}, 1j])
def test_unknown_type_raises_type_error(value):
    with pytest.raises(TypeError, match="ClickHouse literal"):
        literal(value)


def test_render_substitutes_named_params():
    sql = render(
        "SELECT * FROM t WHERE a = %(a)s AND b IN %(b)s AND c = %(c)s",
        {"a": "x'y", "b": ("p", "q"), "c": None},
    )
    assert sql == "SELECT * FROM t WHERE a = 'x\\'y' AND b IN ('p', 'q') AND c = NULL"


def test_render_without_params_is_unchanged():
    assert render("SELECT 1 LIKE '%'", None) == "SELECT 1 LIKE '%'"
    assert render("SELECT 1", {}) == "SELECT 1"


def test_render_does_not_substitute_inside_values():
    assert render("%(a)s %(b)s", {"a": "%(b)s", "b": 1}) == "'%(b)s' 1"


def test_render_injection_attempt_stays_in_its_literal():
    sql = render("SELECT * FROM t WHERE id = %(id)s LIMIT 1", {"id": "x'; DROP TABLE t; --"})
    prefix = "SELECT * FROM t WHERE id = "
    assert sql.startswith(prefix)
    value, end = read_string_literal(sql[len(prefix) :])
    assert value == "x'; DROP TABLE t; --"
    assert sql[len(prefix) + end :] == " LIMIT 1"
