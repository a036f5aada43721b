"""Errors as the contract shapes them: {"error": {"code", "message", "field"?}} with a 4xx/5xx."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec
from aiohttp import web

from schemas.api import ErrorBody, ErrorDetail
from schemas.validation import ValidationFailure, convert

_encoder = msgspec.json.Encoder()

T = TypeVar("T")

# What a 503 of the API asks a client to wait before sending the same request again: storage or
# the broker is back within seconds (a restart) or not soon at all, and a bank's retry loop should
# neither hammer it nor sleep for minutes.
RETRY_AFTER_S = 5


class ApiError(Exception):
    """An answer in the contract's error shape.

    ``retry_after`` (seconds) goes out as a ``Retry-After`` header: a 503 says when the same
    request may be sent again. ``headers`` are any others the answer must carry (``Allow``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        response = json_response(
            ErrorBody(ErrorDetail(self.code, self.message, self.field)), status=self.status
        )
        response.headers.update(self.headers)
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


def unavailable(message: str) -> ApiError:
    """503: storage or the broker could not take the request now; the same one may be sent again."""
    return ApiError(503, "unavailable", message, retry_after=RETRY_AFTER_S)


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(body), status=status, content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def query_limit(query: object, default: int = 100, most: int = 1000) -> int:
    """The ``limit`` query parameter of a list endpoint: a whole number from 1 to ``most``."""
    raw = query.get("limit", str(default))  # type: ignore[attr-defined]
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_query", "`limit`: must be a whole number", "limit") from None
    if not 1 <= limit <= most:
        raise ApiError(422, "invalid_query", f"`limit`: must be between 1 and {most}", "limit")
    return limit


def parse_query(query: Mapping[str, str], type_: type[T]) -> T:
    """Query parameters as ``type_``, a msgspec Struct of schemas/api.py that also describes them
    in the OpenAPI document; 422 naming the parameter that breaks its rule.

    A parameter given empty (``?since=``) is judged as given, so it breaks its rule as the document
    says it does (an empty string is no time); one given twice counts with its first value."""
    given = {name: query.get(name) for name in dict.fromkeys(query.keys())}
    try:
        return convert(given, type_, strict=False)
    except ValidationFailure as failure:
        raise ApiError(422, "invalid_query", str(failure), failure.field) from None
