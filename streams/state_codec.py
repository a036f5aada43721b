"""The codec the records agent writes account states to the table's changelog with: the same JSON
as Faust's default json codec (which reads it back on recovery), written by msgspec. Faust's own
codec goes through the standard library's encoder with a Python-level default hook, and a
custody account's state (open days' record ids, evidence) is tens to hundreds of kilobytes,
written on every take that touches the account."""

from __future__ import annotations

from typing import Any

import msgspec
from faust.serializers import codecs

STATE_CODEC = "fundwatch-state-json"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return _encode(obj)

    def _loads(self, s: bytes) -> Any:
        return _decode(s)


codecs.register(STATE_CODEC, StateCodec())
