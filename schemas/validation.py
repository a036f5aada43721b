"""Turning decoder errors into answers that name the field and the rule.

msgspec reports "Expected `str` matching regex '…' - at `$.amount`"; a custody bank's operator
needs "`amount`: must be a decimal string with at most 2 decimals and greater than 0".
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from schemas.fields import RULE_BY_PATTERN

T = TypeVar("T")

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_REGEX = re.compile(r"Expected `str` matching regex '(?P<regex>.*)'$", re.S)
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_LENGTH = re.compile(r"Expected `(?P<what>str|array)` of length (?P<cmp>[<>]=) (?P<n>\d+)")
_BOUND = re.compile(r"Expected `(?P<what>int|float)` (?P<cmp>[<>]=) (?P<n>[-\d.]+)")
_INVALID = re.compile(r"Invalid enum value (?P<value>.*)|Invalid value (?P<v2>.*)")
_FIELD_RULE = re.compile(r"^`(?P<field>[^`]+)`: (?P<rule>.*)$", re.S)

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
        return ValidationFailure(_join(prefix, _join(field, m.group("field"))), "is not a field of this kind")
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
        return ValidationFailure(
            _join(prefix, field), f"must be {want}, not {_TYPE_WORDS.get(m.group('got'), m.group('got'))}"
        )
    if m := _INVALID.match(what):
        value = m.group("value") or m.group("v2")
        if field and field.endswith("kind"):
            return ValidationFailure(_join(prefix, field), f'must be "transaction" or "balance", not {value}')
        return ValidationFailure(_join(prefix, field), f"must be one of the allowed values, not {value}")
    return ValidationFailure(_join(prefix, field), what)


def decode(data: bytes, type_: type[T], prefix: str | None = None) -> T:
    """Decode and validate JSON as ``type_``; raise ValidationFailure naming the field."""
    try:
        return msgspec.json.decode(data, type=type_)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise explain(error, prefix) from None


def convert(obj: Any, type_: type[T], prefix: str | None = None) -> T:
    """Validate an already-parsed object as ``type_``; raise ValidationFailure naming the field."""
    try:
        return msgspec.convert(obj, type=type_)
    except (msgspec.ValidationError, ValueError) as error:
        raise explain(error, prefix) from None
