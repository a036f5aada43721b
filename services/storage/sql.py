"""Query parameters rendered as ClickHouse literals, so values are never spliced by hand.

Queries use ``%(name)s`` placeholders on both backends. The server backend lets
clickhouse-driver substitute them; chDB has no client library in between, so this module does
the same escaping for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\b": "\\b",
    "\f": "\\f",
    "\r": "\\r",
    "\n": "\\n",
    "\t": "\\t",
    "\0": "\\0",
}


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"'{value.strftime('%Y-%m-%d %H:%M:%S')}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"
    if isinstance(value, list | tuple | set | frozenset):
        items = ", ".join(literal(v) for v in value)
        # clickhouse-driver renders sequences as tuples, which suits `x IN %(values)s`
        return f"({items})" if not isinstance(value, list) else f"[{items}]"
    raise TypeError(f"cannot render a {type(value).__name__} as a ClickHouse literal")


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return sql
    return sql % {name: literal(value) for name, value in params.items()}
