"""自融: money raised from customers flowing to the institution's own controllers or affiliates as
"borrowers" (DOMAIN.md; 《方案》二(一) "自融自保"; 二(四) "未遵循禁止关联交易和利益输送"; other
institution types cite 三(三), monitoring of shareholders and of the use of funds).

Watched accounts: role ``customer_custody`` or ``payment_reserve``. Signal: an *instructed* debit
(it has an ``instruction_id``) whose receiving account (``counterparty_account``) belongs to one of
the same institution's related parties: role ``related_party`` of that institution, or listed in
one of its related parties' ``accounts``. An account that is the institution's own operating
account is "own", not related (fees: misappropriation's business). Uninstructed debits to a
related party are left to ``misappropriation`` (which rates them at least high), so one movement
is never reported twice.

One finding per (custody account, receiving account), key ``<account>:<counterparty>``: the
cumulative instructed outflow to that related account since the first one still remembered, when
it reaches ``min_amount``. Severity by that total: medium; ``high_amount`` or more: high;
``critical_amount`` or more: critical (these two are module defaults until thresholds.toml has
them under [self_financing]).

State (per account): ``wm`` the event-time watermark and one bucket per related counterparty
(sums, the 50 largest records as evidence). A counterparty with no
movement for ``RETENTION_DAYS`` of event time is forgotten; a later movement starts a new total
under the same key. Bounded by the number of related accounts.
"""

from __future__ import annotations

from typing import Any

from models.detectors.common import (
    DAY,
    add,
    advance,
    beijing_date,
    bucket_in,
    cents_of,
    clone,
    is_late,
    is_sealed,
    own_cny_records,
    record_ids,
    score_of,
    severity_by_amount,
    top_entries,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext
from models.detectors.wording import cite_en, cite_zh, mask, money, role_en, role_zh, yuan_en, yuan_zh
from models.findings import Finding
from schemas.messages import BalanceRecord, TxnRecord

NAME = "self_financing"
VERSION = "1"
RETENTION_DAYS = 90  # a related counterparty quiet this long (event time) is forgotten

DEFAULTS = {
    "min_amount": "0.01",
    "high_amount": "100000.00",  # not in thresholds.toml yet: module default
    "critical_amount": "1000000.00",  # not in thresholds.toml yet: module default
}
RULE_BY_TYPE = {"p2p_lending": "二(一)", "asset_management": "二(四)"}
DEFAULT_RULE = "三(三)"  # others: monitoring of shareholders and the use of funds


def empty_state() -> dict[str, Any]:
    return {"wm": None, "counterparties": {}}


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; return the new state and the findings of every
    counterparty the message touched."""
    role = ctx.role(account_id)
    if role not in CUSTODY_ROLES:
        return {}, []
    institution_id = ctx.institution_id(account_id)
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_cny_records(account_id, records)
    touched: set[str] = set()
    for record in mine:
        if (
            not isinstance(record, TxnRecord)
            or record.credit
            or not record.instruction_id
            or ctx.destination(institution_id, record.counterparty_account) != "related"
        ):
            continue
        bucket = bucket_in(st["counterparties"], record.counterparty_account)
        late = is_sealed(record.booked_at, wm)  # still counted: the total is kept
        add(bucket, record.record_id, record.booked_at, record.amount_cents, late=late)
        touched.add(record.counterparty_account)
    st["wm"] = wm = advance(wm, mine, ctx.event_time_ceiling)

    cfg = ctx.config(NAME, account_id, DEFAULTS)
    findings = []
    for counterparty in sorted(touched):
        finding = _evaluate(ctx, st, account_id, role, cfg, counterparty)
        if finding is not None:
            findings.append(finding)
    st["counterparties"] = {
        cp: b for cp, b in st["counterparties"].items() if wm is None or b["t1"] + RETENTION_DAYS * DAY > wm
    }
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The findings of every counterparty remembered in ``state``."""
    role = ctx.role(account_id)
    if not state or role not in CUSTODY_ROLES:
        return []
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    findings = (_evaluate(ctx, state, account_id, role, cfg, cp) for cp in sorted(state["counterparties"]))
    return [f for f in findings if f is not None]


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], account_id: str, role: str, cfg: dict[str, Any], counterparty: str
) -> Finding | None:
    bucket = st["counterparties"].get(counterparty)
    if bucket is None or bucket["c"] < cents_of(cfg["min_amount"]):
        return None
    high, critical = cents_of(cfg["high_amount"]), cents_of(cfg["critical_amount"])
    rule = RULE_BY_TYPE.get(ctx.institution_type(account_id) or "", DEFAULT_RULE)
    total, count = bucket["c"], bucket["n"]
    first, last = beijing_date(bucket["t0"]), beijing_date(bucket["t1"])
    span_zh = first if first == last else f"{first}至{last}"
    span_en = f"on {first}" if first == last else f"from {first} to {last}"
    largest = top_entries([bucket], 1)
    counterparty_role = ctx.role(counterparty)
    return Finding(
        typology=NAME,
        key=f"{account_id}:{counterparty}",
        institution_id=ctx.institution_id(account_id) or "",
        severity=severity_by_amount(total, high, critical),
        score=score_of(total, critical),
        accounts=(account_id, counterparty),
        amount_cents=total,
        window_start=bucket["t0"],
        window_end=bucket["t1"],
        record_ids=record_ids([bucket]),
        metrics={
            "total": money(total),
            "count": count,
            "largest": money(largest[0][0] if largest else 0),
            "counterparty_role": counterparty_role or "unknown",
            "late": is_late(bucket),
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=(
            f"{role_zh(role)}{mask(account_id)}于{span_zh}按指令向本机构关联方账户{mask(counterparty)}"
            f"划出资金{count}笔，合计{yuan_zh(total)}，涉嫌自融{cite_zh(rule)}。"
        ),
        explanation_en=(
            f"The {role_en(role)} {mask(account_id)} paid {count} instructed transfer(s) totalling "
            f"{yuan_en(total)} {span_en} to {mask(counterparty)}, an account of one of the institution's "
            f"related parties: suspected self-financing {cite_en(rule)}."
        ),
        rule=rule,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )
