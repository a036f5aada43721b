"""models/detectors/institution_messages.py: what the institution's detectors share of a message
changes nothing any of them decides."""

from __future__ import annotations

import copy
import random

import msgspec

from models.detectors import (
    disguised_clearing,
    excess_return,
    investor_cap_breach,
    maturity_mismatch,
    rapid_growth,
)
from models.detectors import institution_messages as im
from models.detectors import product_flows as pf
from models.detectors.common import advance_sources
from models.institution_detection import INSTITUTION_DETECTORS, step_institution_messages
from tests.unit.test_detectors_common import (
    ALL_ACCOUNTS,
    BORROWER,
    CUSTODY,
    INVESTOR,
    INVESTOR_FREE,
    OWN,
    bj,
    txn,
)
from tests.unit.test_detectors_excess_return import payout, product, repayment, subscription, world

SPLIT = product("PRD-P1-M", term=30, underlying=360)


def _records() -> list:
    """A fortnight of P1's flows: tagged and untagged payouts, repayments and subscriptions, own
    money moving, from two banks, one record in another currency."""
    records = []
    for day in range(1, 15):
        when = f"2026-11-{day:02d}"
        bank = "B001" if day % 3 else "B002"
        for record in (
            repayment("PRD-P1-M", "60000.00", f"{when} 09:00:00"),
            payout("PRD-P1-M", "80000.00", f"{when} 10:00:00", instruction=f"PO-{day}"),
            repayment(None, "1000.00", f"{when} 11:00:00"),
            payout(None, "700.00", f"{when} 12:00:00", investor=INVESTOR_FREE, instruction=f"PX-{day}"),
            subscription("PRD-P1-090", f"{day}000.00", f"{when} 08:00:00"),
            subscription(None, "500.00", f"{when} 08:30:00", investor=f"62170001000{day:05d}"),
            txn(OWN, False, "300.00", f"{when} 13:00:00", CUSTODY),
            txn(CUSTODY, True, "300.00", f"{when} 13:00:01", OWN),
        ):
            records.append(msgspec.structs.replace(record, bank_code=bank))
    records.append(repayment("PRD-P1-M", "5.00", "2026-11-14 14:00:00", currency="USD"))
    return records


def _messages(seed: int) -> list[tuple[str, list]]:
    records = _records()
    random.Random(seed).shuffle(records)
    return [(f"m{i}", records[i : i + 7]) for i in range(0, len(records), 7)]


def test_each_detector_decides_as_it_does_alone():
    ctx = world(SPLIT)
    messages = _messages(1)
    alone: dict = {name: None for name in INSTITUTION_DETECTORS}
    alone_findings = []
    state = None
    for msg_id, records in messages:
        state, _ = step_institution_messages(ctx, state, "P1", [(msg_id, records)], at=0, consume=True)
        for name, detector in INSTITUTION_DETECTORS.items():
            alone[name], found = detector.detect(ctx, alone[name], "P1", msg_id, records)
            alone_findings.extend(found)
    assert {name: s for name, s in alone.items() if s} == msgspec.json.decode(
        msgspec.json.encode(state["detectors"])
    )
    assert {f.typology for f in alone_findings} >= {"excess_return", "maturity_mismatch"}


def test_several_messages_of_one_take_decide_as_one_at_a_time():
    ctx = world(SPLIT)
    messages = _messages(2)
    one_by_one = None
    for msg_id, records in messages:
        one_by_one, _ = step_institution_messages(ctx, one_by_one, "P1", [(msg_id, records)], at=0)
    taken, _ = step_institution_messages(ctx, None, "P1", messages, at=0)
    assert msgspec.json.encode(taken["detectors"]) == msgspec.json.encode(one_by_one["detectors"])


def test_a_state_not_given_up_is_never_changed():
    ctx = world(SPLIT)
    messages = _messages(4)
    state, _ = step_institution_messages(ctx, None, "P1", messages[:3], at=0)
    before = copy.deepcopy(state)
    again, _ = step_institution_messages(ctx, state, "P1", messages[3:5], at=0)
    assert state == before and again != before
    single, _ = step_institution_messages(ctx, state, "P1", messages[5:6], at=0)
    assert state == before and single != before


def test_a_detector_alone_reads_the_message_itself():
    ctx = world(SPLIT)
    records = _records()[:8]
    first, second = im.view_of(ctx, "P1", "m1", records), im.view_of(ctx, "P1", "m1", records)
    assert first is not second and first.custody == second.custody
    assert [r.account_id for r in first.custody] == [CUSTODY] * len(first.custody)
    for module in (excess_return, maturity_mismatch, investor_cap_breach, rapid_growth, disguised_clearing):
        assert module.NAME in INSTITUTION_DETECTORS


def test_the_latest_record_of_each_bank_advances_a_watermark_as_all_of_them():
    ctx = world()
    rng = random.Random(5)
    accounts = (CUSTODY, OWN, INVESTOR, BORROWER, "6217999999999998")  # the last one unknown
    for _ in range(200):
        records = [
            msgspec.structs.replace(
                txn(rng.choice(accounts), True, "1.00", "2026-11-20 09:00:00"),
                booked_at=bj("2026-11-20 09:00:00") + rng.randint(-4, 4) * 86400 + rng.randint(0, 5),
                bank_code=rng.choice(("", "", "B001", "B002", "B003")),
            )
            for _ in range(rng.randint(0, 12))
        ]
        start = {"wm": None, "src": {}}
        if rng.random() < 0.7:
            ts = bj("2026-11-20 00:00:00") + rng.randint(-3, 3) * 86400
            start = {"wm": ts, "src": {"B001": [ts, ts], "B004": [ts - 86400, ts - 3 * 86400]}}
        everything, latest = copy.deepcopy(start), copy.deepcopy(start)
        assert advance_sources(everything, ctx, records) == advance_sources(
            latest, ctx, im._latest_per_bank(ctx, records)
        )
        assert msgspec.json.encode(everything) == msgspec.json.encode(latest)


def test_each_detector_judges_a_shared_view_as_its_own_message():
    ctx = world(SPLIT)
    states: dict = {name: None for name in INSTITUTION_DETECTORS}
    for msg_id, records in _messages(6):
        view = im.view_of(ctx, "P1", msg_id, records)  # one for all of them, as the step makes it
        for name, detector in INSTITUTION_DETECTORS.items():
            alone = detector.detect(ctx, copy.deepcopy(states[name]), "P1", msg_id, records)
            shared = detector.detect_view(ctx, states[name], "P1", view)
            assert msgspec.json.encode(shared) == msgspec.json.encode(alone)
            states[name] = shared[0]
    assert states["excess_return"] and states["maturity_mismatch"]


def test_a_view_reads_its_product_flows_once():
    ctx = world(SPLIT)
    view = im.view_of(ctx, "P1", "m1", _records())
    flows = view.product_flows()
    assert flows and view.product_flows() is flows
    assert flows == pf.custody_flows(ctx, "P1", view.custody)


def test_custody_flows_leave_out_what_changes_no_figure_and_learn_each_pair_once():
    ctx = world(SPLIT)
    records = [r for r in _records() if r.account_id == CUSTODY]
    flows = pf.custody_flows(ctx, "P1", records)
    kept = [record for record, *_ in flows]
    assert all(r.currency == "CNY" for r in kept) and len(kept) < len(records)
    assert all(pid is not None or kind is not None for _, pid, kind, _ in flows)
    learned = [(record.counterparty_account, pid) for record, pid, _, learns in flows if learns]
    assert len(learned) == len(set(learned))
    tagged = {(r.counterparty_account, r.product_id) for r, pid, _, _ in flows if r.product_id}
    assert set(learned) <= tagged and learned  # a pair of an ordinary counterparty is not learned
    learning = [
        r for r, *_ in flows if r.product_id and ctx.role(r.counterparty_account) in ("borrower", "investor")
    ]
    assert len(learning) > len(learned)  # the pairs came again, and were not learned again


def test_shared_flows_fold_into_each_state_as_the_records_alone_would():
    ctx = world(SPLIT)
    messages = _messages(7)
    by_flows, by_records = pf.empty_state(), pf.empty_state()
    for index, (_, records) in enumerate(messages):
        custody = [r for r in records if pf.is_custody(ctx, r.account_id)]
        flows = pf.custody_flows(ctx, "P1", custody)
        moved = pf.fold_flows(by_flows, flows)
        advance_sources(by_flows, ctx, custody)
        # the per-record fold: every record's pair learned, whether noted already or not
        expected = _fold_each_record(ctx, by_records, custody)
        assert moved == expected, index
        assert msgspec.json.encode(by_flows) == msgspec.json.encode(by_records), index
    assert by_flows["products"] and by_flows.get("cp")


def _fold_each_record(ctx, st: dict, custody: list) -> set[str]:
    """fold_custody as one loop over the records, _learn called for every tagged record."""
    moved = set()
    for record, pid, kind, _ in pf.custody_flows(ctx, "P1", custody):
        one = pf.fold_flows(st, [(record, pid, kind, False)])
        role = ctx.role(record.counterparty_account)
        if record.product_id and role in ("borrower", "investor"):
            pf._learn(st, record.counterparty_account, pid)
        moved |= one
    advance_sources(st, ctx, custody)
    return moved


def test_products_of_records_finds_each_record_s_product_as_product_of():
    ctx = world(SPLIT)
    for single in (None, "PRD-P1-M"):
        product_of = pf.products_of_records(ctx, single)
        found = [product_of(record) for record in _records()]
        assert found == [pf.product_of(ctx, record, single) for record in _records()]
        assert None in found or single is not None


def test_own_accounts_are_the_institutions_custody_reserve_and_own_operating_ones():
    ctx = world(SPLIT)
    for institution_id in ("P1", "PAY", "AM"):
        own = im.OwnAccounts(ctx, institution_id)
        for account_id in (*ALL_ACCOUNTS, None, "", "6217999999999998"):
            found = own[account_id]
            account = ctx.account(account_id) if account_id else None
            assert (found is not None) == (
                account is not None
                and account.get("institution_id") == institution_id
                and account.get("role") in ("customer_custody", "payment_reserve", "own_operating")
            )
            if found is not None:
                account = ctx.account(account_id)
                assert found == (account["role"], str(account.get("bank_code") or ""))
            assert own[account_id] is found  # read once
    view = im.view_of(ctx, "P1", "m1", _records())
    assert view.own[CUSTODY] == ("customer_custody", "B001") and view.own[INVESTOR] is None
