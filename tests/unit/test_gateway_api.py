"""services/gateway/api.py at its HTTP edge: the real aiohttp application and HTTP parser on a free
loopback port, over raw sockets, with storage and the broker faked in memory. Every malformed or
hostile request is answered in the contract's error shape (never 500), and no token reaches a log.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import zlib
from typing import Any

import pytest
from aiohttp import web

from services.auth import TokenStore
from services.gateway.api import Gateway
from services.gateway.body import MAX_BODY_BYTES
from services.storage.base import StorageError

ADMIN = "fw_admin_" + "A1b2C3d4" * 5
BANK = "fw_bank_" + "Z9y8X7w6" * 5
DESK = "fw_desk_" + "Q5r4S3t2" * 5


class FakeStorage:
    """Answers nothing is stored (and SELECT 1); takes every insert; can be told to fail."""

    def __init__(self) -> None:
        self.inserted: list[tuple[str, list]] = []
        self.fail = False

    async def query(self, sql: str, params: Any = None) -> list[tuple]:
        if self.fail:
            raise StorageError("ClickHouse is away")
        return [(1,)] if sql.strip() == "SELECT 1" else []

    async def query_dicts(self, sql: str, params: Any = None) -> list[dict]:
        return []

    async def insert(self, table: str, columns: Any, rows: Any) -> int:
        if self.fail:
            raise StorageError("ClickHouse is away")
        self.inserted.append((table, list(rows)))
        return len(rows)

    async def insert_all(self, inserts: Any) -> list[int]:
        return [await self.insert(*insert) for insert in inserts]

    async def execute(self, sql: str, params: Any = None) -> None:
        return None


class FakePublisher:
    async def send_all(self, messages: Any) -> None:
        list(messages)

    async def ping(self) -> bool:
        return True


class Served:
    """The gateway's application on a loopback port, its loop in a thread of its own."""

    def __init__(self) -> None:
        try:  # webhook secrets are sealed with a process-wide key, installed at start
            from services import secret_box

            secret_box.install(secret_box.SecretBox(secret_box.parse_key(secret_box.new_key())))
        except ImportError:
            pass
        self.storage = FakeStorage()
        tokens = TokenStore(self.storage)  # type: ignore[arg-type]
        tokens.bootstrap_admin(ADMIN)
        self.gateway = Gateway(self.storage, FakePublisher(), tokens, partitions=4)  # type: ignore[arg-type]
        for token, role, extra in ((BANK, "bank", {"bank_code": "B001"}), (DESK, "desk", {"region": "2201"})):
            from services.auth import Principal, hash_token

            tokens._by_hash[hash_token(token)] = (hash_token(token), Principal(f"{role}-1", role, **extra))
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.gateway.application(), access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def send(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """One raw request on a new connection; the status, headers (lower-case) and body."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(raw)
            data = b""
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    length = [
                        line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
                    ]
                    if length and len(body) >= int(length[0].split(b":")[1]):
                        break
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        token: str | bytes | None = ADMIN,
        headers: dict[str, str | bytes] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        lines: dict[str, str | bytes] = {"Host": "fundwatch.test", "Connection": "close"}
        if body or method in ("POST", "PUT"):
            lines["Content-Length"] = str(len(body))
            lines["Content-Type"] = "application/json"
        if token is not None:
            lines["Authorization"] = (b"Bearer " + token) if isinstance(token, bytes) else f"Bearer {token}"
        lines.update(headers or {})
        raw = f"{method} {path} HTTP/1.1\r\n".encode()
        for name, value in lines.items():
            if value is not None:
                raw += (
                    name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
                )
        status, got, answer = self.send(raw + b"\r\n" + body)
        try:
            return status, got, json.loads(answer)
        except ValueError:
            return status, got, answer


@pytest.fixture(scope="module")
def api():
    served = Served()
    yield served
    served.stop()


def error_shaped(answer: Any, status: int, headers: dict[str, str]) -> dict[str, Any]:
    """The contract's error body: {"error": {"code", "message", "field"?}}, as JSON."""
    assert headers["content-type"].startswith("application/json"), (status, headers, answer)
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    assert {"code", "message"} <= set(answer["error"]) <= {"code", "message", "field"}
    return answer["error"]


BODY_ENDPOINTS = [
    ("POST", "/v1/admin/tokens", ADMIN),
    ("POST", "/v1/batches", BANK),
    ("PUT", "/v1/reference/institutions", ADMIN),
    ("PUT", "/v1/reference/accounts", BANK),
    ("POST", "/v1/subscriptions", ADMIN),
]


# --- 1. malformed bodies are 400, never 500 --------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "token"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"{" * 100_000,
        b'{"batch_id": "B", "bank_code": "B001", "records": [' + b"[" * 100_000,
        b'[{"a": ' + b"[" * 100_000,
        b'{"role": "admin\xff\xfe"}',
        b'{"batch_id": "B\xc3\x28", "bank_code": "B001", "records": []}',
        b'{"batch_id": "B", "bank_code": "B001", "records": [{"record_id": "\xed\xa0\x80"}]}',
        b'[{"institution_id": "\xff"}]',
        b'{"url": "http://a.example/\xf8\x88\x80\x80\x80"}',
    ],
    ids=[
        "nested-arrays",
        "nested-objects",
        "nested-records",
        "nested-items",
        "utf8-1",
        "utf8-2",
        "utf8-raw",
        "utf8-3",
        "utf8-4",
    ],
)
def test_malformed_bodies_are_400_in_the_error_shape(api, method, path, token, body):
    status, headers, answer = api.request(method, path, body, token=token)
    assert status == 400, answer
    error_shaped(answer, status, headers)


@pytest.mark.parametrize(("method", "path", "token"), BODY_ENDPOINTS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip"])
@pytest.mark.parametrize("garbage", [b"garbage", b"\x1f\x8b\x08\x00" + b"\x00" * 20, b""])
def test_compressed_bodies_that_do_not_decompress_are_400(api, method, path, token, encoding, garbage):
    status, headers, answer = api.request(
        method, path, garbage, token=token, headers={"Content-Encoding": encoding}
    )
    assert status == 400, answer
    assert error_shaped(answer, status, headers)["code"] == "invalid_encoding"


def test_a_gzip_stream_cut_short_or_followed_by_bytes_is_400(api):
    whole = gzip.compress(b'{"role": "admin"}')
    for body in (whole[:-6], whole + b"tail"):
        status, headers, answer = api.request(
            "POST", "/v1/admin/tokens", body, headers={"Content-Encoding": "gzip"}
        )
        assert status == 400 and error_shaped(answer, status, headers)["code"] == "invalid_encoding"


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "identity;q=1", "bogus"])
def test_encodings_not_taken_are_415_in_the_error_shape(api, encoding):
    status, headers, answer = api.request(
        "POST", "/v1/admin/tokens", b'{"role": "admin"}', headers={"Content-Encoding": encoding}
    )
    assert status == 415, answer
    error = error_shaped(answer, status, headers)
    assert error["code"] == "unsupported_encoding" and error["field"] == "Content-Encoding"
    assert "gzip" in error["message"]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda b: zlib.compress(b)[2:-4])],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_compressed_json_is_taken(api, encoding, compress):
    status, _, answer = api.request(
        "POST", "/v1/admin/tokens", compress(b'{"role": "admin"}'), headers={"Content-Encoding": encoding}
    )
    assert status == 201 and answer["role"] == "admin"


def test_the_size_limit_is_exact_plain_and_decompressed(api):
    # exactly the limit is read (and judged: spaces around a token request), one byte more is 413
    fill = b'{"role": "admin"}'
    at_limit = fill + b" " * (MAX_BODY_BYTES - len(fill))
    status, _, _ = api.request("POST", "/v1/admin/tokens", at_limit)
    assert status == 201
    status, headers, answer = api.request("POST", "/v1/admin/tokens", at_limit + b" ")
    assert status == 413 and error_shaped(answer, status, headers)["code"] == "body_too_large"
    status, _, _ = api.request(
        "POST", "/v1/admin/tokens", gzip.compress(at_limit), headers={"Content-Encoding": "gzip"}
    )
    assert status == 201
    status, headers, answer = api.request(
        "POST", "/v1/admin/tokens", gzip.compress(at_limit + b" "), headers={"Content-Encoding": "gzip"}
    )
    assert status == 413 and error_shaped(answer, status, headers)["code"] == "body_too_large"


def test_a_gzip_bomb_is_413_without_inflating_it_whole(api):
    bomb = gzip.compress(b"[" + b" " * (1 << 30) + b"]", compresslevel=9)  # 1 GiB in about 1 MiB
    status, headers, answer = api.request(
        "POST", "/v1/batches", bomb, token=BANK, headers={"Content-Encoding": "gzip"}
    )
    assert status == 413 and error_shaped(answer, status, headers)["code"] == "body_too_large"


@pytest.mark.parametrize("length", [8191, 9000, 65_536, 500_000])
def test_urls_over_8190_bytes_are_414_in_the_error_shape(api, length):
    path = "/v1/alerts?institution_id=" + "a" * (length - len("/v1/alerts?institution_id="))
    status, headers, answer = api.request("GET", path)
    assert status == 414, answer
    assert error_shaped(answer, status, headers)["code"] == "uri_too_long"


def test_a_url_of_8190_bytes_is_taken(api):
    path = "/v1/alerts?x=" + "a" * (8190 - len("/v1/alerts?x="))
    assert api.request("GET", path)[0] == 200


# --- 2. no token in any log line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer " + ADMIN.encode() + b"\x00",
        b"Bearer " + ADMIN.encode()[:20] + b"\x00" + ADMIN.encode()[20:],
        b"Bearer " + ADMIN.encode() + b"\x7f\x01",
        b"Bearer " + ADMIN.encode() + b"\r",
    ],
)
def test_a_malformed_authorization_header_leaves_no_token_in_the_logs(api, caplog, header):
    caplog.set_level(logging.DEBUG)
    status, _, _ = api.request("GET", "/v1/alerts", token=None, headers={"Authorization": header})
    assert status == 400
    logged = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info]
    )
    assert caplog.records, "the refused request is logged, without its bytes"
    for part in (ADMIN, ADMIN[9:], ADMIN[20:40]):
        assert part not in logged


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer " + ADMIN.encode() + b"\xff",
        b"Bearer \xc3\xa9t\xc3\xa9",
        b"Bearer " + b"\xe2\x80\xae" + ADMIN.encode(),
    ],
)
def test_a_token_that_is_not_ascii_is_401_and_not_logged(api, caplog, header):
    caplog.set_level(logging.DEBUG)
    status, headers, answer = api.request("GET", "/v1/alerts", token=None, headers={"Authorization": header})
    assert status == 401 and error_shaped(answer, status, headers)["code"] == "unauthorized"
    assert ADMIN not in caplog.text and ADMIN[9:] not in caplog.text


# --- 3. 405 says what is allowed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/alerts", {"GET", "HEAD"}),
        ("DELETE", "/v1/batches", {"POST"}),
        ("GET", "/v1/admin/tokens", {"POST"}),
        ("POST", "/v1/subscriptions/abc", {"DELETE"}),
        ("PUT", "/healthz", {"GET", "HEAD"}),
    ],
)
def test_405_carries_allow_in_the_error_shape(api, method, path, allowed):
    status, headers, answer = api.request(method, path, b"{}" if method in ("POST", "PUT") else b"")
    assert status == 405
    assert error_shaped(answer, status, headers)["code"] == "method_not_allowed"
    assert {m.strip() for m in headers["allow"].split(",")} == allowed


# --- 4. times in the query need their offset ---------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "2026-01-01T00:00:00",
        "2026-01-01",
        "2026-01-01T00:00:00%2B0800",
        "1999-12-31T23:59:59Z",
        "2026-02-30T00:00:00Z",
        "yesterday",
    ],
)
@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/accounts/6222020000000001/flows"])
def test_a_since_without_an_offset_or_out_of_range_is_422_naming_it(api, path, since):
    status, headers, answer = api.request("GET", f"{path}?since={since}")
    assert status == 422, answer
    error = error_shaped(answer, status, headers)
    assert error["field"] == "since"
    assert "with an offset" in error["message"] or "2000" in error["message"]


def test_a_since_with_its_offset_is_taken(api):
    assert api.request("GET", "/v1/alerts?since=2026-01-01T00:00:00%2B08:00")[0] == 200
    assert (
        api.request("GET", "/v1/alerts?since=2026-01-01T00:00:00Z&limit=5&severity=high,critical")[0] == 200
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"), ("severity=urgent", "severity"),
        ("severity=high,,low", "severity"), ("typology=fund_pool,nope", "typology"), ("status=closed", "status"),
        ("region=22a", "region"), ("region=1234567", "region"), ("institution_id=%00", "institution_id"),
    ],
)  # fmt: skip
def test_alert_filters_that_break_their_rule_are_422_naming_them(api, query, field):
    status, headers, answer = api.request("GET", f"/v1/alerts?{query}")
    assert status == 422 and error_shaped(answer, status, headers)["field"] == field


# --- 5. bodies must be JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "token"), BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
     "application/json; charset=latin-1", "text/json"],
)  # fmt: skip
def test_a_body_declared_other_than_json_is_415_naming_the_rule(api, method, path, token, content_type):
    status, headers, answer = api.request(
        method, path, b"{}", token=token, headers={"Content-Type": content_type}
    )
    assert status == 415, answer
    error = error_shaped(answer, status, headers)
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; charset=UTF-8",
        "application/vnd.api+json",
        None,
    ],
)
def test_json_declared_or_undeclared_is_taken(api, content_type):
    status, _, answer = api.request(
        "POST", "/v1/admin/tokens", b'{"role": "admin"}', headers={"Content-Type": content_type}
    )
    assert status == 201, answer


# --- 6. a key given twice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "token", "body", "field"),
    [
        ("POST", "/v1/admin/tokens", ADMIN, b'{"role": "bank", "bank_code": "B001", "bank_code": "B002"}', "bank_code"),
        ("POST", "/v1/subscriptions", ADMIN, b'{"url": "http://a.example/h", "filter": {"region": "22", "region": "11"}}', "filter.region"),
        ("POST", "/v1/batches", BANK, b'{"batch_id": "A", "bank_code": "B001", "batch_id": "B", "records": []}', "batch_id"),
    ],
)  # fmt: skip
def test_a_request_naming_a_key_twice_is_422_naming_it(api, method, path, token, body, field):
    status, headers, answer = api.request(method, path, body, token=token)
    assert status == 422, answer
    error = error_shaped(answer, status, headers)
    assert error["field"] == field and "only once" in error["message"]


# --- 7. identifiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bank_code", ["   ", "B\u0000", "B\u202e1", "B\u200f", "\t"])
def test_a_token_for_an_identifier_of_spaces_or_controls_is_422_naming_it(api, bank_code):
    body = json.dumps({"role": "bank", "bank_code": bank_code}).encode()
    status, headers, answer = api.request("POST", "/v1/admin/tokens", body)
    assert status == 422 and error_shaped(answer, status, headers)["field"] == "bank_code"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/alerts/a%00b",
        "/v1/alerts/%E2%80%AEx",
        "/v1/accounts/%20%20/flows",
        "/v1/subscriptions/%07/deliveries",
    ],
)
def test_path_parameters_breaking_the_identifier_rule_are_422_naming_them(api, path):
    status, headers, answer = api.request("GET", path)
    assert status == 422, answer
    assert error_shaped(answer, status, headers)["field"] in {"alert_id", "account_id", "subscription_id"}


# --- 9. the token request by role ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "bank"}, "bank_code"), ({"role": "desk"}, "region"), ({"role": "admin", "bank_code": "B1"}, "bank_code"),
        ({"role": "desk", "region": "22", "bank_code": "B1"}, "bank_code"), ({"role": "bank", "bank_code": "B1", "region": "22"}, "region"),
        ({"role": "boss"}, "role"), ({}, "role"), ({"role": 1}, "role"),
    ],
)  # fmt: skip
def test_token_requests_outside_their_role_are_422_naming_the_field(api, body, field):
    status, headers, answer = api.request("POST", "/v1/admin/tokens", json.dumps(body).encode())
    assert status == 422 and error_shaped(answer, status, headers)["field"] == field


@pytest.mark.parametrize(
    "body", [{"role": "admin"}, {"role": "bank", "bank_code": "B001"}, {"role": "desk", "region": "2201"}]
)
def test_token_requests_of_each_role_are_201(api, body):
    status, _, answer = api.request("POST", "/v1/admin/tokens", json.dumps(body).encode())
    assert status == 201 and answer["role"] == body["role"]
    assert {k: answer[k] for k in body} == body


# --- 10. 503 says when to come back ------------------------------------------------------------------


def test_storage_unavailable_is_503_with_retry_after(api):
    api.storage.fail = True
    try:
        status, headers, answer = api.request("GET", "/v1/alerts")
        readiness = api.request("GET", "/readyz", token=None)
    finally:
        api.storage.fail = False
    assert status == 503 and error_shaped(answer, status, headers)["code"] == "unavailable"
    assert int(headers["retry-after"]) > 0
    assert readiness[0] == 503 and int(readiness[1]["retry-after"]) > 0
