"""Errors as the contract shapes them: {"error": {"code", "message", "field"?}} with a 4xx/5xx."""

from __future__ import annotations

import msgspec
from aiohttp import web

from schemas.api import ErrorBody, ErrorDetail

_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        return json_response(ErrorBody(ErrorDetail(self.code, self.message, self.field)), status=self.status)


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
