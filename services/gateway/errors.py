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
