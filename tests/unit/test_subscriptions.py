"""services/gateway/subscriptions.py: who may subscribe to what, what callers see of a
subscription, and the create / list / delete / rotate / delivery-log paths against an in-memory
stand-in for the two ReplacingMergeTree tables."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from typing import Any

import msgspec
import pytest

from services.auth import Principal
from services.gateway.errors import ApiError
from services.gateway.subscriptions import Subscriptions, desk_region, public_view
from services.secret_box import SecretBox, SecretUnreadable
from services.webhooks.policy import ROTATION_OVERLAP_S
from services.webhooks.store import DEAD, DELIVERED, PENDING, Attempt, Delivery, DeliveryStore, iso

ADMIN = Principal(token_id="admin-1", role="admin")
DESK = Principal(token_id="desk-2201", role="desk", region="2201")
OTHER_DESK = Principal(token_id="desk-3301", role="desk", region="3301")
BANK = Principal(token_id="bank-1", role="bank", bank_code="B001")

HIDDEN = ("secret", "previous_secret", "previous_expires")
BOX = SecretBox(bytes(range(32)))


# --- an in-memory ClickHouse for the two tables ----------------------------------------------

_KEYS = {"subscriptions": ("subscription_id",), "deliveries": ("subscription_id", "webhook_id")}
_EQUALS = re.compile(r"(\w+) = %\((\w+)\)s")


class FakeStorage:
    """What SubscriptionStore and DeliveryStore ask of AsyncStorage, and no more: rows kept as
    inserted; a FINAL read keeps the highest version per sorting key (the last inserted on a
    tie), then filters. SQL it does not recognise fails the test rather than answering wrongly."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name in _KEYS}
        self.calls: list[str] = []

    async def insert(self, table: str, columns, rows) -> int:
        name = table.rsplit(".", 1)[-1]
        self.calls.append(f"insert {name}")
        for row in rows:
            assert len(row) == len(columns)
            self.tables[name].append(dict(zip(columns, row, strict=True)))
        return len(rows)

    def _final(self, name: str) -> list[dict[str, Any]]:
        latest: dict[tuple, dict[str, Any]] = {}
        for row in self.tables[name]:
            key = tuple(row[c] for c in _KEYS[name])
            if key not in latest or row["version"] >= latest[key]["version"]:
                latest[key] = row
        return list(latest.values())

    async def query(self, sql: str, params=None) -> list[tuple]:
        params = dict(params or {})
        self.calls.append("query")
        text = " ".join(sql.split())
        found = re.match(r"SELECT (.+?) FROM \w+\.(\w+) FINAL WHERE (.+?)(?: ORDER BY (.+?))?$", text)
        assert found, f"the fake does not know this query: {text}"
        columns = [c.strip() for c in found.group(1).split(",")]
        name, where, order = found.group(2), found.group(3), found.group(4)
        rows = self._final(name)
        limit = None
        if order is not None:
            assert order == "version DESC, webhook_id LIMIT %(limit)s", order
            limit = params["limit"]
        conditions = [c.strip() for c in where.split(" AND ")]
        for condition in conditions:
            if condition == "deleted = 0":
                rows = [r for r in rows if r["deleted"] == 0]
                continue
            equals = _EQUALS.fullmatch(condition)
            assert equals, f"the fake does not know this condition: {condition}"
            column, param = equals.groups()
            rows = [r for r in rows if r[column] == params[param]]
        if order is not None:
            rows.sort(key=lambda r: r["webhook_id"])
            rows.sort(key=lambda r: r["version"], reverse=True)
            rows = rows[:limit]
        return [tuple(r[c] for c in columns) for r in rows]

    async def query_dicts(self, sql: str, params=None) -> list[dict[str, Any]]:
        columns = [c.strip() for c in " ".join(sql.split()).split(" FROM ")[0][len("SELECT ") :].split(",")]
        return [dict(zip(columns, row, strict=True)) for row in await self.query(sql, params)]


def service(allow_private: bool = True) -> tuple[Subscriptions, FakeStorage]:
    storage = FakeStorage()
    return Subscriptions(storage, allow_private=allow_private, box=BOX), storage  # type: ignore[arg-type]


def body(url: str = "http://127.0.0.1:9000/hook", **filter_doc: Any) -> bytes:
    return msgspec.json.encode({"url": url, "filter": filter_doc})


def refused(coro) -> ApiError:
    with pytest.raises(ApiError) as caught:
        asyncio.run(coro)
    return caught.value


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stored_docs(storage: FakeStorage) -> list[dict[str, Any]]:
    """The documents as written, their secrets opened with the test key."""
    docs = []
    for row in storage.tables["subscriptions"]:
        doc = msgspec.json.decode(row["doc"])
        for name in ("secret", "previous_secret"):
            if name in doc:
                assert doc[name].startswith("v1:"), "a secret stored in clear"
                doc[name] = BOX.open(doc[name], doc["id"])
        docs.append(doc)
    return docs


# --- desk_region ---------------------------------------------------------------------------


def test_an_admin_keeps_the_region_asked_or_none():
    assert desk_region(ADMIN, "11") == "11"
    assert desk_region(ADMIN, "220102") == "220102"
    assert desk_region(ADMIN, None) is None


def test_a_desk_asking_no_region_gets_its_own():
    assert desk_region(DESK, None) == "2201"


@pytest.mark.parametrize("asked", ["22", "220", "2201"])
def test_a_desk_asking_a_broader_prefix_or_its_own_gets_its_own(asked):
    assert desk_region(DESK, asked) == "2201"


@pytest.mark.parametrize("asked", ["22010", "220102"])
def test_a_desk_asking_a_narrower_prefix_within_its_own_keeps_it(asked):
    assert desk_region(DESK, asked) == asked


@pytest.mark.parametrize("asked", ["3301", "2202", "11", "220202"])
def test_a_desk_asking_a_region_outside_its_own_is_forbidden(asked):
    with pytest.raises(ApiError) as caught:
        desk_region(DESK, asked)
    error = caught.value
    assert (error.status, error.code, error.field) == (403, "forbidden", "filter.region")
    assert "`filter.region`" in error.message and repr(asked) in error.message


# --- public_view ---------------------------------------------------------------------------


def subscription_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "id": "s-1",
        "url": "https://example.org/hook",
        "filter": {"region": "2201"},
        "owner": {"token_id": "desk-2201", "role": "desk"},
        "created_at": "2026-11-25T08:00:00.000Z",
        "secret": "whsec_bmV3",
        "previous_secret": "whsec_b2xk",
        "previous_expires": 1_000_000.0,
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize("now", [0.0, 999_999.0, 1_000_000.0, 2_000_000.0])
def test_the_view_never_shows_a_key(now):
    view = public_view(subscription_doc(), now)
    for hidden in HIDDEN:
        assert hidden not in view
    assert "whsec_" not in repr(view)
    assert {k: view[k] for k in ("id", "url", "filter", "owner", "created_at")} == {
        k: subscription_doc()[k] for k in ("id", "url", "filter", "owner", "created_at")
    }


def test_the_view_says_active_or_disabled():
    assert public_view(subscription_doc(), 0.0)["state"] == "active"
    disabled = public_view(subscription_doc(disabled_at="2026-11-25T09:00:00.000Z"), 0.0)
    assert disabled["state"] == "disabled"
    assert disabled["disabled_at"] == "2026-11-25T09:00:00.000Z"


def test_the_previous_key_is_announced_only_while_its_overlap_lasts():
    doc = subscription_doc(previous_expires=1_000_000.0)
    assert public_view(doc, 999_999.0)["previous_secret_valid_until"] == iso(1_000_000.0)
    assert "previous_secret_valid_until" not in public_view(doc, 1_000_000.0)
    assert "previous_secret_valid_until" not in public_view(doc, 1_000_001.0)
    never_rotated = {k: v for k, v in doc.items() if k not in ("previous_secret", "previous_expires")}
    assert "previous_secret_valid_until" not in public_view(never_rotated, 0.0)


def test_the_view_leaves_the_stored_document_whole():
    doc = subscription_doc()
    public_view(doc, 0.0)
    assert doc == subscription_doc()


# --- create: refusals before anything is stored ----------------------------------------------


@pytest.mark.parametrize("call", ["create", "list", "delete", "rotate", "delivery_log"])
def test_a_bank_token_manages_no_subscriptions(call):
    subs, storage = service()
    args = {
        "create": (BANK, body()),
        "list": (BANK,),
        "delete": (BANK, "s-1"),
        "rotate": (BANK, "s-1"),
        "delivery_log": (BANK, "s-1", {}),
    }[call]
    error = refused(getattr(subs, call)(*args))
    assert (error.status, error.code) == (403, "forbidden")
    assert storage.calls == []


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b'{"url": "http://127.0.0.1/"'])
def test_malformed_json_is_400(raw):
    subs, storage = service()
    error = refused(subs.create(ADMIN, raw))
    assert (error.status, error.code, error.field) == (400, "invalid_subscription", None)
    assert storage.calls == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"url": "https://example.org/hook", "filter": {"colour": "red"}}', "filter.colour"),
        (b'{"url": "https://example.org/hook", "filter": {"min_severity": "urgent"}}', "filter.min_severity"),
        (b'{"url": "https://example.org/hook", "filter": {"typologies": ["fraud"]}}', "filter.typologies[0]"),
        (b'{"url": "https://example.org/hook", "filter": {"region": "2"}}', "filter.region"),
        (b'{"url": "https://example.org/hook", "extra": 1}', "extra"),
        (b'{"filter": {}}', "url"),
        (b'{"url": "http://"}', "url"),
        (b"[]", None),
    ],
)
def test_an_invalid_request_is_422_naming_the_field(raw, field):
    subs, storage = service()
    error = refused(subs.create(ADMIN, raw))
    assert (error.status, error.code, error.field) == (422, "invalid_subscription", field)
    assert storage.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_a_private_address_is_refused_unless_allowed(url):
    subs, storage = service(allow_private=False)
    error = refused(subs.create(ADMIN, body(url)))
    assert (error.status, error.code, error.field) == (422, "url_refused", "url")
    assert error.message.startswith("`url`: ")
    assert storage.calls == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "http://user:pw@127.0.0.1/", "http://127.0.0.1/#x"])
def test_url_syntax_is_refused_even_when_private_addresses_are_allowed(url):
    subs, storage = service(allow_private=True)
    error = refused(subs.create(ADMIN, body(url)))
    assert (error.status, error.field) == (422, "url")
    assert storage.calls == []


def test_a_desk_asking_another_region_is_refused_before_anything_is_stored():
    subs, storage = service()
    error = refused(subs.create(DESK, body(region="3301")))
    assert (error.status, error.field) == (403, "filter.region")
    assert storage.calls == []


# --- create and list -----------------------------------------------------------------------


def test_a_loopback_url_is_accepted_when_private_addresses_are_allowed():
    subs, storage = service(allow_private=True)
    before = time.time()
    created = asyncio.run(
        subs.create(ADMIN, body("http://127.0.0.1/", typologies=["fund_pool"], min_severity="high"))
    )
    assert str(uuid.UUID(created.id)) == created.id
    assert created.secret.startswith("whsec_")
    (row,) = storage.tables["subscriptions"]
    assert (row["subscription_id"], row["owner_token_id"], row["url"], row["deleted"]) == (
        created.id,
        "admin-1",
        "http://127.0.0.1/",
        0,
    )
    assert created.secret.removeprefix("whsec_") not in repr(row)  # encrypted at rest
    (doc,) = stored_docs(storage)
    assert doc["secret"] == created.secret  # the dispatcher signs with it: encrypted, not hashed
    assert doc["filter"] == {"typologies": ["fund_pool"], "min_severity": "high"}
    assert doc["owner"] == {"token_id": "admin-1", "role": "admin"}
    assert before - 0.001 <= _epoch(doc["created_at"]) <= time.time() + 0.001


def test_each_subscription_gets_its_own_id_and_secret():
    subs, _ = service()
    made = [asyncio.run(subs.create(ADMIN, body())) for _ in range(3)]
    assert len({m.id for m in made}) == 3
    assert len({m.secret for m in made}) == 3


@pytest.mark.parametrize(("asked", "kept"), [(None, "2201"), ("22", "2201"), ("220102", "220102")])
def test_a_desks_filter_region_is_stored_within_its_own(asked, kept):
    subs, storage = service()
    filter_doc = {} if asked is None else {"region": asked}
    asyncio.run(subs.create(DESK, body(**filter_doc)))
    (doc,) = stored_docs(storage)
    assert doc["filter"]["region"] == kept
    assert doc["owner"] == {"token_id": "desk-2201", "role": "desk"}


def test_list_shows_an_admin_every_subscription_and_a_desk_its_own_without_keys():
    subs, _ = service()
    mine = asyncio.run(subs.create(DESK, body()))
    theirs = asyncio.run(subs.create(OTHER_DESK, body()))
    admins = asyncio.run(subs.create(ADMIN, body()))

    everything = asyncio.run(subs.list(ADMIN)).subscriptions
    assert {s["id"] for s in everything} == {mine.id, theirs.id, admins.id}
    assert [s["id"] for s in asyncio.run(subs.list(DESK)).subscriptions] == [mine.id]
    assert [s["id"] for s in asyncio.run(subs.list(OTHER_DESK)).subscriptions] == [theirs.id]
    for view in everything:
        assert view["state"] == "active"
        for hidden in HIDDEN:
            assert hidden not in view
    assert not any(made.secret in repr(everything) for made in (mine, theirs, admins))


# --- reach: another owner's subscription answers as an unknown one ----------------------------


@pytest.mark.parametrize("call", ["delete", "rotate", "delivery_log"])
def test_a_desk_cannot_reach_another_owners_subscription(call):
    subs, storage = service()
    theirs = asyncio.run(subs.create(OTHER_DESK, body()))
    rows_before = list(storage.tables["subscriptions"])
    args = (theirs.id, {}) if call == "delivery_log" else (theirs.id,)
    error = refused(getattr(subs, call)(DESK, *args))
    assert (error.status, error.code) == (404, "not_found")
    assert storage.tables["subscriptions"] == rows_before  # nothing changed


@pytest.mark.parametrize("call", ["delete", "rotate", "delivery_log"])
def test_an_unknown_subscription_is_404_even_for_an_admin(call):
    subs, _ = service()
    args = ("no-such-id", {}) if call == "delivery_log" else ("no-such-id",)
    error = refused(getattr(subs, call)(ADMIN, *args))
    assert (error.status, error.code) == (404, "not_found")


def test_an_admin_reaches_a_desks_subscription():
    subs, storage = service()
    theirs = asyncio.run(subs.create(DESK, body()))
    assert asyncio.run(subs.delivery_log(ADMIN, theirs.id, {})).deliveries == []
    rotated = asyncio.run(subs.rotate(ADMIN, theirs.id))
    assert rotated.secret != theirs.secret
    asyncio.run(subs.delete(ADMIN, theirs.id))
    assert asyncio.run(subs.list(DESK)).subscriptions == []
    # the owner stays the desk's, whoever changed it
    assert {row["owner_token_id"] for row in storage.tables["subscriptions"]} == {"desk-2201"}


# --- delete and rotate ---------------------------------------------------------------------


def test_a_deleted_subscription_is_gone_for_everyone():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    asyncio.run(subs.delete(DESK, mine.id))
    assert asyncio.run(subs.list(DESK)).subscriptions == []
    assert asyncio.run(subs.list(ADMIN)).subscriptions == []
    assert refused(subs.delete(DESK, mine.id)).status == 404
    assert refused(subs.rotate(ADMIN, mine.id)).status == 404
    last = storage.tables["subscriptions"][-1]
    assert last["deleted"] == 1 and "deleted_at" in msgspec.json.decode(last["doc"])


def test_rotation_keeps_the_old_key_for_the_overlap_and_shows_neither():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    before = time.time()
    rotated = asyncio.run(subs.rotate(DESK, mine.id))
    after = time.time()
    assert rotated.secret.startswith("whsec_") and rotated.secret != mine.secret
    doc = stored_docs(storage)[-1]
    assert doc["secret"] == rotated.secret
    assert doc["previous_secret"] == mine.secret
    assert before + ROTATION_OVERLAP_S <= doc["previous_expires"] <= after + ROTATION_OVERLAP_S
    (view,) = asyncio.run(subs.list(DESK)).subscriptions
    assert view["previous_secret_valid_until"] == iso(doc["previous_expires"])
    assert mine.secret not in repr(view) and rotated.secret not in repr(view)


def test_a_second_rotation_keeps_only_the_key_just_replaced():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    first = asyncio.run(subs.rotate(DESK, mine.id))
    second = asyncio.run(subs.rotate(DESK, mine.id))
    doc = stored_docs(storage)[-1]
    assert (doc["secret"], doc["previous_secret"]) == (second.secret, first.secret)


# --- delivery log --------------------------------------------------------------------------


def delivery(subscription_id: str, webhook_id: str, state: str, at: float) -> Delivery:
    return Delivery(
        webhook_id=webhook_id,
        subscription_id=subscription_id,
        alert_id=f"alert-{webhook_id}",
        revision=1,
        typology="fund_pool",
        severity="high",
        created_at=at,
        next_attempt_at=at + 5,
        body='{"id": "secret body"}',
        state=state,
    )


@pytest.mark.parametrize("status", ["sent", "PENDING", "failed", "all"])
def test_delivery_log_status_must_be_a_known_state(status):
    subs, _ = service()
    mine = asyncio.run(subs.create(DESK, body()))
    error = refused(subs.delivery_log(DESK, mine.id, {"status": status}))
    assert (error.status, error.code, error.field) == (422, "invalid_query", "status")


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1", "", "1.5"])
def test_delivery_log_limit_must_be_a_whole_number_from_1_to_1000(limit):
    subs, _ = service()
    mine = asyncio.run(subs.create(DESK, body()))
    error = refused(subs.delivery_log(DESK, mine.id, {"limit": limit}))
    assert (error.status, error.code, error.field) == (422, "invalid_query", "limit")


@pytest.mark.parametrize("limit", ["1", "1000"])
def test_delivery_log_limit_bounds_are_inclusive(limit):
    subs, _ = service()
    mine = asyncio.run(subs.create(DESK, body()))
    assert asyncio.run(subs.delivery_log(DESK, mine.id, {"limit": limit})).deliveries == []


def test_delivery_log_shows_the_last_state_of_each_message_by_status():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    theirs = asyncio.run(subs.create(OTHER_DESK, body()))
    store = DeliveryStore(storage)  # type: ignore[arg-type]
    now = 1_795_000_000.0
    made = [
        delivery(mine.id, "msg_a", PENDING, now),
        delivery(mine.id, "msg_b", PENDING, now),
        delivery(mine.id, "msg_c", PENDING, now),
        delivery(theirs.id, "msg_x", PENDING, now),
    ]
    asyncio.run(store.save(made, first=True))
    delivered = msgspec.structs.replace(
        made[1], state=DELIVERED, delivered_at=now + 1, attempts=[Attempt(at=now, duration_ms=12, status=204)]
    )
    dead = msgspec.structs.replace(
        made[2],
        state=DEAD,
        dead_reason="retries_exhausted",
        attempts=[Attempt(at=now, duration_ms=9, error="connection refused")],
    )
    asyncio.run(store.save([delivered, dead]))

    def log(**query: str) -> list[dict[str, Any]]:
        return asyncio.run(subs.delivery_log(DESK, mine.id, query)).deliveries

    assert {d["webhook_id"]: d["state"] for d in log()} == {
        "msg_a": PENDING,
        "msg_b": DELIVERED,
        "msg_c": DEAD,
    }
    assert [d["webhook_id"] for d in log(status="pending")] == ["msg_a"]
    assert [d["webhook_id"] for d in log(status="delivered")] == ["msg_b"]
    (dead_view,) = log(status="dead")
    assert dead_view["dead_reason"] == "retries_exhausted"
    assert dead_view["attempts"] == [{"at": iso(now), "duration_ms": 9, "error": "connection refused"}]
    assert len(log(limit="2")) == 2
    assert {d["webhook_id"] for d in log(status="")} == {"msg_a", "msg_b", "msg_c"}  # empty: any
    for view in log():
        assert "body" not in view
    (pending_view,) = log(status="pending")
    assert pending_view["next_attempt_at"] == iso(now + 5)


# --- secrets at rest -----------------------------------------------------------------------


def test_secrets_are_encrypted_at_rest_with_a_fresh_nonce_and_bound_to_their_subscription():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    rotated = asyncio.run(subs.rotate(DESK, mine.id))
    for row in storage.tables["subscriptions"]:
        for key in (mine.secret, rotated.secret):
            assert key.removeprefix("whsec_") not in repr(row)
    first, second = (msgspec.json.decode(row["doc"]) for row in storage.tables["subscriptions"])
    assert first["secret"] != second["previous_secret"]  # the same key sealed again, another nonce
    assert BOX.open(second["previous_secret"], mine.id) == mine.secret
    other = asyncio.run(subs.create(DESK, body()))
    with pytest.raises(SecretUnreadable, match="FUNDWATCH_SECRET_KEY"):
        BOX.open(second["secret"], other.id)  # moved to another row, it does not open
    # what the dispatcher reads is in clear
    (owner, doc) = asyncio.run(subs.store.get(mine.id))
    assert (owner, doc["secret"], doc["previous_secret"]) == ("desk-2201", rotated.secret, mine.secret)
    live = {d["id"]: d for d in asyncio.run(subs.store.live())}
    assert live[mine.id]["secret"] == rotated.secret and live[other.id]["secret"].startswith("whsec_")


def test_a_secret_stored_in_clear_is_read_and_encrypted_when_next_written():
    subs, storage = service()
    legacy = {"id": "sub-old", "url": "http://127.0.0.1:9000/hook", "filter": {},
              "owner": {"token_id": "desk-2201", "role": "desk"}, "created_at": iso(1.0),
              "secret": "whsec_b2xkLWtleQ=="}  # fmt: skip
    storage.tables["subscriptions"].append({"subscription_id": "sub-old", "owner_token_id": "desk-2201",
                                            "url": legacy["url"], "doc": msgspec.json.encode(legacy).decode(),
                                            "deleted": 0, "version": 1})  # fmt: skip
    assert asyncio.run(subs.store.get("sub-old"))[1]["secret"] == "whsec_b2xkLWtleQ=="
    rotated = asyncio.run(subs.rotate(DESK, "sub-old"))
    newest = storage.tables["subscriptions"][-1]
    assert "b2xkLWtleQ" not in newest["doc"] and rotated.secret.removeprefix("whsec_") not in newest["doc"]
    rewritten = msgspec.json.decode(newest["doc"])
    assert BOX.open(rewritten["previous_secret"], "sub-old") == "whsec_b2xkLWtleQ=="
    assert BOX.open(rewritten["secret"], "sub-old") == rotated.secret


def test_a_store_made_with_another_key_cannot_read_the_secrets():
    subs, storage = service()
    mine = asyncio.run(subs.create(DESK, body()))
    stranger = Subscriptions(storage, allow_private=True, box=SecretBox(bytes(32)))  # type: ignore[arg-type]
    with pytest.raises(SecretUnreadable, match="FUNDWATCH_SECRET_KEY"):
        asyncio.run(stranger.store.get(mine.id))
