"""短时间内迅速发展: an institution whose customer money or number of investors grows far above its
own trend in a short time (DOMAIN.md; 《方案》四(二)4 "对涉及资金量大、人数众多的大型互联网金融平台或
短时间内迅速发展的互联网金融平台、企业……马上报告相关部门").

Scope: one institution and one Beijing day; key ``<institution_id>:<YYYY-MM-DD>``. The records are
those of the institution's ``customer_custody``, ``payment_reserve`` and ``own_operating`` accounts
(models/institution_detection.INSTITUTION_ROLES).

Figures of a Beijing day D, from CNY records:

- inflow(D): the CREDITS booked on D on the institution's custody or reserve accounts whose payer
  (``counterparty_account``) is not one of the institution's own accounts (an account of this
  institution with one of the roles above). Moving money between its own accounts is not growth,
  and so a movement reported by both banks is counted once, from the receiving side;
- payers(D): the distinct payers of those credits; new investors(D): the payers of D that paid
  none of the institution's inflow credits on the ``trend_days`` days before D.

History: the ``trend_days`` days before D, counting only days on or after the first Beijing day on
which the institution had any record at all (a day without inflow counts as 0). With fewer than
``min_history_days`` such days there is no trend to compare with, and nothing fires.

Rule. Let baseline = the median of inflow over the history days and new baseline = the median of
new investors over them. D fires when either holds:

1. inflow: inflow(D) >= ``min_inflow`` and inflow(D) >= ``growth_ratio`` x max(baseline,
   ``min_inflow`` / ``growth_ratio``) (the guard keeps a tiny baseline from making small sums look
   like growth: below it the test is just inflow(D) >= ``min_inflow``);
2. new investors: new(D) >= ``min_new_investors`` and new(D) >= ``growth_ratio`` x max(1, new
   baseline).

The growth ratio of a signal is its figure over what it is compared with (the guarded baseline, or
max(1, new baseline)); the finding's ratio is the larger ratio of the signals that fire. Severity:
medium at ``growth_ratio`` or more, high at 2 x ``growth_ratio``, critical at 4 x ``growth_ratio``.
Score: ratio / (4 x ``growth_ratio``), capped at 1. ``amount_cents`` is inflow(D); the evidence is
the day's 50 largest inflow credits; the window runs from the day's first to its last inflow credit.

The rule apart from its explanation: ``decide`` reads a day and its history and returns a
``RapidGrowthSignal`` (the figures, baselines and ratios of both signals, which fired, severity and
score) or None; ``render`` builds the finding from it and the day's tally: accounts, window,
evidence, metrics and the Chinese and English sentences.

The day is evaluated as it goes (running totals), so the alert comes early and updates as the day's
figures grow. A record of day E changes the figures of E and the history of the ``trend_days``
days after it: every call re-evaluates those days (a late record may lift a baseline so that a day
no longer fires; the alert already raised for it then stays as it was).

Event time: the watermark follows the banks of the institution's custody and reserve accounts, whose
credits are the figures (common.advance_sources). A late credit (its day sealed) still counts while
its day and the ``trend_days`` before it are kept (``LATE_KEEP`` after sealing): its day and the
days whose history holds it are judged again, their findings ``late: true``. A credit later still
has no trend left to be judged against and changes nothing (the worker has counted it late).

State (per institution): ``wm``, ``src``, ``first`` (the first day with any record), and per day
with inflow: the inflow tally (sum, count, first and last time, the 50 largest credits, the sum
per account), how many of its credits came late, and the payers. It holds no record ids: each
credit reaches the detector once (models/detectors/common). Days are kept while a day whose history holds them
can still change (about ``trend_days`` + 3 days). Calls never copy the whole state: containers are
copied on their first write (the caller's state is never changed), so a call costs O(records x
trend_days + trend_days^2), whatever the day's volume.

Payers. A reserve account can have tens of thousands of payers a day, so a day keeps at most
``PAYER_CAP`` of them, as a hash sample that is the same whatever the arrival order: every payer
has a level (the leading zero bits of a 32-bit BLAKE2b hash of its account id, so level >= L for
one payer in 2^L), and a day keeps the payers whose level is at least the smallest L that leaves
at most ``PAYER_CAP`` of them. New investors of D are counted among the payers whose level is at
least the highest L of D and its history days (for those payers, every day of the window knows
them exactly), kept as a running count per level, and scaled by 2^L: exact while no day of the
window had more than ``PAYER_CAP`` payers, an estimate (``new_investors_estimated``) beyond.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

import msgspec

from models.detectors.common import (
    LATE_KEEP,
    CopyOnWrite,
    advance_sources,
    beijing_date,
    cents_of,
    cite_en,
    cite_zh,
    fraction_of,
    is_expired,
    is_sealed,
    mask,
    money,
    open_from,
    ratio_text,
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
from models.windows import DAY, beijing_day_start
from schemas.messages import TxnRecord

NAME = "rapid_growth"
VERSION = "1"
SCOPE = "institution"
RULE = "四(二)4"
PAYER_CAP = 2000  # payers kept per day (a hash sample beyond)
HASH_BITS = 32
# The institution's own accounts: those whose records an institution-level detector sees
# (models/institution_detection.INSTITUTION_ROLES, not imported: that module imports the detectors).
INSTITUTION_ROLES = CUSTODY_ROLES | {"own_operating"}

DEFAULTS = {
    "trend_days": 14,
    "growth_ratio": "3.0",
    "min_inflow": "1000000.00",
    "min_history_days": 5,
    "min_new_investors": 20,
}


def config(ctx: DetectContext, institution_id: str) -> dict[str, Any]:
    """The thresholds for the institution's own type over the module defaults."""
    return ctx.institution_config(NAME, institution_id, DEFAULTS)


def _trend(cfg: dict[str, Any]) -> int:
    return max(1, int(cfg["trend_days"]))


def level(payer: str) -> int:
    """The payer's sampling level: leading zero bits of a 32-bit hash (level >= L for 1 in 2^L)."""
    digest = hashlib.blake2b(payer.encode("utf-8"), digest_size=HASH_BITS // 8).digest()
    return HASH_BITS - int.from_bytes(digest, "big").bit_length()


def empty_state() -> dict[str, Any]:
    return {"wm": None, "first": None, "days": {}}


def _new_day(st: dict[str, Any], day: int, trend: int) -> dict[str, Any]:
    # in: the inflow tally; pay: {payer: level} of the sample; lv: the day's sample level;
    # ls: the highest lv of the day and its history days; nl: {level: new investors of that level}
    window = (st["days"].get(str(day - k * DAY)) for k in range(1, trend + 1))
    return {
        "in": {"c": 0, "n": 0, "t0": None, "t1": None, "top": [], "x": {}},
        "pay": {},
        "lv": 0,
        "ls": max((e["lv"] for e in window if e is not None), default=0),
        "nl": {},
    }


class _Folder:
    """One call's work on a copy-on-write state."""

    def __init__(self, state: dict[str, Any] | None, trend: int) -> None:
        self.w = CopyOnWrite()
        base = state or empty_state()
        self.st = self.w.mine(dict(base))
        self.days = self.w.dict_in(self.st, "days")
        self.trend = trend

    def day(self, day: int) -> dict[str, Any]:
        """The writable entry of a day (created when absent)."""
        key = str(day)
        if key not in self.days:
            self.days[key] = self.w.mine(_new_day(self.st, day, self.trend))
            entry = self.days[key]
            for name in ("in", "pay", "nl"):
                self.w.mine(entry[name])
            self.w.mine(entry["in"]["top"])
            self.w.mine(entry["in"]["x"])
            return entry
        return self.w.dict_in(self.days, key)

    def _paid_before(self, day: int, payer: str, skip: int | None = None) -> bool:
        """Whether the payer is in the sample of one of the trend days before ``day``."""
        for k in range(1, self.trend + 1):
            other = day - k * DAY
            if other == skip:
                continue
            entry = self.days.get(str(other))
            if entry is not None and payer in entry["pay"]:
                return True
        return False

    def _count_new(self, day: int, lvl: int, delta: int) -> None:
        entry = self.day(day)
        counts = self.w.dict_in(entry, "nl")
        key = str(lvl)
        value = counts.get(key, 0) + delta
        if value:
            counts[key] = value
        else:
            counts.pop(key, None)

    def see_payer(self, day: int, payer: str) -> None:
        """A payer of an inflow credit on ``day``: sample it, and keep the new-investor counts of
        the day and of the next day the payer paid on right."""
        entry = self.days[str(day)]
        lvl = level(payer)
        if lvl < entry["lv"] or payer in entry["pay"]:
            return
        pay = self.w.dict_in(entry, "pay")
        pay[payer] = lvl
        if len(pay) > PAYER_CAP:
            self._raise_level(day)
            if payer not in entry["pay"]:
                return
        if lvl >= entry["ls"] and not self._paid_before(day, payer):
            self._count_new(day, lvl, +1)
        # the next day within trend_days on which the payer paid was counted new without this day
        for k in range(1, self.trend + 1):
            later = day + k * DAY
            other = self.days.get(str(later))
            if other is None or payer not in other["pay"]:
                continue
            if lvl >= other["ls"] and not self._paid_before(later, payer, skip=day):
                self._count_new(later, lvl, -1)
            break

    def _raise_level(self, day: int) -> None:
        """Halve the day's sample until it holds at most PAYER_CAP payers; the days whose window
        holds this day now count new investors at the new level or above only."""
        entry = self.day(day)
        pay, lvl = entry["pay"], entry["lv"]
        while len(pay) > PAYER_CAP:
            lvl += 1
            pay = {p: v for p, v in pay.items() if v >= lvl}
        entry["pay"] = self.w.mine(pay)
        entry["lv"] = lvl
        for k in range(self.trend + 1):
            later = day + k * DAY
            if str(later) not in self.days or self.days[str(later)]["ls"] >= lvl:
                continue
            other = self.day(later)
            other["ls"] = lvl
            other["nl"] = self.w.mine({key: n for key, n in other["nl"].items() if int(key) >= lvl})

    def prune(self, wm: int | None) -> None:
        """Drop days no kept day's history holds (kept: open, or sealed for less than LATE_KEEP)."""
        start = open_from(wm)
        if start is None:
            return
        reach = self.trend * DAY + LATE_KEEP
        for key in [k for k in self.days if int(k) + reach < start]:
            del self.days[key]
        # states written before record ids left the state: what they held is not read any more
        for stale in ("ids", "late"):
            if stale in self.st:
                del self.st[stale]


def _own_role(ctx: DetectContext, institution_id: str, account_id: str | None, cache: dict) -> str | None:
    """The role of one of the institution's own accounts (INSTITUTION_ROLES), else None."""
    if not account_id:
        return None
    if account_id not in cache:
        account = ctx.account(account_id)
        role = _text(account.get("role")) if account else None
        own = account is not None and _text(account.get("institution_id")) == institution_id
        cache[account_id] = role if own and role in INSTITUTION_ROLES else None
    return cache[account_id]


def _fold_records(
    ctx: DetectContext, fold: _Folder, institution_id: str, records: list[TxnRecord]
) -> tuple[list[TxnRecord], set[int]]:
    """Count one message's inflow credits into their days: the custody and reserve accounts'
    records (the watermark's sources), and the days whose figures the message touched."""
    st = fold.st
    wm = st["wm"]
    start = open_from(wm)
    roles: dict[str, str | None] = {}
    feeding: list[TxnRecord] = []  # the custody and reserve accounts' records: the figures' sources
    touched: set[int] = set()
    for record in records:
        if not isinstance(record, TxnRecord):
            continue
        role = _own_role(ctx, institution_id, record.account_id, roles)
        if role is None:
            continue
        ts = record.booked_at
        day = beijing_day_start(ts)
        if st["first"] is None or day < st["first"]:
            st["first"] = day
        if role in CUSTODY_ROLES:
            feeding.append(record)
        late = start is not None and ts < start
        if late and is_expired(ts, wm):
            continue  # too late to be judged against a trend: its history is gone
        touched.add(day)
        if not record.credit or role not in CUSTODY_ROLES or record.currency != "CNY":
            continue
        payer = record.counterparty_account
        if payer == record.account_id or _own_role(ctx, institution_id, payer, roles) is not None:
            continue  # the institution's own money moving between its accounts
        entry = fold.day(day)
        if late:
            entry["ln"] = entry.get("ln", 0) + 1
        tally(
            fold.w, fold.w.dict_in(entry, "in"), record.amount_cents, ts, record.record_id, record.account_id
        )
        if payer:
            fold.see_payer(day, payer)
    return feeding, touched


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    institution_id: str,
    msg_id: str,
    records: list[TxnRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one institution; return the new state and the finding of
    every day whose figures or history the message touched and that fires."""
    cfg = config(ctx, institution_id)
    trend = _trend(cfg)
    fold = _Folder(state, trend)
    st = fold.st
    feeding, touched = _fold_records(ctx, fold, institution_id, records)
    wm = advance_sources(st, ctx, feeding)
    if wm is None:
        return {}, []  # nothing of this institution's custody or reserve seen yet: no state to keep

    # a day's records change its figures and the history of the trend_days days after it
    affected = sorted({day + k * DAY for day in touched for k in range(trend + 1)})
    findings = []
    for day in affected:
        finding = _evaluate(ctx, st, institution_id, cfg, day)
        if finding is not None:
            findings.append(finding)
    fold.prune(wm)
    return st, findings


def current(ctx: DetectContext, state: dict[str, Any] | None, institution_id: str) -> list[Finding]:
    """The finding of every open (not sealed) day that fires."""
    if not state:
        return []
    cfg = config(ctx, institution_id)
    days = sorted(int(k) for k in state["days"] if not is_sealed(int(k), state["wm"]))
    findings = (_evaluate(ctx, state, institution_id, cfg, day) for day in days)
    return [f for f in findings if f is not None]


def _median(values: list[Any]) -> Fraction:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[mid])
    return Fraction(ordered[mid - 1] + ordered[mid], 2)


def new_investors(entry: dict[str, Any] | None) -> int:
    """A day's new investors: the running count at the window's sample level, scaled up to all."""
    if entry is None:
        return 0
    return sum(entry["nl"].values()) << entry["ls"]


def _multiple(value: Fraction) -> str:
    return ratio_text(value, 2)


def _count_text(value: Fraction) -> str:
    """A median of counts: "3" or "2.5"."""
    return str(value.numerator) if value.denominator == 1 else ratio_text(value, 1)


class RapidGrowthSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a day grew far above the institution's own trend."""

    day: int  # the Beijing day's start, epoch seconds
    history_days: tuple[int, ...]  # the days of the trend, oldest first
    history_inflow_cents: tuple[int, ...]
    history_new_investors: tuple[int, ...]
    inflow_cents: int
    baseline_inflow_cents: Fraction  # the median of the history's inflows
    guarded_baseline_inflow_cents: Fraction  # what the inflow is compared with
    inflow_ratio: Fraction
    inflow_fires: bool
    new_investors: int
    new_investors_estimated: bool  # scaled up from a hash sample
    baseline_new_investors: Fraction
    new_investors_ratio: Fraction
    new_investors_fire: bool
    growth_ratio: Fraction  # the larger ratio of the signals that fire
    severity: str
    score: float


def _evaluate(
    ctx: DetectContext, st: dict[str, Any], institution_id: str, cfg: dict[str, Any], day: int
) -> Finding | None:
    signal = decide(st, cfg, day)
    return None if signal is None else render(signal, ctx, st["days"][str(day)], institution_id, cfg)


def _history(st: dict[str, Any], cfg: dict[str, Any], day: int) -> list[int]:
    """The trend days before ``day`` on or after the institution's first day, oldest first."""
    first = st["first"]
    return [day - k * DAY for k in range(_trend(cfg), 0, -1) if first is not None and day - k * DAY >= first]


def decide(st: dict[str, Any], cfg: dict[str, Any], day: int) -> RapidGrowthSignal | None:
    """The rule: the day's inflow or new investors at ``growth_ratio`` times their trend (and at
    their minimums), with severity and score; None without history enough or when neither fires."""
    days = st["days"]
    entry = days.get(str(day))
    if entry is None or entry["in"]["n"] == 0:
        return None
    history = _history(st, cfg, day)
    if len(history) < int(cfg["min_history_days"]):
        return None
    growth = fraction_of(cfg["growth_ratio"])
    min_inflow = cents_of(cfg["min_inflow"])
    inflow = entry["in"]["c"]
    inflows = [days[str(d)]["in"]["c"] if str(d) in days else 0 for d in history]
    baseline = _median(inflows)
    guard = max(baseline, Fraction(min_inflow) / growth if growth > 0 else Fraction(0), Fraction(1))
    inflow_fires = inflow >= min_inflow and inflow >= growth * guard
    new = new_investors(entry)
    news = [new_investors(days.get(str(d))) for d in history]
    new_baseline = _median(news)
    new_guard = max(new_baseline, Fraction(1))
    new_fires = new >= int(cfg["min_new_investors"]) and new >= growth * new_guard
    if not (inflow_fires or new_fires):
        return None
    inflow_ratio, new_ratio = inflow / guard, new / new_guard
    ratio = max(r for r, fires in ((inflow_ratio, inflow_fires), (new_ratio, new_fires)) if fires)
    return RapidGrowthSignal(
        day=day,
        history_days=tuple(history),
        history_inflow_cents=tuple(inflows),
        history_new_investors=tuple(news),
        inflow_cents=inflow,
        baseline_inflow_cents=baseline,
        guarded_baseline_inflow_cents=guard,
        inflow_ratio=inflow_ratio,
        inflow_fires=inflow_fires,
        new_investors=new,
        new_investors_estimated=entry["ls"] > 0,
        baseline_new_investors=new_baseline,
        new_investors_ratio=new_ratio,
        new_investors_fire=new_fires,
        growth_ratio=ratio,
        severity="critical" if ratio >= 4 * growth else "high" if ratio >= 2 * growth else "medium",
        score=score_of(ratio, 4 * growth),
    )


def render(
    signal: RapidGrowthSignal,
    ctx: DetectContext,
    entry: dict[str, Any],
    institution_id: str,
    cfg: dict[str, Any],
) -> Finding:
    """The finding of a day that fires (``entry``: the day's figures): accounts, window, evidence,
    metrics and the sentences."""
    fired = (("inflow", signal.inflow_fires), ("new_investors", signal.new_investors_fire))
    per_account = sorted(entry["in"]["x"].items(), key=lambda item: (-item[1], item[0]))
    accounts = tuple(account for account, _ in per_account)
    date = beijing_date(signal.day)
    institution = ctx.references.institution(institution_id) or {}
    history = zip(signal.history_days, signal.history_inflow_cents, signal.history_new_investors, strict=True)
    zh, en = _sentences(signal, ctx, accounts, entry["in"]["n"])
    return Finding(
        typology=NAME,
        key=f"{institution_id}:{date}",
        institution_id=institution_id,
        severity=signal.severity,
        score=signal.score,
        accounts=accounts,
        amount_cents=signal.inflow_cents,
        window_start=entry["in"]["t0"],
        window_end=entry["in"]["t1"],
        record_ids=record_ids([entry["in"]]),
        metrics={
            "day": date,
            "signals": [name for name, fires in fired if fires],
            "inflow": money(signal.inflow_cents),
            "inflow_count": entry["in"]["n"],
            "inflow_by_account": {account: money(cents) for account, cents in per_account},
            "baseline_inflow": ratio_text(signal.baseline_inflow_cents / 100, 2),
            "inflow_ratio": ratio_text(signal.inflow_ratio),
            "new_investors": signal.new_investors,
            "baseline_new_investors": ratio_text(signal.baseline_new_investors, 1),
            "new_investors_ratio": ratio_text(signal.new_investors_ratio),
            "new_investors_estimated": signal.new_investors_estimated,
            "sample_level": entry["ls"],
            "late": entry.get("ln", 0) > 0,
            "distinct_payers": len(entry["pay"]) << entry["lv"],
            "growth_ratio": ratio_text(signal.growth_ratio),
            "history_days": len(signal.history_days),
            "history": [
                {"day": beijing_date(d), "inflow": money(c), "new_investors": n} for d, c, n in history
            ],
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


def _inflow_text(signal: RapidGrowthSignal) -> tuple[str, str]:
    """The inflow against its trend, in both languages."""
    baseline = signal.baseline_inflow_cents
    baseline_cents = int(baseline + Fraction(1, 2))  # half up, as ratio_text
    n_days = len(signal.history_days)
    if baseline >= signal.guarded_baseline_inflow_cents:
        ratio = _multiple(signal.inflow_ratio)
        inflow_zh = f"，为此前{n_days}个北京日单日转入中位数{yuan_zh(baseline_cents)}的{ratio}倍"
        inflow_en = (
            f", {ratio} times the median daily inflow of {yuan_en(baseline_cents)} "
            f"over the previous {n_days} Beijing day(s)"
        )
    else:
        inflow_zh = f"，而此前{n_days}个北京日单日转入中位数仅为{yuan_zh(baseline_cents)}"
        inflow_en = (
            f", while the median daily inflow over the previous {n_days} Beijing day(s) was only "
            f"{yuan_en(baseline_cents)}"
        )
    return inflow_zh, inflow_en


def _new_text(signal: RapidGrowthSignal) -> tuple[str, str]:
    """The new investors against their trend, in both languages, when that signal fires."""
    if not signal.new_investors_fire:
        return "", ""
    new, n_days = signal.new_investors, len(signal.history_days)
    about_zh = "约" if signal.new_investors_estimated else ""
    about_en = "about " if signal.new_investors_estimated else ""
    typical = _count_text(signal.baseline_new_investors)
    if signal.baseline_new_investors >= 1:
        ratio = _multiple(signal.new_investors_ratio)
        new_zh = (
            f"；当日新增付款账户{about_zh}{new}个，为此前{n_days}个北京日单日中位数{typical}个的{ratio}倍"
        )
        new_en = (
            f"; {about_en}{new} new payer account(s) paid in that day, {ratio} times the "
            f"median of {typical} a day over the previous {n_days} Beijing day(s)"
        )
    else:
        new_zh = f"；当日新增付款账户{about_zh}{new}个，而此前{n_days}个北京日单日中位数仅为{typical}个"
        new_en = (
            f"; {about_en}{new} new payer account(s) paid in that day, while the median over the "
            f"previous {n_days} Beijing day(s) was only {typical} a day"
        )
    return new_zh, new_en


def _sentences(
    signal: RapidGrowthSignal, ctx: DetectContext, accounts: tuple[str, ...], count: int
) -> tuple[str, str]:
    """The Chinese and English sentences of a day that fires (``accounts``: the largest first;
    ``count``: its inflow credits)."""
    date, inflow = beijing_date(signal.day), signal.inflow_cents
    main = accounts[0]
    main_role = ctx.role(main)
    others_zh = f"等{len(accounts)}个账户" if len(accounts) > 1 else ""
    others_en = f" and {len(accounts) - 1} other account(s)" if len(accounts) > 1 else ""
    inflow_zh, inflow_en = _inflow_text(signal)
    new_zh, new_en = _new_text(signal)
    zh = (
        f"{date}（北京时间），该机构{role_zh(main_role)}{mask(main)}{others_zh}收到外部转入资金"
        f"{count}笔、合计{yuan_zh(inflow)}{inflow_zh}{new_zh}。资金规模或投资人数在短时间内"
        f"迅速增长，应立即报告并核查是否涉嫌非法集资{cite_zh(RULE)}。"
    )
    en = (
        f"On {date} (Beijing time) the institution's {role_en(main_role)} {mask(main)}{others_en} "
        f"received {count} payment(s) from outside totalling {yuan_en(inflow)}{inflow_en}"
        f"{new_en}. Money or investors growing rapidly in a short time must be reported at once and "
        f"checked for illegal fund-raising {cite_en(RULE)}."
    )
    return zh, en
