"""The synthetic province and the custody-bank feed: deterministic, valid, and consistent money."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from statistics import median

import msgspec
import pytest

from schemas.fields import BEIJING, amount_to_cents, parse_time
from schemas.records import Balance, BatchSchema, Transaction
from schemas.reference import (
    REFERENCE_KINDS,
    Account,
    AccountRole,
    Institution,
    InstitutionType,
    Product,
    RelatedParty,
)
from services.simulator import Feed, build_province, write_files
from services.simulator.province import CUSTODY_TYPES, uscc_check_char
from services.simulator.push import parse_metric_total

INTENSITY = 2000.0
START = datetime(2026, 11, 2, 0, 0, tzinfo=BEIJING)  # a Monday
DAYS = 2


@pytest.fixture(scope="module")
def province():
    return build_province(7)


@pytest.fixture(scope="module")
def records(province) -> dict[str, list[dict]]:
    feed = Feed(province, 7, START, intensity=INTENSITY)
    return feed.advance(DAYS * 86_400)


@pytest.fixture(scope="module")
def flat(records) -> list[tuple[str, dict]]:
    return [(bank, record) for bank, items in records.items() for record in items]


def _time(record: dict) -> datetime:
    return parse_time(record.get("booked_at") or record["as_of"])


# -- the province ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_province_and_another_seed_another():
    assert build_province(7) == build_province(7)
    assert build_province(7).reference_payloads() == build_province(7).reference_payloads()
    assert build_province(8).reference_payloads() != build_province(7).reference_payloads()


def test_every_institution_type_is_present_even_in_a_small_province():
    for seed in range(5):
        small = build_province(seed, institutions=len(InstitutionType))
        assert {inst.type for inst in small.institutions} == set(InstitutionType)
    with pytest.raises(ValueError):
        build_province(1, institutions=len(InstitutionType) - 1)


def test_region_prefixes_select_proper_subsets(province):
    regions = [inst.region for inst in province.institutions]
    assert all(region.startswith("22") and len(region) == 6 for region in regions)
    for prefix in ("2201", "2202"):
        chosen = [r for r in regions if r.startswith(prefix)]
        assert 0 < len(chosen) < len(regions)


def test_reference_items_convert_into_the_schema_types(province):
    payloads = province.reference_payloads()
    assert set(payloads) == set(REFERENCE_KINDS)
    for path, kind in REFERENCE_KINDS.items():
        items = payloads[path]
        assert items
        for item in items:
            msgspec.convert(item, kind.type)
        # And through JSON, as the API receives them.
        msgspec.json.decode(msgspec.json.encode(items), type=list[kind.type])
    ids = [item[kind.key] for path, kind in REFERENCE_KINDS.items() for item in payloads[path]]
    assert len(ids) == len(set(ids))


def test_institutions_have_valid_uscc_names_and_scope(province):
    for inst in province.institutions:
        assert isinstance(inst, Institution)
        assert re.fullmatch(r"[0-9A-Z]{18}", inst.uscc)
        assert inst.uscc[-1] == uscc_check_char(inst.uscc[:17])
        assert inst.uscc[2:8] == inst.region
        assert inst.name.endswith("有限公司") and inst.business_scope and inst.status == "active"
    assert len({inst.uscc for inst in province.institutions}) == len(province.institutions)


def test_accounts_have_the_roles_each_institution_needs(province):
    assert len(province.bank_codes) >= 3
    for inst in province.institutions:
        iid = inst.institution_id
        assert province.accounts_of(iid, AccountRole.own_operating)
        custody = province.accounts_of(iid, AccountRole.customer_custody)
        assert len(custody) == (1 if inst.type in CUSTODY_TYPES else 0)
        reserves = province.accounts_of(iid, AccountRole.payment_reserve)
        if inst.type is InstitutionType.payment:
            assert len({province.account_by_id[a].bank_code for a in reserves}) >= 2
        else:
            assert not reserves
        if inst.type in CUSTODY_TYPES:
            assert province.accounts_of(iid, AccountRole.borrower)
            assert province.accounts_of(iid, AccountRole.investor)
    assert province.accounts_of(None, AccountRole.investor), "investors tied to no platform"
    assert all(isinstance(a, Account) for a in province.accounts)
    # Investors and borrowers bank everywhere.
    for role in (AccountRole.investor, AccountRole.borrower):
        banks = {a.bank_code for a in province.accounts if a.role is role}
        assert banks == set(province.bank_codes)


def test_related_parties_list_their_related_party_accounts(province):
    relations_by_institution = defaultdict(set)
    for party in province.related_parties:
        assert isinstance(party, RelatedParty)
        relations_by_institution[party.institution_id].add(party.relation.value)
        assert party.accounts
        for account_id in party.accounts:
            account = province.account_by_id[account_id]
            assert account.role is AccountRole.related_party
            assert account.institution_id == party.institution_id
    for inst in province.institutions:
        assert {"actual_controller", "shareholder", "executive"} <= relations_by_institution[
            inst.institution_id
        ]


def test_products_promise_no_more_than_their_projects_pay(province):
    assert province.products
    for product in province.products:
        assert isinstance(product, Product)
        inst = province.institution_by_id[product.institution_id]
        assert inst.type in CUSTODY_TYPES
        assert (
            Decimal(product.declared_annual_yield)
            < Decimal(product.underlying_project_rate)
            < Decimal("0.138")
        )
        assert product.term_days >= product.underlying_term_days
        assert parse_time(product.sale_start) <= START <= parse_time(product.sale_end)
        assert product.sale_start.endswith("+08:00")
        private = inst.type is not InstitutionType.p2p_lending
        assert product.investor_cap == (200 if private else None)
    # Private products can never be sold to more investors than the cap.
    for pool in province.investor_pools.values():
        assert len(pool) < 200


@pytest.mark.parametrize("seed", range(1, 26))
def test_normal_products_raise_no_excess_return_or_mismatch_signal(seed):
    """Whatever the seed: yields covered and under four times the LPR, no robust-z outlier among
    the products of the same institution type (3.0 at most, the rule flags above 3.5), terms not
    split."""
    province = build_province(seed)
    lpr_cap = Fraction("0.030") * 4
    by_type: dict[InstitutionType, list[Fraction]] = defaultdict(list)
    for product in province.products:
        by_type[province.institution_by_id[product.institution_id].type].append(
            Fraction(product.declared_annual_yield)
        )
        assert Fraction(product.declared_annual_yield) < Fraction(product.underlying_project_rate)
        assert Fraction(product.declared_annual_yield) < lpr_cap
        assert product.term_days >= product.underlying_term_days * Fraction(1, 2)
    for yields in by_type.values():
        mid = median(yields)
        mad = median([abs(y - mid) for y in yields])
        if mad:
            assert max(yields) <= mid + 3 * Fraction("1.4826") * mad


# -- the feed -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_records_and_another_seed_others(province, records):
    again = Feed(province, 7, START, intensity=INTENSITY).advance(DAYS * 86_400)
    assert again == records
    first_hours = Feed(province, 7, START, intensity=INTENSITY).advance(6 * 3600)
    assert Feed(province, 8, START, intensity=INTENSITY).advance(6 * 3600) != first_hours


def test_how_time_is_sliced_does_not_change_the_records(province):
    whole = Feed(province, 3, START, intensity=INTENSITY).advance(3 * 3600)
    sliced_feed = Feed(province, 3, START, intensity=INTENSITY)
    sliced: dict[str, list[dict]] = defaultdict(list)
    slices = [45.0] * 4 + [600.0, 1234.5] + [90.0] * 97 + [55.5]
    assert sum(slices) == 3 * 3600
    for seconds in slices:
        for bank, items in sliced_feed.advance(seconds).items():
            sliced[bank].extend(items)
    assert sliced_feed.clock == START + timedelta(hours=3)
    assert dict(sliced) == whole


def test_every_record_decodes_into_the_contract_types(flat):
    decoder = msgspec.json.Decoder(Transaction | Balance)
    kinds = Counter()
    for _, record in flat:
        decoded = decoder.decode(msgspec.json.encode(record))
        kinds[type(decoded).__name__] += 1
        assert record.get("currency") == "CNY"
        stamp = record.get("booked_at") or record["as_of"]
        assert stamp.endswith("+08:00")
    assert kinds["Transaction"] > 1000 and kinds["Balance"] > 50


def test_each_bank_reports_only_accounts_it_holds(province, records):
    assert set(records) <= set(province.bank_codes)
    for bank, items in records.items():
        held = province.accounts_at(bank)
        assert all(record["account_id"] in held for record in items)


def test_record_ids_are_unique_per_bank_and_records_come_in_time_order(records):
    for items in records.values():
        ids = [record["record_id"] for record in items]
        assert len(ids) == len(set(ids))
        times = [_time(record) for record in items]
        assert times == sorted(times)


def test_amounts_are_exact_two_decimal_strings(flat):
    pattern = re.compile(r"^(0|[1-9][0-9]*)\.[0-9]{2}$")
    total_cents, total_decimal = 0, Decimal(0)
    for _, record in flat:
        if record["kind"] != "transaction":
            continue
        assert pattern.match(record["amount"]), record["amount"]
        cents = amount_to_cents(record["amount"])
        assert cents > 0
        total_cents += cents
        total_decimal += Decimal(record["amount"])
    assert Decimal(total_cents) / 100 == total_decimal


def test_snapshots_and_running_balances_reconcile_to_the_cent(province, flat):
    """Opening snapshot + credits - debits is every later snapshot and every ``balance_after``."""
    running: dict[str, Decimal] = {}
    checked = 0
    for _, record in sorted(flat, key=lambda item: _time(item[1])):
        account = record["account_id"]
        if record["kind"] == "balance":
            if account in running:
                assert running[account] == Decimal(record["balance"]), account[-4:]
                checked += 1
            running[account] = Decimal(record["balance"])
        elif account in running:
            sign = 1 if record["direction"] == "credit" else -1
            running[account] += sign * Decimal(record["amount"])
            assert Decimal(record["balance_after"]) == running[account]
    assert checked > 100


def test_balances_cover_customer_liabilities(province, flat):
    holders = {AccountRole.customer_custody, AccountRole.payment_reserve}
    seen = 0
    for _, record in flat:
        if record["kind"] != "balance":
            continue
        role = province.account_by_id[record["account_id"]].role
        if role in holders:
            assert "customer_liabilities" in record
            assert Decimal(record["balance"]) >= Decimal(record["customer_liabilities"]) >= 0
            seen += 1
        else:
            assert "customer_liabilities" not in record
    assert seen > 50


def test_business_hours_are_busier_than_the_night(flat):
    by_hour = Counter(_time(r).astimezone(BEIJING).hour for _, r in flat if r["kind"] == "transaction")
    day = sum(by_hour[h] for h in range(10, 16))
    night = sum(by_hour[h] for h in range(1, 5))
    assert day > 10 * night > 0


def test_weekends_are_quieter_than_weekdays(province):
    feed = Feed(province, 5, datetime(2026, 11, 6, tzinfo=BEIJING), intensity=600.0)  # a Friday
    friday = sum(len(items) for items in feed.advance(86_400).values())
    saturday = sum(len(items) for items in feed.advance(86_400).values())
    assert saturday < 0.7 * friday


def test_intensity_sets_the_volume(province, flat):
    feed = Feed(province, 7, START, intensity=INTENSITY)
    activity = sum(1 for _, record in flat if record["kind"] == "transaction")
    expected = DAYS * feed.expected_records_per_day() * 7 / (5 + 2 * 0.45)  # two weekdays
    assert 0.8 * expected < activity < 1.3 * expected


def test_movements_between_two_banks_appear_as_mirrored_legs(province, records):
    by_bank = {bank: items for bank, items in records.items()}
    index = defaultdict(list)
    for bank, items in by_bank.items():
        for record in items:
            if record["kind"] == "transaction":
                index[(bank, record["account_id"], record["booked_at"], record["amount"])].append(record)
    cross_bank_instructed = 0
    for bank, items in by_bank.items():
        for record in items:
            if record["kind"] != "transaction":
                continue
            other = province.account_by_id.get(record["counterparty_account"])
            if other is None:
                assert record["counterparty_bank"] not in province.bank_codes
                continue
            assert other.bank_code == record["counterparty_bank"]
            key = (other.bank_code, other.account_id, record["booked_at"], record["amount"])
            mirrors = [
                m for m in index[key]
                if m["counterparty_account"] == record["account_id"] and m["direction"] != record["direction"]
            ]  # fmt: skip
            assert mirrors, "a movement between monitored accounts shows on both of them"
            mirror = mirrors[0]
            assert mirror.get("instruction_id") == record.get("instruction_id")
            assert mirror.get("product_id") == record.get("product_id")
            if other.bank_code != bank:
                assert mirror["record_id"] != record["record_id"]
                if record.get("instruction_id"):
                    cross_bank_instructed += 1
    assert cross_bank_instructed > 20


def test_normal_activity_keeps_customer_money_where_it_belongs(province, flat):
    related = {a for party in province.related_parties for a in party.accounts}
    for _, record in flat:
        if record["kind"] != "transaction":
            continue
        role = province.account_by_id[record["account_id"]].role
        counterparty = province.account_by_id.get(record["counterparty_account"])
        if (
            role in (AccountRole.customer_custody, AccountRole.payment_reserve)
            and record["direction"] == "debit"
        ):
            assert record.get("instruction_id"), "customer money leaves only on an instruction"
            assert record["counterparty_account"] not in related
        if role is AccountRole.own_operating and record["direction"] == "credit" and counterparty is not None:
            assert counterparty.role not in (AccountRole.investor, AccountRole.borrower)
        if (
            role is AccountRole.customer_custody
            and record["direction"] == "credit"
            and counterparty is not None
        ):
            assert counterparty.role in (AccountRole.investor, AccountRole.borrower)


def test_private_products_stay_under_their_investor_cap(province, flat):
    caps = {p.product_id: p.investor_cap for p in province.products if p.investor_cap}
    investors = defaultdict(set)
    for _, record in flat:
        if (
            record["kind"] == "transaction"
            and record.get("product_id") in caps
            and record["direction"] == "credit"
        ):
            if province.account_by_id[record["account_id"]].role is AccountRole.customer_custody:
                investors[record["product_id"]].add(record["counterparty_account"])
    assert investors
    assert all(len(found) <= caps[product] for product, found in investors.items())


def test_every_kind_of_normal_activity_occurs(flat):
    purposes = Counter(record.get("purpose") for _, record in flat if record["kind"] == "transaction")
    for purpose in ("出借资金充值", "借款放款", "借款人还款", "出借本息回款", "平台服务费", "账户充值",
                    "商户结算款", "余额提现", "手续费收入划转"):  # fmt: skip
        assert purposes[purpose] > 0, purpose
    channels = Counter(record["channel"] for _, record in flat if record["kind"] == "transaction")
    assert {"INTERNAL", "IBPS", "BEPS", "HVPS", "UNIONPAY", "NETSUNION"} <= set(channels)


def test_payroll_runs_on_pay_day(province):
    feed = Feed(province, 7, datetime(2026, 11, 13, 9, 0, tzinfo=BEIJING), intensity=100.0)  # Friday 13th
    records = [r for items in feed.advance(2 * 3600).values() for r in items]
    salaries = [r for r in records if r.get("purpose") == "工资"]
    assert salaries and all(r["booked_at"] == "2026-11-13T10:00:00+08:00" for r in salaries)


def test_batches_are_bounded_unique_and_valid(province, records):
    feed = Feed(province, 7, START, intensity=INTENSITY)
    batches = list(feed.batches(records, max_records=500)) + list(feed.batches(records, max_records=500))
    ids = [batch["batch_id"] for batch in batches]
    assert len(ids) == len(set(ids))
    total = 0
    for batch in batches:
        assert 0 < len(batch["records"]) <= 500
        assert batch["batch_id"].startswith(feed.run_id)
        decoded = msgspec.json.decode(msgspec.json.encode(batch), type=BatchSchema)
        assert all(
            province.account_by_id[r.account_id].bank_code == decoded.bank_code for r in decoded.records
        )
        total += len(batch["records"])
    assert total == 2 * sum(len(items) for items in records.values())


def test_write_files_writes_reference_and_batches(tmp_path, province):
    written = write_files(province, tmp_path, hours=3, intensity=1000.0, batch_records=100)
    for path in REFERENCE_KINDS:
        items = msgspec.json.decode((tmp_path / "reference" / f"{path}.json").read_bytes())
        assert len(items) == len(province.reference_payloads()[path])
    lines = 0
    for bank in province.bank_codes:
        for line in (tmp_path / "batches" / f"{bank}.jsonl").read_bytes().splitlines():
            batch = msgspec.json.decode(line, type=BatchSchema)
            assert batch.bank_code == bank and len(batch.records) <= 100
            lines += 1
    assert lines == written.batches > 0
    assert written.simulated_until == "2026-11-02T03:00:00+08:00"
    assert (tmp_path / "labels.jsonl").exists()
    again = write_files(province, tmp_path / "again", hours=3, intensity=1000.0, batch_records=100)
    assert again.records == written.records


# -- metrics scraping -----------------------------------------------------------------------


def test_processed_counter_is_summed_over_labels():
    text = "\n".join(
        [
            "# HELP fundwatch_records_processed_total Records through the detectors.",
            "# TYPE fundwatch_records_processed_total counter",
            'fundwatch_records_processed_total{kind="transaction",worker="a"} 1200.0',
            'fundwatch_records_processed_total{kind="balance",note="a } in quotes"} 34',
            "fundwatch_records_processed_total 6 1700000000000",
            'fundwatch_records_processed_created{kind="transaction"} 1.7e9',
            "fundwatch_records_processed_total_extra 999",
            "other_metric 5",
        ]
    )
    assert parse_metric_total(text) == 1240.0
    assert parse_metric_total("other_metric 5\n") == 0
    assert parse_metric_total("") == 0


def test_a_province_of_hundreds_of_institutions_is_built_with_distinct_names():
    # the two-character brands run out near 200 institutions; the builder numbers them from then on
    province = build_province(3, 300)
    names = [inst.name for inst in province.institutions]
    assert len(names) == 300 and len(set(names)) == 300
    assert len({a.account_id for a in province.accounts}) == len(province.accounts) > 15_000
