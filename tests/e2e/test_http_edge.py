"""`fundwatch run` at its HTTP edge, from outside: malformed and hostile requests over raw sockets
are answered in the contract's error shape (never 500), records break the identifier and time
rules by index, and no bearer token reaches the process's log whatever a client sends.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import uuid
from typing import Any

import pytest

from tests.support import FundwatchProcess, call, free_port, wait_ready

pytestmark = pytest.mark.e2e

BANK_CODE = "B001"


class Stack:
    def __init__(self, root, port: int) -> None:
        self.root = root
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        env["FUNDWATCH_LOG_LEVEL"] = "DEBUG"  # the most the process ever logs
        self.process = FundwatchProcess(
            ["run", "--no-simulator", "--data-dir", str(root), "--http-port", str(port)],
            env,
            root / "run.log",
        )

    @property
    def admin(self) -> str:
        return (self.root / "admin-token").read_text().strip()

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, Any] | None = None
    ) -> tuple[int, dict, Any]:
        """One request written byte for byte; the status, headers (lower-case) and JSON or bytes."""
        head = f"{method} {path} HTTP/1.1\r\nHost: fundwatch\r\nConnection: close\r\n".encode()
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            head += (
                name.encode() + b": " + (value if isinstance(value, bytes) else str(value).encode()) + b"\r\n"
            )
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(head + b"\r\n" + body)
            data = b""
            while chunk := sock.recv(1 << 16):
                data += chunk
        top, _, payload = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        got = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        try:
            return int(lines[0].split()[1]), got, json.loads(payload)
        except ValueError:
            return int(lines[0].split()[1]), got, payload


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("edge"), free_port())
    try:
        running.process.start()
        wait_ready(running.base, timeout=120, process=running.process.process)
        yield running
        running.process.stop()
    finally:
        running.process.kill()


@pytest.fixture(scope="module")
def bank(stack) -> str:
    status, answer = call(
        "POST", f"{stack.base}/v1/admin/tokens", stack.admin, {"role": "bank", "bank_code": BANK_CODE}
    )
    assert status == 201
    return answer["token"]


def error_of(status: int, headers: dict, answer: Any) -> dict:
    assert headers["content-type"].startswith("application/json"), (status, answer)
    assert set(answer) == {"error"} and {"code", "message"} <= set(answer["error"]), answer
    return answer["error"]


def txn(rid: str, **changes: Any) -> dict:
    return {
        "kind": "transaction", "record_id": rid, "account_id": "EDGE-ACC-1", "direction": "credit",
        "amount": "1.00", "booked_at": "2026-11-25T09:30:00+08:00", "counterparty_account": "EDGE-CP-1",
        "counterparty_bank": "B002", "channel": "HVPS", **changes,
    }  # fmt: skip


def push(stack, token: str, records: list, raw: list[bytes] | None = None) -> dict:
    parts = [json.dumps(r).encode() for r in records] + (raw or [])
    body = b'{"batch_id": "%s", "bank_code": "B001", "records": [%s]}' % (
        uuid.uuid4().hex.encode(),
        b", ".join(parts),
    )
    status, headers, answer = stack.send(
        "POST", "/v1/batches", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    assert status == 202, answer
    return answer


# --- malformed requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [("POST", "/v1/admin/tokens", "admin"), ("POST", "/v1/batches", "bank"), ("PUT", "/v1/reference/institutions", "admin"),
     ("POST", "/v1/subscriptions", "admin")],
)  # fmt: skip
@pytest.mark.parametrize(
    ("body", "encoding"),
    [(b"[" * 100_000, None), (b'{"batch_id": "\xff\xfe", "x": "\xc3\x28"}', None), (b"not gzip at all", "gzip"),
     (b"not deflate", "deflate")],
    ids=["nested", "not-utf8", "bad-gzip", "bad-deflate"],
)  # fmt: skip
def test_malformed_bodies_are_400_in_the_error_shape(stack, bank, method, path, who, body, encoding):
    token = stack.admin if who == "admin" else bank
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    status, got, answer = stack.send(method, path, body, headers)
    assert status == 400, answer
    error_of(status, got, answer)


def test_an_encoding_not_taken_is_415_and_gzip_is_taken(stack):
    headers = {"Authorization": f"Bearer {stack.admin}", "Content-Type": "application/json"}
    status, got, answer = stack.send(
        "POST", "/v1/admin/tokens", b"\x0b\x02\x80{}\x03", {**headers, "Content-Encoding": "br"}
    )
    assert status == 415 and error_of(status, got, answer)["field"] == "Content-Encoding"
    status, _, answer = stack.send(
        "POST",
        "/v1/admin/tokens",
        gzip.compress(b'{"role": "admin"}'),
        {**headers, "Content-Encoding": "gzip"},
    )
    assert status == 201 and answer["role"] == "admin"


def test_a_body_declared_as_text_is_415(stack):
    headers = {"Authorization": f"Bearer {stack.admin}", "Content-Type": "text/plain"}
    status, got, answer = stack.send("POST", "/v1/admin/tokens", b'{"role": "admin"}', headers)
    assert status == 415 and error_of(status, got, answer)["code"] == "unsupported_media_type"


def test_a_url_over_8190_bytes_is_414_in_the_error_shape(stack):
    status, got, answer = stack.send(
        "GET", "/v1/alerts?institution_id=" + "x" * 9000, headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert status == 414 and error_of(status, got, answer)["code"] == "uri_too_long"


def test_405_names_the_methods_allowed(stack):
    status, got, answer = stack.send("PUT", "/v1/alerts", headers={"Authorization": f"Bearer {stack.admin}"})
    assert status == 405 and error_of(status, got, answer)["code"] == "method_not_allowed"
    assert {m.strip() for m in got["allow"].split(",")} == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/accounts/EDGE-ACC-1/flows"])
def test_since_without_an_offset_is_422_naming_it(stack, path):
    status, answer = call("GET", f"{stack.base}{path}?since=2026-01-01T00:00:00", stack.admin)
    assert status == 422 and answer["error"]["field"] == "since"


# --- records -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("record_id", "   "), ("record_id", "R\u0000"), ("account_id", "A\u202e1"), ("counterparty_account", "\u2066x"),
     ("counterparty_bank", "B\u200f"), ("booked_at", "9999-12-31T23:59:59Z"), ("booked_at", "0001-01-01T00:00:00Z"),
     ("booked_at", "1900-01-01T00:00:00Z"), ("booked_at", "1969-12-31T23:59:59Z"), ("booked_at", "2000-01-01T05:00:00+08:00")],
)  # fmt: skip
def test_records_breaking_identifier_or_time_rules_are_rejected_by_index_naming_the_field(
    stack, bank, field, value
):
    answer = push(
        stack,
        bank,
        [txn(f"edge-ok-{uuid.uuid4().hex[:8]}"), txn(f"edge-bad-{uuid.uuid4().hex[:8]}", **{field: value})],
    )
    assert answer["accepted"] == 1
    (rejected,) = answer["rejected"]
    assert rejected["index"] == 1 and f"`{field}`" in rejected["error"]


def test_a_record_naming_a_key_twice_is_rejected_by_index(stack, bank):
    twice = (
        json.dumps(txn(f"edge-dup-{uuid.uuid4().hex[:8]}", amount="1.00"))[:-1] + ', "amount": "1000000.00"}'
    )
    answer = push(stack, bank, [txn(f"edge-ok-{uuid.uuid4().hex[:8]}")], raw=[twice.encode()])
    assert answer["accepted"] == 1
    (rejected,) = answer["rejected"]
    assert rejected["index"] == 1 and "`amount`" in rejected["error"]


# --- no token in the log -------------------------------------------------------------------------------


def test_no_token_reaches_the_log_whatever_the_authorization_header_holds(stack, bank):
    # from here on: a first start prints the admin token it generated, once, on purpose
    start = len(stack.process.log())
    for token in (stack.admin, bank):
        for header in (
            b"Bearer " + token.encode() + b"\x00",
            b"Bearer " + token.encode()[:12] + b"\x00" + token.encode()[12:],
            b"Bearer " + token.encode() + b"\xff",
            b"Bearer " + token.encode() + b"\x01",
        ):
            status, _, _ = stack.send("GET", "/v1/alerts", headers={"Authorization": header})
            assert status in (400, 401)
    log = stack.process.log()[start:]
    assert "Error handling request" in log  # the refused requests were logged, without their bytes
    for token in (stack.admin, bank):
        secret = token.split("_", 2)[2]  # fw_<role>_<secret>
        for part in (token, secret, secret[:16], secret[-16:]):
            assert part not in log
