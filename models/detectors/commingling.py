"""未实行客户资金与自有资金分账管理: customer money and the institution's own money mixed
(DOMAIN.md; 《方案》二(一) "未实行客户资金与自有资金分账管理"; 二(四) "账户管理混乱，客户资金保障措施
不到位"; 二(二) crowdfunding custody of investors' money; other institution types cite 三(三), the
custody banks' supervision of customer-money accounts).

Two signals, both seen on the *receiving* account's credit leg, so a movement between two
monitored accounts is counted once (the payer's debit leg is not looked at):

(a) investors paying into own accounts: a credit into an ``own_operating`` account from an account
    whose role is ``investor`` (an investor of the same institution, or one tied to none);
(b) own funds into custody: a credit into a ``customer_custody`` or ``payment_reserve`` account
    from an ``own_operating`` account of the same institution.

Not commingling: an own account paid by another own account (a payment institution moving its own
money between its banks), an own account paying salaries, an instructed fee from custody to an
own account (a debit on custody, and on the own account a credit whose payer is not an investor).

One finding per (receiving account, Beijing day), key ``<account>:<YYYY-MM-DD>``, when the day's
total reaches ``min_amount``. Severity by that total: medium; ``high_amount`` or more: high;
``critical_amount`` or more: critical (module defaults until thresholds.toml has them).

State (per account): ``wm`` and one bucket per open Beijing day (sums by signal, sums by payer
for the distinct-payer count, the 50 largest records as evidence); a day is dropped
once sealed, so at most about three days are kept.
"""

from __future__ import annotations

from typing import Any

from models.detectors.common import (
    add,
    advance,
    beijing_date,
    bucket_in,
    cents_of,
    clone,
    is_expired,
    is_late,
    is_sealed,
    own_cny_records,
    record_ids,
    score_of,
    severity_by_amount,
)
from models.detectors.context import CUSTODY_ROLES, DetectContext
from models.detectors.wording import cite_en, cite_zh, mask, money, role_en, role_zh, yuan_en, yuan_zh
from models.findings import Finding
from models.windows import beijing_day_start
from schemas.messages import BalanceRecord, TxnRecord

NAME = "commingling"
VERSION = "1"

INVESTOR_IN = "investor_to_own"  # (a)
OWN_IN = "own_to_custody"  # (b)

DEFAULTS = {
    "min_amount": "0.01",
    "high_amount": "1000000.00",  # not in thresholds.toml yet: module default
    "critical_amount": "10000000.00",  # not in thresholds.toml yet: module default
}
RULE_BY_TYPE = {"p2p_lending": "二(一)", "equity_crowdfunding": "二(二)", "asset_management": "二(四)"}
DEFAULT_RULE = "三(三)"  # others: the custody banks' supervision of customer-money accounts


def empty_state() -> dict[str, Any]:
    return {"wm": None, "days": {}}


def _signal(ctx: DetectContext, role: str, institution_id: str | None, record: TxnRecord) -> str | None:
    if not record.credit:
        return None
    payer = record.counterparty_account
    if role == "own_operating":
        if ctx.role(payer) != "investor":
            return None
        payer_institution = ctx.institution_id(payer)
        return INVESTOR_IN if payer_institution in (None, "", institution_id) else None
    if role in CUSTODY_ROLES and ctx.is_own(institution_id, payer):
        return OWN_IN
    return None


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; return the new state and the findings of every
    day the message touched."""
    role = ctx.role(account_id)
    if role != "own_operating" and role not in CUSTODY_ROLES:
        return {}, []
    institution_id = ctx.institution_id(account_id)
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_cny_records(account_id, records)
    touched: set[int] = set()
    for record in mine:
        if not isinstance(record, TxnRecord) or not record.credit:  # only money in can signal
            continue
        signal = _signal(ctx, role, institution_id, record)
        if signal is None:
            continue
        day = beijing_day_start(record.booked_at)
        bucket = bucket_in(st["days"], day)
        late = is_sealed(record.booked_at, wm)  # still judged: the day's figures are kept
        add(bucket, record.record_id, record.booked_at, record.amount_cents, tag=signal, late=late)
        payers = bucket.setdefault("payers", {})
        payer = record.counterparty_account
        payers[payer] = payers.get(payer, 0) + record.amount_cents
        touched.add(day)
    st["wm"] = wm = advance(wm, mine, ctx.event_time_ceiling)

    cfg = ctx.config(NAME, account_id, DEFAULTS)
    findings = []
    for day in sorted(touched):
        finding = _evaluate(ctx, st, account_id, role, cfg, day)
        if finding is not None:
            findings.append(finding)
    # a sealed day's figures stay LATE_KEEP longer, for late records
    st["days"] = {k: b for k, b in st["days"].items() if not is_expired(int(k), wm)}
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The findings of every day still open in ``state``."""
    role = ctx.role(account_id)
    if not state or (role != "own_operating" and role not in CUSTODY_ROLES):
        return []
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    days = sorted(int(k) for k in state["days"] if not is_sealed(int(k), state["wm"]))
    findings = (_evaluate(ctx, state, account_id, role, cfg, day) for day in days)
    return [f for f in findings if f is not None]


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], account_id: str, role: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    bucket = st["days"].get(str(day))
    if bucket is None or bucket["c"] < cents_of(cfg["min_amount"]):
        return None
    high, critical = cents_of(cfg["high_amount"]), cents_of(cfg["critical_amount"])
    rule = RULE_BY_TYPE.get(ctx.institution_type(account_id) or "", DEFAULT_RULE)
    date = beijing_date(day)
    total, count = bucket["c"], bucket["n"]
    investor_in, own_in = bucket["x"].get(INVESTOR_IN, 0), bucket["x"].get(OWN_IN, 0)
    distinct_payers = len(bucket.get("payers", {}))
    masked = mask(account_id)
    if role == "own_operating":
        what_zh = f"收到{distinct_payers}个投资人账户转入资金{count}笔，合计{yuan_zh(total)}"
        what_en = f"received {count} payment(s) from {distinct_payers} investor account(s) totalling {yuan_en(total)}"
        why_zh, why_en = "客户资金进入机构自有账户", "customer money paid into the institution's own account"
    else:
        what_zh = f"收到本机构自有账户转入资金{count}笔，合计{yuan_zh(total)}"
        what_en = (
            f"received {count} transfer(s) from the institution's own accounts totalling {yuan_en(total)}"
        )
        why_zh, why_en = "自有资金混入客户资金账户", "own funds mixed into the customer-money account"
    return Finding(
        typology=NAME,
        key=f"{account_id}:{date}",
        institution_id=ctx.institution_id(account_id) or "",
        severity=severity_by_amount(total, high, critical),
        score=score_of(total, critical),
        accounts=(account_id,),
        amount_cents=total,
        window_start=bucket["t0"],
        window_end=bucket["t1"],
        record_ids=record_ids([bucket]),
        metrics={
            "day": date,
            "total": money(total),
            "count": count,
            "investor_to_own": money(investor_in),
            "own_to_custody": money(own_in),
            "distinct_payers": distinct_payers,
            "late": is_late(bucket),
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=(
            f"{role_zh(role)}{masked}于{date}{what_zh}，{why_zh}，未实行客户资金与自有资金分账管理{cite_zh(rule)}。"
        ),
        explanation_en=(
            f"On {date} the {role_en(role)} {masked} {what_en}: {why_en}, customer and own funds are "
            f"not kept apart {cite_en(rule)}."
        ),
        rule=rule,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id)},
    )
