"""models/detectors/frozen.py: parts of a state that are done changing, held as their JSON, and
the detectors that freeze them (large_value's sealed days, anomaly's sealed evidence,
disguised_clearing's unmatched legs held for a slower bank). A frozen state must be written as the
same JSON, and must step on exactly as the plain state a changelog round trip gives."""

from __future__ import annotations

import msgspec

from models.detectors import disguised_clearing, large_value
from models.detectors.anomaly_evidence import day_evidence, freeze_sealed, with_evidence
from models.detectors.common import open_from
from models.detectors.frozen import freeze_before, frozen, is_frozen, plain, thawed
from models.windows import DAY
from tests.unit.test_detectors_common import EXTERNAL, OWN, bj, txn, world
from tests.unit.test_detectors_disguised_clearing import a_week_at_two_banks
from tests.unit.test_detectors_disguised_clearing import world as clearing_world

encode = msgspec.json.encode


def test_a_frozen_part_is_its_json_and_thaws_to_a_new_copy():
    part = {"c": 5, "top": [[500, 1, "r1", None]], "x": {"in": 5}}
    ice = frozen(part)
    assert is_frozen(ice) and not is_frozen(part)
    assert bytes(ice) == encode(part)
    assert encode({"day": ice}) == encode({"day": part})  # written inline, as the part would be
    again = thawed(ice)
    assert again == part and again is not part
    assert thawed(part) is part  # a part not frozen is handed back as it is


def test_freeze_before_freezes_the_earlier_keys_in_place_and_leaves_the_rest():
    parts = {"100": {"n": 1}, "200": {"n": 2}, "300": {"n": 3}}
    before = encode(parts)
    freeze_before(parts, 300)
    assert [is_frozen(v) for v in parts.values()] == [True, True, False]
    assert encode(parts) == before and plain(parts) == {"100": {"n": 1}, "200": {"n": 2}, "300": {"n": 3}}
    ice = parts["100"]
    freeze_before(parts, 400)
    assert parts["100"] is ice  # frozen once, not encoded again
    freeze_before(parts, None)  # no watermark yet: nothing is done
    assert is_frozen(parts["300"])


# -- large_value ----------------------------------------------------------------------------------


def cash(amount: str, when: str):
    return txn(OWN, True, amount, when, EXTERNAL, channel="CASH", bank="B001")


def a_week_of_cash():
    ctx = world()
    state = None
    for d in range(10, 18):
        state, _ = large_value.detect(
            ctx, state, OWN, f"m{d}", [cash("30000.00", f"2026-11-{d:02d} 10:00:00")]
        )
    return ctx, state


def test_large_value_freezes_its_sealed_days_and_writes_the_same_json():
    ctx, state = a_week_of_cash()
    since = open_from(state["wm"])
    days = state["days"]
    assert any(int(day) < since for day in days) and any(int(day) >= since for day in days)
    for day, lines in days.items():
        assert is_frozen(lines) == (int(day) < since), day
    assert encode(state) == encode(plain(state))
    assert large_value.current(ctx, state, OWN) == large_value.current(ctx, plain(state), OWN)


def test_a_late_record_on_a_frozen_day_counts_as_on_the_plain_state():
    ctx, state = a_week_of_cash()
    late = [cash("25000.00", "2026-11-11 15:00:00")]  # 30,000 + 25,000 crosses the cash line
    assert is_frozen(state["days"][str(bj("2026-11-11 00:00:00"))])
    on_frozen = large_value.detect(ctx, state, OWN, "late", late)
    on_plain = large_value.detect(ctx, plain(state), OWN, "late", late)
    assert on_frozen[1] == on_plain[1]
    [finding] = on_frozen[1]
    assert finding.metrics["late"] is True and finding.amount_cents == 5_500_000
    assert plain(on_frozen[0]) == plain(on_plain[0])
    assert is_frozen(on_frozen[0]["days"][str(bj("2026-11-11 00:00:00"))])  # frozen again once judged


# -- anomaly evidence ---------------------------------------------------------------------------


def test_anomaly_evidence_of_sealed_days_is_frozen_and_read_through():
    first = bj("2026-11-10 00:00:00")
    records = {first + k * DAY: [txn(OWN, True, "100.00", f"2026-11-{10 + k} 09:00:00")] for k in range(6)}
    evidence = with_evidence({}, records)
    wm = first + 5 * DAY + 3600
    freeze_sealed(evidence, wm)
    since = open_from(wm)
    assert [is_frozen(evidence[str(day)]) for day in records] == [day < since for day in records]
    assert day_evidence(evidence, first) == plain(evidence)[str(first)]
    assert day_evidence(evidence, first + 9 * DAY) is None
    late = {first: [txn(OWN, False, "900.00", "2026-11-10 21:00:00")]}
    assert plain(with_evidence(evidence, late)) == with_evidence(plain(evidence), late)


# -- disguised_clearing ---------------------------------------------------------------------------


def test_legs_held_for_a_slower_bank_are_frozen_and_found_by_its_late_records():
    ctx = clearing_world()
    credits, debits = a_week_at_two_banks()
    state, _ = disguised_clearing.detect(ctx, None, "PAY", "bank-1", credits)  # B001's week first
    held = state["pend"]["c"]
    assert any(is_frozen(node) for node in held.values()) and not all(is_frozen(n) for n in held.values())
    written = encode(state)
    assert written == encode(plain(state))
    on_frozen = disguised_clearing.detect(ctx, state, "PAY", "bank-2", debits)  # B002's, days late
    on_plain = disguised_clearing.detect(ctx, plain(state), "PAY", "bank-2", debits)
    assert on_frozen[1] == on_plain[1] and len(on_frozen[1]) == 6
    assert plain(on_frozen[0]) == plain(on_plain[0])
    # the caller's state is not changed: still written the same, its held legs still frozen
    assert encode(state) == written
    assert any(is_frozen(node) for node in state["pend"]["c"].values())
