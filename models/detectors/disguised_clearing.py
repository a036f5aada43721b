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
``render`` builds the finding from it: the accounts and banks on both sides, window and evidence
here, the metrics and the Chinese and English sentences in models/detectors/
disguised_clearing_text.py. The state and the index records are folded into are models/detectors/
disguised_clearing_days.py.

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
``max_lag_seconds`` while the banks are in step, up to ``LATE_KEEP`` more while one lags. The
unmatched legs of the hours held only for a lagging bank are frozen (models/detectors/frozen.py):
written as they were, unchanged until that bank's late records thaw them. A day keeps at most
``CUSTOMER_CAP`` customers (the smallest account ids, the same whatever the order); beyond that the
count reads "at least".
"""

from __future__ import annotations

from typing import Any

import msgspec

from models.detectors.common import (
    advance_sources,
    beijing_date,
    hold_watermark,
    open_from,
    record_ids,
    score_of,
)
from models.detectors.context import DetectContext, _text
from models.detectors.disguised_clearing_days import CREDIT, DEBIT, Folder
from models.detectors.disguised_clearing_text import RULE, metrics, sentences
from models.detectors.institution_messages import MessageView, OwnAccounts
from models.findings import Finding
from models.windows import DAY, beijing_day_start
from schemas.messages import TxnRecord

NAME = "disguised_clearing"
VERSION = "1"
SCOPE = "institution"
CLEARING_TYPES = frozenset({"payment"})
HIGH_MULTIPLE = 3
CRITICAL_MULTIPLE = 10

DEFAULTS = {
    "max_lag_seconds": 3600,
    "min_customers": 20,
    "amount_tolerance": "0.00",
}


def config(ctx: DetectContext, institution_id: str) -> dict[str, Any]:
    """The thresholds for the institution's own type over the module defaults."""
    return ctx.institution_config(NAME, institution_id, DEFAULTS)


def watched(ctx: DetectContext, institution_id: str) -> bool:
    institution = ctx.references.institution(institution_id)
    return institution is not None and _text(institution.get("type")) in CLEARING_TYPES


def _fold_records(
    fold: Folder, own: OwnAccounts, records: list[TxnRecord]
) -> tuple[list[TxnRecord], set[int]]:
    """Index one message's customer credits and payee debits: the institution's records (the
    watermark's sources), and the days whose mirrored legs they can change."""
    st = fold.st

    start = open_from(st["wm"])
    mine: list[TxnRecord] = []
    touched: set[int] = set()
    for record in records:
        account = own[record.account_id] if isinstance(record, TxnRecord) else None
        if account is None:
            continue
        mine.append(record)
        ts, counterparty = record.booked_at, record.counterparty_account
        bank = account[1]
        if record.currency != "CNY" or not bank:
            continue
        if counterparty == record.account_id or own[counterparty] is not None:
            continue  # the institution's own money moving between its accounts
        side = CREDIT if record.credit else DEBIT
        late = start is not None and ts < start
        # the days whose mirrored credits or debits this record can change
        touched.update(range(beijing_day_start(ts - fold.lag), ts + fold.lag + 1, DAY))
        fold.fold(
            side, ts, record.amount_cents, bank, record.record_id, counterparty or "", record.account_id, late
        )
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
    return _judge(ctx, state, institution_id, records, OwnAccounts(ctx, institution_id))


def detect_view(
    ctx: DetectContext, state: dict[str, Any] | None, institution_id: str, view: MessageView
) -> tuple[dict[str, Any], list[Finding]]:
    """``detect`` of the message ``view`` was made of (institution_messages.view_of): its legs are
    the records of all the institution's own accounts, so it reads the view's records alone."""
    return _judge(ctx, state, institution_id, view.records, view.own)


def _judge(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    records: list[TxnRecord],
    own: OwnAccounts,
) -> tuple[dict[str, Any], list[Finding]]:
    if not watched(ctx, institution_id):
        return {}, []
    cfg = config(ctx, institution_id)
    fold = Folder(state, cfg)
    st = fold.st
    mine, touched = _fold_records(fold, own, records)
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
    fold.freeze()
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
    zh, en = sentences(signal, ctx, cfg, accounts[0], len(credit_accounts), credit_banks, debit_banks)
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
        metrics=metrics(signal, entry, credit_accounts, debit_accounts, credit_banks, debit_banks),
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
