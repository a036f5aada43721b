"""Turning decoder errors into answers that name the field and the rule.

msgspec reports "Expected `str` matching regex '…' - at `$.amount`"; a custody bank's operator
needs "`amount`: must be a decimal string with at most 2 decimals and greater than 0".

``decode`` also refuses what msgspec takes or stumbles on without a validation error: bytes that
are not UTF-8 (RFC 8259 JSON is UTF-8; msgspec raised UnicodeDecodeError, or let it through inside
a ``msgspec.Raw``), nesting deep enough to exhaust the interpreter's stack (RecursionError), and
an object that names a key twice (msgspec keeps the last value, silently).
"""

from __future__ import annotations

import gc
import re
from typing import Any, TypeVar

import msgspec

from schemas.fields import RULE_BY_PATTERN

T = TypeVar("T")

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
# greedy: a key sent may hold backticks itself, or be empty
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>.*)`$", re.S)
_REGEX = re.compile(r"Expected `str` matching regex '(?P<regex>.*)'$", re.S)
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?$")
_LENGTH = re.compile(r"Expected `(?P<what>str|array)` of length (?P<cmp>[<>]=) (?P<n>\d+)")
_BOUND = re.compile(r"Expected `(?P<what>int|float)` (?P<cmp>[<>]=) (?P<n>[-\d.]+)")
_INVALID = re.compile(r"Invalid enum value (?P<value>.*)|Invalid value (?P<v2>.*)")
_FIELD_RULE = re.compile(r"^`(?P<field>[^`]+)`: (?P<rule>.*)$", re.S)
# A JSON string (its key colon, when it is a key) or a bracket or comma, in document order: a
# string is matched whole, so a quote or bracket inside one never starts a token.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[{}\[\],]')
_STRING_KEY = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"\s*:?')
_LETTER_ESCAPE = re.compile(rb"\\u00[67]")
DUPLICATE_RULE = "must be given only once"

_TYPE_WORDS = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


class ValidationFailure(ValueError):
    """A rejected input: ``field`` is a dotted path (``records[3].amount``), ``message`` the rule."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"`{field}`: {message}" if field else message)
        self.field = field
        self.message = message


def _path_to_field(path: str) -> str:
    # "$.records[3].amount" arrives as ".records[3].amount"
    return path[1:] if path.startswith(".") else path


def _join(prefix: str | None, field: str | None) -> str | None:
    if not prefix:
        return field
    if not field:
        return prefix
    return f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"


def explain(
    error: msgspec.ValidationError | msgspec.DecodeError | ValueError, prefix: str | None = None
) -> ValidationFailure:
    """The field and the rule behind a decode error, in words."""
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return ValidationFailure(prefix, f"is not valid JSON ({error})")
    text = str(error)
    match = _AT.match(text)
    what = match.group("what") if match else text
    path = _path_to_field(match.group("path") or "") if match else ""
    field: str | None = path or None

    if m := _FIELD_RULE.match(what):
        # raised by our own __post_init__ checks, already phrased
        return ValidationFailure(_join(prefix, _join(field, m.group("field"))), m.group("rule"))
    if m := _MISSING.search(what):
        return ValidationFailure(_join(prefix, _join(field, m.group("field"))), "is required")
    if m := _UNKNOWN.search(what):
        name = m.group("field") or '""'  # an empty key is named as JSON writes it
        return ValidationFailure(_join(prefix, _join(field, name)), "is not a field of this kind")
    if m := _REGEX.match(what):
        regex = m.group("regex").replace("\\\\", "\\")  # msgspec doubles backslashes when quoting
        rule = RULE_BY_PATTERN.get(regex, f"match the pattern {regex}")
        return ValidationFailure(_join(prefix, field), f"must be {rule}")
    if m := _LENGTH.match(what):
        noun = "characters" if m.group("what") == "str" else "items"
        if m.group("n") == "1":
            noun = noun[:-1]
        bound = "at least" if m.group("cmp") == ">=" else "at most"
        return ValidationFailure(_join(prefix, field), f"must have {bound} {m.group('n')} {noun}")
    if m := _BOUND.match(what):
        bound = "at least" if m.group("cmp") == ">=" else "at most"
        return ValidationFailure(_join(prefix, field), f"must be {bound} {m.group('n')}")
    if m := _EXPECTED.match(what):
        want = " or ".join(_TYPE_WORDS.get(w.strip(), w.strip()) for w in m.group("want").split("|"))
        got = m.group("got")
        return ValidationFailure(
            _join(prefix, field), f"must be {want}" + (f", not {_TYPE_WORDS.get(got, got)}" if got else "")
        )
    if m := _INVALID.match(what):
        value = m.group("value") or m.group("v2")
        if field and field.endswith("kind"):
            return ValidationFailure(_join(prefix, field), f'must be "transaction" or "balance", not {value}')
        return ValidationFailure(_join(prefix, field), f"must be one of the allowed values, not {value}")
    return ValidationFailure(_join(prefix, field), what)


def _malformed(prefix: str | None, why: str) -> ValidationFailure:
    # "is not valid JSON" starts every message that makes a caller answer 400 rather than 422
    return ValidationFailure(prefix, f"is not valid JSON ({why})")


def _not_json(data: bytes) -> str | None:
    """Why ``data`` is not JSON, or None when it is (a failed decode's second look only).

    The collector is held off meanwhile: this decode builds lists as deep as the sender nested
    them, and a collection started near the recursion limit could not call its callbacks (the
    pause clock), which Python would then report on stderr as an error nobody can act on."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        return str(error)
    except RecursionError:
        return "nested too deeply"
    finally:
        if collecting:
            gc.enable()
    return None


def decode(data: bytes, type_: type[T], prefix: str | None = None) -> T:
    """Decode and validate JSON as ``type_``; raise ValidationFailure naming the field.

    A type whose items stay ``msgspec.Raw`` for a decoder of their own (``Batch``) names that
    field in ``raw_items``: only the keys around those items are checked for repeats here."""
    if not data.isascii():  # one C pass; only non-ASCII bytes need the UTF-8 decoder
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _malformed(prefix, f"not UTF-8 at byte {error.start}") from None
    try:
        value = msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError as error:
        # msgspec stops at the first value of the wrong type, before it has read the rest: a
        # body that is no JSON at all (unclosed, or 100,000 "[") is still malformed, not invalid
        why = _not_json(data)
        raise (explain(error, prefix) if why is None else _malformed(prefix, why)) from None
    except msgspec.DecodeError as error:
        raise explain(error, prefix) from None
    except RecursionError:
        raise _malformed(prefix, "nested too deeply") from None
    items: str | None = getattr(type_, "raw_items", None)
    repeated = envelope_duplicate(data, items) if items else duplicate_path(data)
    if repeated is not None:
        raise ValidationFailure(_join(prefix, repeated), DUPLICATE_RULE)
    return value


def convert(obj: Any, type_: type[T], prefix: str | None = None, *, strict: bool = True) -> T:
    """Validate an already-parsed object as ``type_``; raise ValidationFailure naming the field.
    ``strict=False`` reads numbers from strings, as query parameters come."""
    try:
        return msgspec.convert(obj, type=type_, strict=strict)
    except (msgspec.ValidationError, ValueError, RecursionError) as error:
        if isinstance(error, RecursionError):
            raise _malformed(prefix, "nested too deeply") from None
        raise explain(error, prefix) from None


# --- keys given twice ----------------------------------------------------------------------------


def _key(token: bytes) -> bytes:
    """A key's JSON string as compared: written the same way however it was escaped."""
    return msgspec.json.encode(msgspec.json.decode(token)) if b"\\" in token else token


def duplicate_key(raw: bytes) -> str | None:
    """The first key a flat JSON object names twice, or None; ``raw`` is valid JSON."""
    seen: set[bytes] = set()
    for token in _STRING_KEY.findall(raw):
        if token[-1:] != b":":
            continue  # a value
        key = _key(token.rstrip(b": \t\r\n"))
        if key in seen:
            return msgspec.json.decode(key)
        seen.add(key)
    return None


class _Frame:
    """An object or array being scanned: the keys it named so far, or the index it is at."""

    __slots__ = ("keys", "label")

    def __init__(self, keys: set[bytes] | None, label: bytes | int | None) -> None:
        self.keys = keys
        self.label = label


def _path(frames: list[_Frame], key: bytes) -> str:
    text = ""
    for part in [frame.label for frame in frames[:-1]] + [key]:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part is not None:
            name = msgspec.json.decode(part)
            text += f".{name}" if text else name
    return text


def duplicate_path(data: bytes, stop_key: bytes | None = None) -> str | None:
    """The path (``filter.region``, ``[3].name``) of the first key an object of valid JSON
    ``data`` names twice, or None. With ``stop_key``, the scan ends where the top-level object
    names that key (for ``envelope_duplicate``), answering "" if nothing was repeated before."""
    frames: list[_Frame] = []
    for match in _TOKEN.finditer(data):
        token = match.group()
        first = token[0]
        if first == 0x22:  # a string
            if match.group(1) is None:
                continue  # a value
            key = _key(token[: match.start(1) - match.start()])
            frame = frames[-1]
            assert frame.keys is not None  # a key is only ever inside an object
            if key in frame.keys:
                return _path(frames, key)
            frame.keys.add(key)
            frame.label = key
            if key == stop_key and len(frames) == 1:
                return ""
        elif first == 0x7B:  # {
            frames.append(_Frame(set(), None))
        elif first == 0x5B:  # [
            frames.append(_Frame(None, 0))
        elif first in b"}]":
            frames.pop()
        elif frames and frames[-1].keys is None:  # a comma between array items
            frames[-1].label += 1  # type: ignore[operator]
    return None


def envelope_duplicate(data: bytes, items: str) -> str | None:
    """``duplicate_path`` for an object whose field ``items`` holds an array of items left raw,
    which their own decoder checks: only the object's own keys are scanned, not the (up to 8 MiB
    of) items, when that is exact. It is when the object ends with that array, its name occurs
    once in the bytes, and no ``\\u006x``/``\\u007x`` escape could spell it another way (JSON
    writers never escape lower-case letters): then the object's keys are the ones before the array.
    Otherwise the whole body is scanned."""
    name = msgspec.json.encode(items)
    end = data[-64:].rstrip()  # the last bytes suffice, and copying the body would not
    if (
        end.endswith(b"}")
        and end[:-1].rstrip().endswith(b"]")
        and data.count(name) == 1
        and _LETTER_ESCAPE.search(data) is None
    ):
        repeated = duplicate_path(data, stop_key=name)
        return repeated or None
    return duplicate_path(data)
