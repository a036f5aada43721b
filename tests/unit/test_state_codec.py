"""The codec account states are written to the changelog with: Faust finds it by name, Faust's
default json codec (the table's, on recovery) reads what it writes, and it reads what that codec
wrote (a changelog written by an earlier worker)."""

from __future__ import annotations

from faust.serializers import codecs

from streams.state_codec import STATE_CODEC

STATE = {
    "flows": {"inflow_cents": 12_345_678_901, "recent": ["B001/b-1/0", "B001/b-2/0"], "balance_cents": None},
    "detectors": {"large_value": {"wm": 1_764_000_000, "days": {"1763913600": {"transfer_in": {"c": 1}}}}},
    "alerts": {"a1": {"digest": "ab", "status": "open", "revision": 3}},
    "note": "客户资金",
}


def test_round_trip_through_faust_registry():
    data = codecs.dumps(STATE_CODEC, STATE)
    assert isinstance(data, bytes)
    assert codecs.loads(STATE_CODEC, data) == STATE


def test_faust_json_codec_reads_what_it_writes():
    assert codecs.loads("json", codecs.dumps(STATE_CODEC, STATE)) == STATE


def test_reads_what_faust_json_codec_wrote():
    assert codecs.loads(STATE_CODEC, codecs.dumps("json", STATE)) == STATE
