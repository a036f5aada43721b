"""变相跨行清算: a payment institution connected to several banks that moves its customers' money
between banks through its own accounts (a customer pays in at bank A, the same amount is paid out
at bank B) instead of through the central bank's interbank clearing system or a licensed clearing
institution (DOMAIN.md; 《方案》二(五) "连接多家银行系统，变相开展跨行清算业务；未通过人民银行跨行
清算系统或具有合法资质的清算机构开展跨行支付业务").

Scope: institutions of type ``payment`` only (``CLEARING_TYPES``); one finding per institution and
Beijing day, key ``<institution_id>:<YYYY-MM-DD>``. The records are those of the institution's
``customer_custody``, ``payment_reserve`` and ``own_operating`` accounts; only CNY counts. The bank
of a record is the ``bank_code`` of the institution's account it is booked on.

- A customer credit: a CREDIT on one of the institution's accounts whose counterparty is not one
  of the institution's accounts (an account of this institution with one of the roles above).
- A payee debit: a DEBIT on one of its accounts whose counterparty is not one of its accounts.
- A customer credit c and a payee debit d MIRROR each other when they are booked at different
  banks, |amount(d) - amount(c)| <= ``amount_tolerance`` x amount(c) (``"0.00"``: equal cents),
  and |time(d) - time(c)| <= ``max_lag_seconds`` (either may come first).

A credit (debit) is *mirrored* when at least one debit (credit) mirrors it. This is a relation, not
a one-to-one matching: the set of mirrored credits and debits is a function of the set of records,
whatever their order. The institution moving its own money between its banks (counterparty its
own account) is neither a customer credit nor a payee debit; a merchant's settlement (one debit
summing many payments) mirrors no single credit; mirrored amounts at the SAME bank are an ordinary
in-and-out, not interbank.

Rule. Day D fires when the distinct customers (payers) of the mirrored credits booked on D number
at least ``min_customers``. Severity: medium; high from ``HIGH_MULTIPLE`` x ``min_customers``
customers; critical from ``CRITICAL_MULTIPLE`` x. Score: customers / (``CRITICAL_MULTIPLE`` x
``min_customers``), capped at 1. ``amount_cents`` is the sum of D's mirrored credits; metrics also
give the mirrored debits booked on D (a debit just after midnight that mirrors a credit of the
evening before counts on its own day) and the banks on both sides. Evidence: the 50 largest of D's
mirrored credits and debits together (mirrored pairs have near-equal amounts, so mostly both legs
of the 25 largest pairs). Window: from the first to the last of D's mirrored credits and debits.

The rule apart from its explanation: ``decide`` reads a day's tallies and returns a
``DisguisedClearingSignal`` (customers, severity, score, the mirrored amounts and counts) or None;
``render`` builds the finding from it: the accounts and banks on both sides, window, evidence,
metrics and the Chinese and English sentences.

Event time: the watermark follows the banks of the institution's accounts (common.advance_sources).
A late record (its day sealed) is still judged: it mirrors, and is mirrored by, the records still
held (those of hours some record on time could still mirror), and the days it changes are judged
again, their findings ``late: true``. While a bank
of the institution's registered accounts lags (or has sent nothing yet), what the others sent is
held for it up to ``LATE_KEEP`` longer (common.hold_watermark): a bank that pushes its week after
another's still finds the other side of its mirrors. A bank later than that finds it gone (docs/
detection.md, "Known limits").

State (per institution): ``wm``, ``src``; the customer credits and payee debits not mirrored yet, and the
(time, record id) of those mirrored, both indexed by hour of event time, amount in cents and bank
(sorted lists: a lookup is a dict access and a bisection, never a scan of the day); per day, the
tallies of its mirrored credits and debits and its customers. Each record is moved from "not
mirrored" to "mirrored" at most once, and calls copy only the containers they write into (the
caller's state never changes), so a call costs O(records x (banks + log n)) with the default
tolerance (a tolerance above 0 probes at most ``PROBE_MAX`` amounts per hour, else the hour's
amounts). The indexes double as replay protection. An hour is dropped once no record that could
still be accepted (its day not sealed) can mirror it; a day's tallies likewise, so about 3 days plus
``max_lag_seconds`` while the banks are in step, up to ``LATE_KEEP`` more while one lags. A day keeps at most ``CUSTOMER_CAP`` customers (the smallest account ids, the
same whatever the order); beyond that the count reads "at least".
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from fractions import Fraction
from math import ceil, floor
from typing import Any

import msgspec

from models.detectors.common import (
    CopyOnWrite,
    advance_sources,
    beijing_date,
    cite_en,
    cite_zh,
    fraction_of,
    hold_watermark,
    mask,
    money,
    open_from,
    percent,
    record_ids,
    role_en,
    role_zh,
    score_of,
    tally,
    yuan_en,
    yuan_zh,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext, _text
from models.findings import Finding
from models.windows import DAY, HOUR, beijing_day_start
from schemas.messages import TxnRecord

NAME = "disguised_clearing"
VERSION = "1"
SCOPE = "institution"
RULE = "二(五)"
CLEARING_TYPES = frozenset({"payment"})
# The institution's own accounts: those whose records an institution-level detector sees
# (models/institution_detection.INSTITUTION_ROLES, not imported: that module imports the detectors).
INSTITUTION_ROLES = CUSTODY_ROLES | {"own_operating"}
HIGH_MULTIPLE = 3
CRITICAL_MULTIPLE = 10
CUSTOMER_CAP = 2000  # customers kept per day
PROBE_MAX = 64  # with a tolerance, amounts probed one by one up to this many, else the hour's scanned

DEFAULTS = {
    "max_lag_seconds": 3600,
    "min_customers": 20,
    "amount_tolerance": "0.00",
}

CREDIT, DEBIT = "c", "d"
_OTHER = {CREDIT: DEBIT, DEBIT: CREDIT}


def config(ctx: DetectContext, institution_id: str) -> dict[str, Any]:
    """The thresholds for the institution's own type over the module defaults."""
    return ctx.institution_config(NAME, institution_id, DEFAULTS)


def watched(ctx: DetectContext, institution_id: str) -> bool:
    institution = ctx.references.institution(institution_id)
    return institution is not None and _text(institution.get("type")) in CLEARING_TYPES


def _new_tally() -> dict[str, Any]:
    return {"c": 0, "n": 0, "t0": None, "t1": None, "top": [], "x": {}}


def empty_state() -> dict[str, Any]:
    # pend: {side: {hour: {cents: {bank: [[ts, record_id, counterparty, account], ...]}}}} not
    # mirrored yet; mir: the same with [ts, record_id] of the mirrored ones; days: per Beijing day
    # mc/md (tallies of mirrored credits/debits booked that day), cust ({payer: 1}, at most
    # CUSTOMER_CAP, the smallest ids), more (more customers than that), cmax (the largest kept
    # once CUSTOMER_CAP are kept, else None)
    return {"wm": None, "pend": {CREDIT: {}, DEBIT: {}}, "mir": {CREDIT: {}, DEBIT: {}}, "days": {}}


class _Folder:
    """One call's work on a copy-on-write state."""

    def __init__(self, state: dict[str, Any] | None, cfg: dict[str, Any]) -> None:
        self.w = CopyOnWrite()
        self.st = self.w.mine(dict(state or empty_state()))
        self.lag = max(0, int(cfg["max_lag_seconds"]))
        self.tol = max(Fraction(0), fraction_of(cfg["amount_tolerance"]))
        self.exact = self.tol == 0
        self.crowded: set[str] = set()  # days that took customers in this call
        self.late_days: set[str] = set()  # days with a late record in this call

    # -- the index ------------------------------------------------------------------------

    def _list(self, table: str, side: str, hour: int, cents: int, bank: str) -> list[Any] | None:
        return self.st[table][side].get(str(hour), {}).get(str(cents), {}).get(bank)

    def known(self, side: str, ts: int, cents: int, bank: str, record_id: str) -> bool:
        """Whether this record is in the index already (a replay)."""
        hour = ts - ts % HOUR
        for table in ("pend", "mir"):
            entries = self._list(table, side, hour, cents, bank)
            if entries:
                i = bisect_left(entries, [ts, record_id])
                if i < len(entries) and entries[i][0] == ts and entries[i][1] == record_id:
                    return True
        return False

    def _insert(self, table: str, side: str, ts: int, cents: int, bank: str, entry: list[Any]) -> None:
        hour = ts - ts % HOUR
        node = self.w.path(self.st, table, side, str(hour), str(cents))
        insort(self.w.list_in(node, bank), entry)

    def _amounts(self, side: str, cents: int, shard: dict[str, Any]) -> list[str]:
        """The amounts in an hour of the other side that ``cents`` on ``side`` can mirror."""
        if self.exact:
            key = str(cents)
            return [key] if key in shard else []
        tol = self.tol
        if side == CREDIT:  # debits d with |d - c| <= tol * c
            lo, hi = ceil(cents * (1 - tol)), floor(cents * (1 + tol))
        else:  # credits c with |d - c| <= tol * c: d / (1 + tol) <= c <= d / (1 - tol)
            lo = ceil(cents / (1 + tol))
            hi = floor(cents / (1 - tol)) if tol < 1 else None
        if hi is not None and hi - lo + 1 <= min(PROBE_MAX, len(shard)):
            return [key for key in map(str, range(lo, hi + 1)) if key in shard]
        return sorted((k for k in shard if lo <= int(k) and (hi is None or int(k) <= hi)), key=int)

    def mirror(self, side: str, ts: int, cents: int, bank: str) -> bool:
        """Whether a record on ``side`` is mirrored by one already in the index; the records of the
        other side it mirrors that were not mirrored yet are moved to mirrored and tallied."""
        other = _OTHER[side]
        lo_t, hi_t = ts - self.lag, ts + self.lag
        low, high = [lo_t], [hi_t + 1]
        mirrored, pending = self.st["mir"][other], self.st["pend"][other]
        found = False
        for hour in range(lo_t - lo_t % HOUR, hi_t + 1, HOUR):
            hour_key = str(hour)
            shard = None if found else mirrored.get(hour_key)
            if shard:  # any mirrored one will do: nothing to move there
                for key in self._amounts(side, cents, shard):
                    by_bank = shard[key]
                    if any(
                        b != bank and bisect_left(e, low) < bisect_left(e, high) for b, e in by_bank.items()
                    ):
                        found = True
                        break
            shard = pending.get(hour_key)
            if not shard:
                continue
            for key in self._amounts(side, cents, shard):
                by_bank = shard[key]
                for other_bank in sorted(by_bank):
                    if other_bank == bank:
                        continue
                    entries = by_bank[other_bank]
                    i, j = bisect_left(entries, low), bisect_left(entries, high)
                    if i < j:
                        found = True
                        # reads above go on in the caller's containers: a move replaces only the
                        # containers on its own path, and each (hour, amount, bank) is seen once
                        self._promote(other, hour, key, other_bank, i, j)
        return found

    def _promote(self, side: str, hour: int, key: str, bank: str, i: int, j: int) -> None:
        """Move pending entries [i, j) of one list to mirrored, and tally them on their days."""
        hour_node = self.w.path(self.st, "pend", side, str(hour))
        amount_node = self.w.dict_in(hour_node, key)
        entries = self.w.list_in(amount_node, bank)
        moved = entries[i:j]
        del entries[i:j]
        if not entries:
            del amount_node[bank]
            if not amount_node:
                del hour_node[key]
                if not hour_node:
                    del self.w.dict_in(self.st["pend"], side)[str(hour)]
        cents = int(key)
        for ts, record_id, counterparty, account in moved:
            self._insert("mir", side, ts, cents, bank, [ts, record_id])
            self.tally(side, ts, cents, record_id, counterparty, account)

    def add(self, side: str, ts: int, cents: int, bank: str, record_id: str, counterparty: str, account: str):
        """A new customer credit or payee debit."""
        if self.mirror(side, ts, cents, bank):
            self._insert("mir", side, ts, cents, bank, [ts, record_id])
            self.tally(side, ts, cents, record_id, counterparty, account)
        else:
            self._insert("pend", side, ts, cents, bank, [ts, record_id, counterparty, account])

    # -- the days -------------------------------------------------------------------------

    def tally(self, side: str, ts: int, cents: int, record_id: str, counterparty: str, account: str) -> None:
        days = self.w.dict_in(self.st, "days")
        key = str(beijing_day_start(ts))
        if key not in days:
            days[key] = self.w.mine(
                {"mc": _new_tally(), "md": _new_tally(), "cust": {}, "more": False, "cmax": None}
            )
        day = self.w.dict_in(days, key)
        tally(self.w, self.w.dict_in(day, "m" + side), cents, ts, record_id, account)
        if side == CREDIT and counterparty:
            self._customer(key, day, counterparty)

    def _customer(self, key: str, day: dict[str, Any], payer: str) -> None:
        if payer in day["cust"]:
            return
        if day["cmax"] is not None and payer > day["cmax"]:
            day["more"] = True  # beyond the CUSTOMER_CAP smallest: counted as "more"
            return
        self.w.dict_in(day, "cust")[payer] = 1
        self.crowded.add(key)

    def late(self, ts: int) -> None:
        """A late record: its day marked as judged with late records."""
        self.late_days.add(str(beijing_day_start(ts)))

    def finish(self) -> None:
        """Keep the CUSTOMER_CAP smallest customer ids of the days that took customers in; mark
        the days late records were tallied on."""
        for key in self.late_days:
            if key in self.st["days"]:
                day = self.w.dict_in(self.w.dict_in(self.st, "days"), key)
                day["ln"] = day.get("ln", 0) + 1
        for key in self.crowded:
            day = self.st["days"][key]
            customers = day["cust"]
            if len(customers) > CUSTOMER_CAP:
                keep = heapq.nsmallest(CUSTOMER_CAP, customers)
                day["cust"] = self.w.mine(dict.fromkeys(keep, 1))
                day["more"] = True
                day["cmax"] = keep[-1]
            elif len(customers) == CUSTOMER_CAP:
                day["cmax"] = max(customers)

    def prune(self, wm: int | None) -> None:
        """Drop hours and days that no record still accepted could mirror (``wm``: the
        watermark held back to the institution's slowest bank, common.hold_watermark)."""
        start = open_from(wm)
        if start is None:
            return
        for table in ("pend", "mir"):
            for side in (CREDIT, DEBIT):
                hours = self.st[table][side]
                stale = [h for h in hours if int(h) + HOUR - 1 + self.lag < start]
                if stale:
                    hours = self.w.path(self.st, table, side)
                    for h in stale:
                        del hours[h]
        stale = [d for d in self.st["days"] if int(d) + DAY - 1 + self.lag < start]
        if stale:
            days = self.w.dict_in(self.st, "days")
            for d in stale:
                del days[d]
        if "late" in self.st:  # late ids of states written before they left the state
            del self.st["late"]


def _fold_records(
    ctx: DetectContext, fold: _Folder, institution_id: str, records: list[TxnRecord]
) -> tuple[list[TxnRecord], set[int]]:
    """Index one message's customer credits and payee debits: the institution's records (the
    watermark's sources), and the days whose mirrored legs they can change."""
    st = fold.st
    accounts: dict[str, dict[str, Any] | None] = {}

    def own(account_id: str | None) -> dict[str, Any] | None:
        """The institution's own account (INSTITUTION_ROLES) with that id, else None."""
        if not account_id:
            return None
        if account_id not in accounts:
            account = ctx.account(account_id)
            ok = (
                account is not None
                and _text(account.get("institution_id")) == institution_id
                and _text(account.get("role")) in INSTITUTION_ROLES
            )
            accounts[account_id] = account if ok else None
        return accounts[account_id]

    start = open_from(st["wm"])
    mine: list[TxnRecord] = []
    touched: set[int] = set()
    for record in records:
        account = own(record.account_id) if isinstance(record, TxnRecord) else None
        if account is None:
            continue
        mine.append(record)
        ts, counterparty = record.booked_at, record.counterparty_account
        bank = str(account.get("bank_code") or "")
        if record.currency != "CNY" or not bank:
            continue
        if counterparty == record.account_id or own(counterparty) is not None:
            continue  # the institution's own money moving between its accounts
        side = CREDIT if record.credit else DEBIT
        late = start is not None and ts < start
        # the days whose mirrored credits or debits this record can change
        touched.update(range(beijing_day_start(ts - fold.lag), ts + fold.lag + 1, DAY))
        if fold.known(side, ts, record.amount_cents, bank, record.record_id):
            continue
        if late:
            fold.late(ts)
        fold.add(side, ts, record.amount_cents, bank, record.record_id, counterparty or "", record.account_id)
    return mine, touched


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one payment institution; return the new state and the finding
    of every day the message's records could change that fires."""
    if not watched(ctx, institution_id):
        return {}, []
    cfg = config(ctx, institution_id)
    fold = _Folder(state, cfg)
    st = fold.st
    mine, touched = _fold_records(ctx, fold, institution_id, records)
    fold.finish()
    wm = advance_sources(st, ctx, mine)
    if wm is None:
        return {}, []  # nothing of this institution seen yet (a review): no state to keep

    findings = []
    for day in sorted(touched):
        finding = _evaluate(ctx, st, institution_id, cfg, day)
        if finding is not None:
            findings.append(finding)
    fold.prune(hold_watermark(st, ctx, institution_id))
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The finding of every day still held (its mirrors can still change) that fires."""
    if not state or not watched(ctx, institution_id):
        return []
    cfg = config(ctx, institution_id)
    findings = (
        _evaluate(ctx, state, institution_id, cfg, int(day)) for day in sorted(state["days"], key=int)
    )
    return [f for f in findings if f is not None]


def _by_amount(per_account: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(per_account.items(), key=lambda item: (-item[1], item[0]))


def _banks(ctx: DetectContext, per_account: dict[str, int]) -> dict[str, int]:
    banks: dict[str, int] = {}
    for account_id, cents in per_account.items():
        bank = str((ctx.account(account_id) or {}).get("bank_code") or "")
        banks[bank] = banks.get(bank, 0) + cents
    return dict(sorted(banks.items()))


def _lag_text(seconds: int) -> tuple[str, str]:
    if seconds % 60 == 0:
        return f"{seconds // 60}分钟", f"{seconds // 60} minute(s)"
    return f"{seconds}秒", f"{seconds} second(s)"


class DisguisedClearingSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a day of mirrored payments fires."""

    day: int  # the Beijing day's start, epoch seconds
    customers: int  # distinct payers of the day's mirrored credits (as kept)
    customers_capped: bool  # more customers than CUSTOMER_CAP: the count reads "at least"
    min_customers: int
    severity: str
    score: float
    mirrored_credit_cents: int
    mirrored_credit_count: int
    mirrored_debit_cents: int
    mirrored_debit_count: int


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    entry = st["days"].get(str(day))
    signal = None if entry is None else decide(cfg, day, entry)
    return None if signal is None else render(signal, ctx, institution_id, cfg, entry)


def decide(cfg: dict[str, Any], day: int, entry: dict[str, Any]) -> DisguisedClearingSignal | None:
    """The rule: at least ``min_customers`` distinct customers behind the day's mirrored credits."""
    min_customers = max(1, int(cfg["min_customers"]))
    customers = len(entry["cust"])
    if customers < min_customers:
        return None
    if customers >= CRITICAL_MULTIPLE * min_customers:
        severity = "critical"
    elif customers >= HIGH_MULTIPLE * min_customers:
        severity = "high"
    else:
        severity = "medium"
    credits, debits = entry["mc"], entry["md"]
    return DisguisedClearingSignal(
        day=day,
        customers=customers,
        customers_capped=entry["more"],
        min_customers=min_customers,
        severity=severity,
        score=score_of(customers, CRITICAL_MULTIPLE * min_customers),
        mirrored_credit_cents=credits["c"],
        mirrored_credit_count=credits["n"],
        mirrored_debit_cents=debits["c"],
        mirrored_debit_count=debits["n"],
    )


def render(
    signal: DisguisedClearingSignal,
    ctx: DetectContext,
    institution_id: str,
    cfg: dict[str, Any],
    entry: dict[str, Any],
) -> Finding:
    """The finding of a day that fires: accounts and banks on both sides, window, evidence, metrics
    and the sentences."""
    credits, debits = entry["mc"], entry["md"]
    credit_accounts, debit_accounts = _by_amount(credits["x"]), _by_amount(debits["x"])
    accounts = tuple(dict.fromkeys(a for a, _ in [*credit_accounts, *debit_accounts]))
    credit_banks, debit_banks = _banks(ctx, credits["x"]), _banks(ctx, debits["x"])
    tallies = [t for t in (credits, debits) if t["n"]]
    date = beijing_date(signal.day)
    zh, en = _sentences(signal, ctx, cfg, accounts[0], len(credit_accounts), credit_banks, debit_banks)
    institution = ctx.references.institution(institution_id) or {}
    return Finding(
        typology=NAME,
        key=f"{institution_id}:{date}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=signal.mirrored_credit_cents,
        window_start=min(t["t0"] for t in tallies),
        window_end=max(t["t1"] for t in tallies),
        record_ids=record_ids(tallies),
        metrics={
            "day": date,
            "customers": signal.customers,
            "customers_capped": signal.customers_capped,
            "late": entry.get("ln", 0) > 0,
            "mirrored_credits": money(signal.mirrored_credit_cents),
            "mirrored_credit_count": signal.mirrored_credit_count,
            "mirrored_debits": money(signal.mirrored_debit_cents),
            "mirrored_debit_count": signal.mirrored_debit_count,
            "credit_banks": {bank: money(c) for bank, c in credit_banks.items()},
            "debit_banks": {bank: money(c) for bank, c in debit_banks.items()},
            "credit_accounts": {a: money(c) for a, c in credit_accounts},
            "debit_accounts": {a: money(c) for a, c in debit_accounts},
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={
            "region": str(institution.get("region") or ""),
            "institution_type": _text(institution.get("type")),
        },
    )


def _sentences(
    signal: DisguisedClearingSignal,
    ctx: DetectContext,
    cfg: dict[str, Any],
    main: str,
    credit_account_count: int,
    credit_banks: dict[str, int],
    debit_banks: dict[str, int],
) -> tuple[str, str]:
    """The Chinese and English sentences of a day that fires; ``main``: its largest account."""
    lag = max(0, int(cfg["max_lag_seconds"]))
    tol = fraction_of(cfg["amount_tolerance"])
    date = beijing_date(signal.day)
    role = ctx.role(main)
    lag_zh, lag_en = _lag_text(lag)
    customers = signal.customers
    credit_count, credit_cents = signal.mirrored_credit_count, signal.mirrored_credit_cents
    others_zh = f"等{credit_account_count}个账户" if credit_account_count > 1 else ""
    others_en = f" and {credit_account_count - 1} other account(s)" if credit_account_count > 1 else ""
    who_zh = f"至少{customers}" if signal.customers_capped else str(customers)
    who_en = f"at least {customers}" if signal.customers_capped else str(customers)
    same_zh = "相同金额" if tol <= 0 else f"金额相差不超过{percent(tol)}"
    same_en = "the same amount" if tol <= 0 else f"an amount within {percent(tol)}"
    banks_zh = "、".join(credit_banks)
    banks_en = ", ".join(credit_banks)
    if signal.mirrored_debit_count:
        debit_count, debit_cents = signal.mirrored_debit_count, signal.mirrored_debit_cents
        out_zh = (
            f"（当日在{'、'.join(debit_banks)}银行付出此类款项{debit_count}笔、合计{yuan_zh(debit_cents)}）"
        )
        out_en = (
            f" ({debit_count} such payment(s) totalling {yuan_en(debit_cents)} on that day at bank(s) "
            f"{', '.join(debit_banks)})"
        )
    else:
        out_zh = out_en = ""
    zh = (
        f"{date}（北京时间），该支付机构在{banks_zh}银行的{role_zh(role)}{mask(main)}{others_zh}收到"
        f"{who_zh}个客户的{credit_count}笔付款、合计{yuan_zh(credit_cents)}，每一笔都在{lag_zh}内由该机构"
        f"在另一家银行的账户向外付出{same_zh}的款项{out_zh}；资金未经人民银行跨行清算系统或合法清算机构，"
        f"而经该机构在多家银行的账户一收一付，涉嫌连接多家银行系统变相开展跨行清算{cite_zh(RULE)}。"
    )
    en = (
        f"On {date} (Beijing time) the payment institution's {role_en(role)} {mask(main)}{others_en} "
        f"at bank(s) {banks_en} received {credit_count} payment(s) totalling {yuan_en(credit_cents)} "
        f"from {who_en} customer(s), each mirrored within {lag_en} by a payment of {same_en} from one "
        f"of its accounts at another bank{out_en}: money moved between banks through the "
        f"institution's own accounts instead of licensed interbank clearing, suspected disguised "
        f"interbank clearing {cite_en(RULE)}."
    )
    return zh, en
