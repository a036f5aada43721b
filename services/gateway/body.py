"""Request bodies as the API takes them: declared JSON (or not declared), in UTF-8, identity or
gzip/deflate, at most MAX_BODY_BYTES however sent (declared length, streamed, or decompressed).

aiohttp's parser is told not to decompress (api.py): its errors for an encoding it does not know
(br without the Brotli package) or data that does not inflate came before any middleware, in
plain text, or as a 500 from the handler. Here each is an answer in the contract's shape.
"""

from __future__ import annotations

import zlib

from aiohttp import hdrs, web

from schemas.records import MAX_BATCH_BYTES
from services.gateway.errors import ApiError

# Reference bodies may be as large as batches.
MAX_BODY_BYTES = MAX_BATCH_BYTES
# Content-Encoding values a body may come in, and the zlib window of each ("x-gzip": RFC 9110).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _check_media_type(request: web.Request) -> None:
    """A body must be declared JSON, or not declared at all.

    A declared other type (text/plain, a form) says the client meant something else, and is
    refused rather than read as JSON. No Content-Type at all is taken: the body is then read as
    the contract's UTF-8 JSON, strictly, so nothing is misread, and minimal clients (curl
    --data-binary with -H only for the token, scripts over raw sockets) send none."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return
    mime = request.content_type
    if mime != "application/json" and not (mime.startswith("application/") and mime.endswith("+json")):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"`Content-Type`: must be application/json, not {mime!r}",
            "Content-Type",
        )
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise ApiError(
            415, "unsupported_media_type", f"`Content-Type`: must be application/json in UTF-8, not charset {request.charset!r}",
            "Content-Type",
        )  # fmt: skip


def _encoding(request: web.Request) -> str:
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower() or "identity"
    if encoding != "identity" and encoding not in _WBITS:
        raise ApiError(
            415, "unsupported_encoding",
            f"`Content-Encoding`: must be gzip, deflate or identity, not {encoding!r}", "Content-Encoding",
        )  # fmt: skip
    return encoding


def _decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """A compressed body, at most ``limit`` bytes once decompressed: a small body that inflates
    past the limit (a "zip bomb") is refused as soon as it does, not after."""
    wbits = _WBITS[encoding]
    if encoding == "deflate" and data and data[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header, as some clients send it
    inflate = zlib.decompressobj(wbits)
    try:
        body = inflate.decompress(data, limit + 1)
    except zlib.error as error:
        raise ApiError(400, "invalid_encoding", f"the body is not valid {encoding} data ({error})") from None
    if len(body) > limit:
        raise ApiError(413, "body_too_large", f"the body is over {limit} bytes once decompressed")
    if not inflate.eof or inflate.unused_data:
        raise ApiError(400, "invalid_encoding", f"the body is not one whole {encoding} stream")
    return body


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, JSON by its Content-Type (or none), decompressed, or 413 as soon as it
    passes ``limit`` (declared, streamed, or decompressed)."""
    _check_media_type(request)
    encoding = _encoding(request)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413, "body_too_large", f"the body is {request.content_length} bytes; at most {limit} are taken"
        )
    chunks = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"the body is over {limit} bytes")
            chunks.append(chunk)
    except web.RequestPayloadError:
        raise ApiError(
            400, "invalid_body", "the body's framing is broken (chunked encoding or length)"
        ) from None
    body = b"".join(chunks)
    return body if encoding == "identity" else _decompress(body, encoding, limit)
