"""models/detectors/common.py, and the small world every detector test shares.

The builders below (``world``, ``txn``, ``snap``, ``deliveries``, ``check_order_independent``,
``assert_explanations_safe``) are imported by the other test_detectors_* modules.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from models.detectors import fold
from models.detectors.common import (
    ALLOWED_LATENESS,
    TOP_N,
    add,
    advance,
    beijing_date,
    bump,
    clone,
    is_sealed,
    new_bucket,
    record_ids,
    severity_by_amount,
)
from models.detectors.context import DetectContext, StaticReferences
from models.detectors.wording import mask, percent, ratio_text, section_en, yuan_en, yuan_zh
from models.findings import Finding
from models.thresholds import DEFAULT_FILE, Thresholds, load_thresholds
from models.windows import DAY, beijing_day_start
from schemas.fields import amount_to_cents, epoch_seconds
from schemas.messages import BalanceRecord, TxnRecord

# -- the world -------------------------------------------------------------------------------

P2P_NAME = "吉林省鑫汇网络借贷信息中介服务有限公司"
PAY_NAME = "长春恒通支付有限公司"

CUSTODY = "6222020100001001"  # P1 customer_custody
OWN = "6222020100002002"  # P1 own_operating
OWN_B = "6228480200002003"  # P1 own_operating at another bank
RELATED = "6222020100009004"  # P1 related_party (the actual controller, a person)
LISTED = "6222020100009005"  # an affiliate's account: role other, listed in P1's related parties
INVESTOR = "6217000100008006"  # investor of P1
INVESTOR_FREE = "6217000100008007"  # investor tied to no institution
INVESTOR_P2 = "6217000100008008"  # investor of P2
BORROWER = "6217000100007009"  # borrower of P1
OWN_P2 = "6222020200002010"  # P2 own_operating
RELATED_P2 = "6222020200009011"  # P2 related_party
RESERVE = "6222030100001012"  # PAY payment_reserve
OWN_PAY = "6222030100002013"  # PAY own_operating, bank 1
OWN_PAY_B = "6228480300002014"  # PAY own_operating, bank 2
AM_CUSTODY = "6222040100001015"  # AM customer_custody
PERSON = "6217000100006016"  # a monitored account held by a person
NOBODY = "6217000100006017"  # holder unknown
STAFF = ("6217000100005018", "6217000100005019", "6217000100005020")  # P1 employees (not monitored)
EXTERNAL = "6217999900000021"  # somebody nobody knows

HOLDERS = {
    CUSTODY: P2P_NAME,
    OWN: P2P_NAME,
    OWN_B: P2P_NAME,
    RELATED: "王建国",
    LISTED: "吉林长盛商贸有限公司",
    INVESTOR: "李秀英",
    INVESTOR_FREE: "赵敏",
    INVESTOR_P2: "刘洋",
    BORROWER: "张伟",
    OWN_P2: "长春瑞丰网络科技有限公司",
    RELATED_P2: "孙立新",
    RESERVE: PAY_NAME,
    OWN_PAY: PAY_NAME,
    OWN_PAY_B: PAY_NAME,
    AM_CUSTODY: "吉林嘉润资产管理有限公司",
    PERSON: "陈静",
    NOBODY: "",
}
ROLES = {
    CUSTODY: ("customer_custody", "P1"),
    OWN: ("own_operating", "P1"),
    OWN_B: ("own_operating", "P1"),
    RELATED: ("related_party", "P1"),
    LISTED: ("other", None),
    INVESTOR: ("investor", "P1"),
    INVESTOR_FREE: ("investor", None),
    INVESTOR_P2: ("investor", "P2"),
    BORROWER: ("borrower", "P1"),
    OWN_P2: ("own_operating", "P2"),
    RELATED_P2: ("related_party", "P2"),
    RESERVE: ("payment_reserve", "PAY"),
    OWN_PAY: ("own_operating", "PAY"),
    OWN_PAY_B: ("own_operating", "PAY"),
    AM_CUSTODY: ("customer_custody", "AM"),
    PERSON: ("other", None),
    NOBODY: ("other", None),
}
ALL_ACCOUNTS = (*ROLES, *STAFF, EXTERNAL)

# Products (CONTRACT.md §3) for the product-level detectors: ordinary ones, whose promised yield
# stays below the project's rate and whose term matches the project's. A test that needs others
# passes its own list to ``references(products=...)``.
PRODUCTS = [
    {"product_id": "PRD-P1-090", "institution_id": "P1", "name": "鑫汇季季丰90天", "declared_annual_yield": "0.080",
     "term_days": 90, "underlying_project_rate": "0.110", "underlying_term_days": 90, "investor_cap": None,
     "sale_start": "2026-06-01T09:00:00+08:00", "sale_end": "2027-06-01T17:00:00+08:00"},
    {"product_id": "PRD-P1-360", "institution_id": "P1", "name": "鑫汇年年鑫360天", "declared_annual_yield": "0.090",
     "term_days": 360, "underlying_term_days": 360, "underlying_project_rate": "0.125", "investor_cap": None,
     "sale_start": "2026-06-01T09:00:00+08:00", "sale_end": "2027-06-01T17:00:00+08:00"},
    {"product_id": "PRD-P2-180", "institution_id": "P2", "name": "瑞丰半年享180天", "declared_annual_yield": "0.085",
     "term_days": 180, "underlying_project_rate": "0.115", "underlying_term_days": 180, "investor_cap": None,
     "sale_start": "2026-05-01T09:00:00+08:00", "sale_end": "2027-05-01T17:00:00+08:00"},
    {"product_id": "PRD-AM-180", "institution_id": "AM", "name": "嘉润稳健私募投资基金1号",
     "declared_annual_yield": "0.065", "term_days": 180, "underlying_project_rate": "0.085",
     "underlying_term_days": 180, "investor_cap": 200,
     "sale_start": "2026-07-01T09:00:00+08:00", "sale_end": "2027-07-01T17:00:00+08:00"},
]  # fmt: skip

# The values of models/thresholds.toml, fixed here so these tests do not move when it is tuned.
TEST_THRESHOLDS = Thresholds(
    version="test-1",
    defaults={
        "misappropriation": {
            "fee_share_max": "0.05",
            "fee_window_days": 30,
            "high_amount": "100000.00",
            "critical_amount": "1000000.00",
        },
        "reserve_shortfall": {
            "gap_ratio_medium": "0.01",
            "gap_ratio_high": "0.05",
            "gap_ratio_critical": "0.20",
        },
        "commingling": {"min_amount": "0.01"},
        "self_financing": {"min_amount": "0.01"},
        "large_value": {
            "cash": "50000.00",
            "non_natural_transfer": "2000000.00",
            "natural_transfer": "500000.00",
            "natural_cross_border": "200000.00",
        },
    },
    overrides={"payment": {"misappropriation": {"fee_share_max": "0.02"}}},
)


def references(
    patch: dict[str, dict[str, Any]] | None = None, products: list[dict[str, Any]] | None = None
) -> StaticReferences:
    """The world's reference data; ``patch`` changes fields of some accounts, ``products``
    replaces the world's PRODUCTS."""
    accounts = {
        account: {
            "account_id": account,
            "bank_code": "B001",
            "institution_id": institution,
            "role": role,
            "holder_name": HOLDERS[account],
            "product_id": None,
        }
        for account, (role, institution) in ROLES.items()
    }
    for account, fields in (patch or {}).items():
        accounts[account] = {**accounts.get(account, {"account_id": account}), **fields}
    institutions = [
        {"institution_id": "P1", "name": P2P_NAME, "type": "p2p_lending", "region": "220102"},
        {"institution_id": "P2", "name": HOLDERS[OWN_P2], "type": "p2p_lending", "region": "220202"},
        {"institution_id": "PAY", "name": PAY_NAME, "type": "payment", "region": "220104"},
        {"institution_id": "AM", "name": HOLDERS[AM_CUSTODY], "type": "asset_management", "region": "220302"},
    ]
    parties = [
        {"party_id": "RP1", "institution_id": "P1", "name": HOLDERS[LISTED], "relation": "affiliate",
         "accounts": [LISTED]},
        {"party_id": "RP2", "institution_id": "P1", "name": "王建国", "relation": "actual_controller",
         "accounts": [RELATED]},
    ]  # fmt: skip
    return StaticReferences(
        accounts, institutions, parties, products=PRODUCTS if products is None else products
    )


def world(thresholds: Thresholds = TEST_THRESHOLDS) -> DetectContext:
    return DetectContext(references(), thresholds)


# -- records ---------------------------------------------------------------------------------

_ids = itertools.count(1)


def bj(text: str) -> int:
    """Epoch seconds of a Beijing wall-clock time "2026-11-25 10:00:00"."""
    return epoch_seconds(text.replace(" ", "T") + "+08:00")


def cents(amount: str) -> int:
    return amount_to_cents(amount)


def txn(
    account: str,
    credit: bool,
    amount: str,
    when: str,
    counterparty: str = EXTERNAL,
    *,
    rid: str | None = None,
    instruction: str | None = None,
    channel: str = "BEPS",
    bank: str = "B002",
    purpose: str | None = None,
    currency: str = "CNY",
) -> TxnRecord:
    return TxnRecord(
        record_id=rid or f"r{next(_ids):06d}", account_id=account, credit=credit,
        amount_cents=cents(amount), booked_at=bj(when), counterparty_account=counterparty,
        counterparty_bank=bank, channel=channel, currency=currency,
        counterparty_name=HOLDERS.get(counterparty) or None, instruction_id=instruction,
        purpose=purpose, product_id=None, balance_after_cents=None,
    )  # fmt: skip


def snap(
    account: str, when: str, balance: str, liabilities: str | None, rid: str | None = None
) -> BalanceRecord:
    return BalanceRecord(
        record_id=rid or f"b{next(_ids):06d}",
        account_id=account,
        as_of=bj(when),
        balance_cents=cents(balance),
        customer_liabilities_cents=cents(liabilities) if liabilities is not None else None,
        currency="CNY",
    )


# -- properties ------------------------------------------------------------------------------


def deliveries(records: list, seed: int) -> list[tuple[str, list]]:
    """The records shuffled, split at random into messages, with replays mixed in: messages
    delivered twice (same msg_id, recognised by the worker). A record is never re-sent in another
    message: the gateway refuses a record id its bank sent before."""
    rng = random.Random(seed)
    shuffled = list(records)
    rng.shuffle(shuffled)
    messages: list[tuple[str, list]] = []
    i = 0
    while i < len(shuffled):
        size = rng.randint(1, 4)
        messages.append((f"s{seed}/m{len(messages)}", shuffled[i : i + size]))
        i += size
    for _ in range(3):
        where = rng.randint(0, len(messages))
        messages.insert(where, rng.choice(messages))  # the same message again
    return messages


def _clock_free(state: dict[str, Any]) -> dict[str, Any]:
    """A state without its watermark when several banks feed it: the minimum of their progress
    depends on how their records interleave (as any minimum watermark does: a bank heard first
    sets it alone), not the figures."""
    if len(state.get("src") or ()) <= 1:
        return state
    return {k: v for k, v in state.items() if k not in ("wm", "src")}


def check_order_independent(
    detector: Any, ctx: DetectContext, account: str, records: list, *, monotone: bool = True, seeds: int = 25
) -> dict[str, Finding]:
    """Every shuffled, split and replayed delivery ends in the same state and the same findings as
    one message holding everything. ``monotone``: a violation once seen never goes away as more
    records arrive, so even the last finding per key must match; otherwise only the keys still
    open at the end must."""
    base_state, base_latest = fold(detector, ctx, account, [("all", list(records))])
    base_current = detector.current(ctx, base_state, account)
    assert {f.key: f for f in base_current} == base_latest  # everything at once: one evaluation per key
    for seed in range(seeds):
        state, latest = fold(detector, ctx, account, deliveries(records, seed))
        assert _clock_free(state) == _clock_free(base_state), f"seed {seed}"
        assert detector.current(ctx, state, account) == base_current, f"seed {seed}"
        if monotone:
            assert latest == base_latest, f"seed {seed}"
        else:
            for finding in base_current:
                assert latest[finding.key] == finding, f"seed {seed}"
    return base_latest


def assert_no_record_ids(state: Any) -> None:
    """State keeps records only as evidence (a bucket's ``top``), never a set of record ids: its
    size follows the open days, not the records."""
    if isinstance(state, dict):
        assert not {"ids", "lids", "fp"} & set(state), sorted(state)
        for value in state.values():
            assert_no_record_ids(value)
    elif isinstance(state, list):
        for value in state:
            assert_no_record_ids(value)


def check_replays_change_nothing(detector: Any, ctx: DetectContext, key: str, records: list) -> None:
    """A message delivered again changes nothing: the worker skips a message id it has folded
    (models/account_state, models/institution_detection), before any detector sees it; a record
    re-sent in another message never reaches a detector (the gateway refuses a record id its bank
    sent before). The detector itself folds what it is given."""
    once = fold(detector, ctx, key, [("m1", list(records))])
    assert fold(detector, ctx, key, [("m1", list(records)), ("m1", list(records))]) == once
    assert fold(detector, ctx, key, [("m1", list(records)), ("m2", []), ("m1", list(records))]) == once


def assert_explanations_safe(finding: Finding) -> None:
    """No holder name and no full account number in either sentence; the accounts appear masked."""
    for text in (finding.explanation_zh, finding.explanation_en):
        for name in HOLDERS.values():
            if name:
                assert name not in text, (name, text)
        for account in ALL_ACCOUNTS:
            assert account not in text, (account, text)
        assert mask(finding.accounts[0]) in text
        assert text.endswith(("。", "."))
    assert f"（《方案》{finding.rule}）" in finding.explanation_zh
    assert finding.thresholds["config_version"] == TEST_THRESHOLDS.version
    assert finding.detector_version.startswith(finding.typology + "/")


# -- tests of common.py ----------------------------------------------------------------------


def test_mask_keeps_only_the_last_four():
    assert mask("6222020100001001") == "****1001"
    assert mask("12345") == "****2345"
    assert mask("1234") == "****"  # shown whole it would be the full number
    assert mask("") == "****" and mask(None) == "****"


def test_money_formats():
    assert yuan_zh(123456789) == "1,234,567.89 元"
    assert yuan_en(123456789) == "CNY 1,234,567.89"
    assert yuan_zh(5) == "0.05 元" and yuan_en(100) == "CNY 1.00"
    assert yuan_en(-123456) == "CNY -1,234.56"


def test_ratio_and_percent_texts():
    from fractions import Fraction

    assert ratio_text(Fraction(1, 3)) == "0.333333"
    assert percent(Fraction(1, 20)) == "5.00%"
    assert percent(Fraction(5000001, 100000000), 6) == "5.000001%"


def test_section_names_in_english():
    assert section_en("二(一)") == "§2(1)"
    assert section_en("四(二)4") == "§4(2)4"


def test_beijing_date_boundary():
    assert beijing_date(bj("2026-11-25 23:59:59")) == "2026-11-25"
    assert beijing_date(bj("2026-11-26 00:00:00")) == "2026-11-26"


def test_severity_by_amount_at_and_below_the_lines():
    assert severity_by_amount(9_999, 10_000, 100_000) == "medium"
    assert severity_by_amount(10_000, 10_000, 100_000) == "high"
    assert severity_by_amount(99_999, 10_000, 100_000) == "high"
    assert severity_by_amount(100_000, 10_000, 100_000) == "critical"
    assert severity_by_amount(1, 10_000, 100_000, floor="low") == "low"
    assert bump("critical") == "critical" and bump("low", 2) == "high"


def test_a_day_is_sealed_only_after_its_end_plus_the_allowed_lateness():
    ts = bj("2026-11-25 12:00:00")
    end = beijing_day_start(ts) + DAY
    assert not is_sealed(ts, None)
    assert not is_sealed(ts, end + ALLOWED_LATENESS - 1)
    assert is_sealed(ts, end + ALLOWED_LATENESS)


def test_advance_keeps_the_latest_event_time():
    records = [
        txn(CUSTODY, True, "1.00", "2026-11-25 10:00:00"),
        snap(CUSTODY, "2026-11-25 11:00:00", "1", "1"),
    ]
    assert advance(None, records) == bj("2026-11-25 11:00:00")
    assert advance(bj("2026-12-01 00:00:00"), records) == bj("2026-12-01 00:00:00")


def test_bucket_sums_counts_times_and_tags():
    bucket = new_bucket()
    add(bucket, "a", 10, 500, tag="own")
    add(bucket, "b", 5, 300)
    add(bucket, "c", 7, 200, tag="own", late=True)
    assert (bucket["c"], bucket["n"], bucket["t0"], bucket["t1"]) == (1000, 3, 5, 10)
    assert bucket["x"] == {"own": 700}
    assert bucket["ln"] == 1


def test_a_bucket_holds_no_record_ids_beyond_its_evidence():
    """State follows the evidence, not the records: a day of 10,000 records keeps TOP_N of them."""
    bucket = new_bucket()
    for i in range(10_000):
        add(bucket, f"r{i:05d}", 1000 + i, 100 + i % 977)
    assert bucket["n"] == 10_000
    assert set(bucket) == {"c", "n", "t0", "t1", "top", "x"}
    assert len(bucket["top"]) == TOP_N


@pytest.mark.parametrize("seed", range(5))
def test_bucket_evidence_is_the_same_whatever_the_order(seed):
    entries = [(f"id{i}", 1000 + i, (i * 7919) % 500 + 1) for i in range(TOP_N * 3)]
    ordered = new_bucket()
    for rid, ts, amount in entries:
        add(ordered, rid, ts, amount)
    shuffled_entries = list(entries)
    random.Random(seed).shuffle(shuffled_entries)
    shuffled = new_bucket()
    for rid, ts, amount in shuffled_entries:
        add(shuffled, rid, ts, amount)
    assert ordered == shuffled
    assert len(ordered["top"]) == TOP_N
    assert len(record_ids([ordered])) == TOP_N


def test_clone_is_deep_and_json_only():
    state = {"a": {"b": [1, 2]}}
    copy = clone(state)
    copy["a"]["b"].append(3)
    assert state == {"a": {"b": [1, 2]}}
    assert clone(None) == {}


def test_test_thresholds_match_the_keys_of_the_real_file():
    """The detectors read these keys; the shipped file must have them (values may be tuned)."""
    real = load_thresholds(env={}, path=DEFAULT_FILE)
    for typology, values in TEST_THRESHOLDS.defaults.items():
        assert set(values) <= set(real.defaults[typology]), typology
    assert real.get("misappropriation", "payment")["fee_share_max"] == "0.02"


def test_deliveries_hold_every_record_and_some_replays():
    records = [txn(CUSTODY, True, "1.00", "2026-11-25 10:00:00") for _ in range(9)]
    messages = deliveries(records, 1)
    seen = [r.record_id for _, batch in messages for r in batch]
    assert set(seen) == {r.record_id for r in records}
    assert len(seen) > len(records)
    assert len({m for m, _ in messages}) < len(messages)  # one msg_id delivered twice
    per_message = {m: tuple(r.record_id for r in batch) for m, batch in messages}
    assert sorted(rid for ids in per_message.values() for rid in ids) == sorted(r.record_id for r in records)
