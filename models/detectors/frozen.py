"""Parts of a detector's state that are done changing, held as their JSON text.

A worker writes an account's or an institution's whole state to the table's changelog at each
commit and to ClickHouse with each snapshot (streams/records.py, streams/sink.py), and most of a
busy state is days that no record on time can reach any more: a sealed day's large-value
buckets, its anomaly evidence, a payment institution's unmatched legs of past hours held for a
slower bank. Encoding those again at every write was most of what a week of state added to a
record's cost: a state built step by step is many small objects spread over the heap, and the
encoder waits on memory (docs/benchmarks.md). A part that is done is therefore encoded once, when
it is done, and kept as ``msgspec.Raw``: every later write copies its bytes, and it takes a
fraction of the memory of the objects it stood for.

A frozen part is the same JSON the state would have been written as, so the changelog, the
snapshots and a recovered state are what they were (a recovered state holds such parts as plain
JSON again, and they are frozen anew once seen done). A late record that reaches a frozen part
thaws it (``thawed``): decoded, changed, and frozen again when the step ends. Code that reads a
part that may be frozen reads it through ``thawed``; a frozen part read without it fails loudly
(a ``Raw`` is not a mapping), never silently.
"""

from __future__ import annotations

from typing import Any

import msgspec

Raw = msgspec.Raw

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def frozen(part: Any) -> msgspec.Raw:
    """A part of a state that is done changing, as the JSON it would be written as."""
    return Raw(_encode(part))


def thawed(part: Any) -> Any:
    """A part as plain values again (a new object the caller owns), or the part itself when it is
    not frozen."""
    return _decode(part) if type(part) is Raw else part


def is_frozen(part: Any) -> bool:
    return type(part) is Raw


def freeze_before(parts: dict[str, Any], until: int | None) -> None:
    """Freeze, in place, the parts whose key (an event time as text: a day's or an hour's start)
    is before ``until``, the first time that a record on time may still change; ``parts`` must
    be the caller's own map."""
    if until is None:
        return
    for key, part in parts.items():
        if type(part) is not Raw and int(key) < until:
            parts[key] = frozen(part)


def plain(state: Any) -> Any:
    """A state with every frozen part decoded: what the state reads as after a changelog round
    trip (tests and digests compare states through this)."""
    return _decode(_encode(state))
