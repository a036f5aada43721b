"""大额交易: large-value transactions under the anti-money-laundering reporting rules
(《金融机构大额交易和可疑交易报告管理办法》, PBoC Order [2016] No. 3, art. 5; the plan's fund
monitoring 《方案》三(三)). A reporting duty, not a violation: severity low, medium when far above
the line.

"The account" is the monitored ``account_id`` of the record; its holder is a natural person or not
by ``holders.is_natural_person`` (unknown counts as a non-natural person: the monitored accounts
are mostly institutions' accounts, and 2,000,000 is the line the rule sets for them).

Lines, per account and Beijing calendar day, single or cumulative, at or above (>=) the line:

- cash (channel ``CASH``) >= ``cash`` (50,000);
- transfers (every other channel) by a non-natural-person account >= ``non_natural_transfer``
  (2,000,000), domestic and cross-border together;
- domestic transfers by a natural person >= ``natural_transfer`` (500,000);
- cross-border transfers by a natural person >= ``natural_cross_border`` (200,000).

Decisions where the rule's wording leaves a choice:

- One-sided accumulation (单边累计): money in and money out are summed separately, as the PBoC's
  implementation guidance for art. 5 reads "累计交易金额...按资金收入或者支出单边累计计算"; so a cash
  deposit of 30,000 and a withdrawal of 30,000 on one day report nothing, two deposits of 25,000
  report the deposits. Each line and direction is its own finding: key
  ``<account>:<YYYY-MM-DD>:<line>`` with line ``cash_in``, ``cash_out``, ``transfer_in``,
  ``transfer_out``, ``cross_border_in``, ``cross_border_out`` (the last two for natural persons).
- Cross-border: ``counterparty_bank`` starts with ``X-`` (a bank outside the mainland), or the
  channel is ``OTHER`` and the purpose mentions 跨境.
- Currency: only CNY records count (the lines are in CNY; the rule's foreign-currency lines in
  USD need an exchange rate the records do not carry).
- Medium when the total reaches ``far_multiple`` x the line (a module default of 10 until
  thresholds.toml has it).

The rule apart from its explanation: ``decide`` reads a day's buckets of one line and direction
and returns a ``LargeValueSignal`` (the line crossed, the one-sided total, count and largest record,
severity and score) or None; ``render`` builds the finding from it: window, evidence, metrics and
the Chinese and English sentences.

State (per account): ``wm`` and, per Beijing day, one bucket per line and direction (sums, the 50
largest records as evidence). A sealed day is kept ``LATE_KEEP`` longer for late records, frozen
(models/detectors/frozen.py: only a late record changes it), so about nine days.
"""

from __future__ import annotations

from fractions import Fraction
from operator import itemgetter
from typing import Any

import msgspec

from models.detectors.bucket_fold import add_all
from models.detectors.common import (
    TOP_N,
    advance,
    beijing_date,
    bucket_in,
    cents_of,
    clone,
    fraction_of,
    is_expired,
    is_late,
    is_sealed,
    open_from,
    own_records,
    record_ids,
    score_of,
)
from models.detectors.context import DetectContext
from models.detectors.frozen import freeze_before, is_frozen, thawed
from models.detectors.holders import is_natural_person
from models.detectors.wording import mask, money, role_en, role_zh, yuan_en, yuan_zh
from models.findings import Finding
from models.windows import BEIJING_OFFSET, DAY
from schemas.messages import BalanceRecord, TxnRecord

NAME = "large_value"
VERSION = "1"
RULE = "三(三)"

DEFAULTS = {
    "cash": "50000.00",
    "non_natural_transfer": "2000000.00",
    "natural_transfer": "500000.00",
    "natural_cross_border": "200000.00",
    "far_multiple": "10",  # not in thresholds.toml yet: module default
}

_DESC_ZH = {
    "cash_in": "现金缴存",
    "cash_out": "现金支取",
    "transfer_in": "款项转入",
    "transfer_out": "款项转出",
    "cross_border_in": "跨境款项转入",
    "cross_border_out": "跨境款项转出",
}
_DESC_EN = {
    "cash_in": "cash deposit(s)",
    "cash_out": "cash withdrawal(s)",
    "transfer_in": "incoming transfer(s)",
    "transfer_out": "outgoing transfer(s)",
    "cross_border_in": "incoming cross-border transfer(s)",
    "cross_border_out": "outgoing cross-border transfer(s)",
}


def empty_state() -> dict[str, Any]:
    return {"wm": None, "days": {}}


def is_cross_border(record: TxnRecord) -> bool:
    """A transfer to or from abroad: the counterparty bank is foreign ("X-" code), or the channel
    is OTHER and the purpose says 跨境."""
    if (record.counterparty_bank or "").upper().startswith("X-"):
        return True
    return record.channel == "OTHER" and "跨境" in (record.purpose or "")


def bucket_line(record: TxnRecord) -> str:
    """The bucket a record is summed in: kind and direction."""
    if record.channel == "CASH":
        return "cash_in" if record.credit else "cash_out"
    if is_cross_border(record):
        return "cross_border_in" if record.credit else "cross_border_out"
    return "transfer_in" if record.credit else "transfer_out"


def reported_line(line: str, natural: bool | None) -> str:
    """The line a bucket is reported under: a non-natural person's cross-border transfers count
    with its other transfers."""
    if natural is not True and line.startswith("cross_border_"):
        return "transfer_" + line.rsplit("_", 1)[1]
    return line


# reported_line of each bucket line, for a natural person's account (True) and any other (None):
# asked for every bucket of every (day, line) judged
_REPORTED_AS = {
    natural: {line: reported_line(line, natural) for line in _DESC_ZH} for natural in (True, None)
}
_TIME_AND_ID = itemgetter(1, 2)
_RECORD_ID = itemgetter(2)
_HOLDER = {True: "natural_person", False: "non_natural_person", None: "unknown"}


def _threshold_key(line: str, natural: bool | None) -> str:
    if line.startswith("cash_"):
        return "cash"
    if natural is True:
        return "natural_cross_border" if line.startswith("cross_border_") else "natural_transfer"
    return "non_natural_transfer"


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[TxnRecord | BalanceRecord],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; return the new state and the findings of every
    (day, line) the message touched that is at or above its line."""
    account = ctx.account(account_id)
    if account is None:
        return {}, []
    natural = is_natural_person(account)
    st = clone(state) or empty_state()
    wm = st["wm"]
    mine = own_records(account_id, records)
    touched = _fold(st["days"], mine, wm, natural)
    st["wm"] = wm = advance(wm, mine, ctx.event_time_ceiling)

    findings = []
    if touched:
        cfg = ctx.config(NAME, account_id, DEFAULTS)
        for day, line in sorted(touched):
            finding = _evaluate(ctx, st, account_id, natural, cfg, day, line)
            if finding is not None:
                findings.append(finding)
    # a sealed day's figures stay LATE_KEEP longer, for late records; a day expires no later
    # than an older one, so while the oldest is kept every day is
    days = st["days"]
    if days and is_expired(min(map(int, days)), wm):
        st["days"] = days = {k: lines for k, lines in days.items() if not is_expired(int(k), wm)}
    freeze_before(days, open_from(wm))
    return st, findings


def _fold(
    days: dict[str, Any], records: list[TxnRecord | BalanceRecord], wm: int | None, natural: bool | None
) -> set[tuple[int, str]]:
    """Count the CNY transactions in their (day, line) buckets; the (day, reported line) pairs
    they touched. Grouped first, so each bucket is updated once (bucket_fold.add_all); the groups
    keep the order their first record came in, so new days and lines are added in that order."""
    groups: dict[tuple[int, str], list[TxnRecord]] = {}
    for record in records:
        if not isinstance(record, TxnRecord) or record.currency != "CNY":
            continue
        # beijing_day_start, bucket_line and is_cross_border inlined: this runs for every record
        local = record.booked_at + BEIJING_OFFSET
        channel = record.channel
        if channel == "CASH":
            line = "cash_in" if record.credit else "cash_out"
        elif (record.counterparty_bank or "").upper().startswith("X-") or (
            channel == "OTHER" and "跨境" in (record.purpose or "")
        ):
            line = "cross_border_in" if record.credit else "cross_border_out"
        else:
            line = "transfer_in" if record.credit else "transfer_out"
        key = (local - local % DAY - BEIJING_OFFSET, line)
        group = groups.get(key)
        if group is None:
            groups[key] = [record]
        else:
            group.append(record)
    touched: set[tuple[int, str]] = set()
    if not groups:
        return touched
    open_since = open_from(wm)  # is_sealed(day, wm) is day < open_since
    reported_as = _REPORTED_AS[True if natural is True else None]
    for (day, line), group in groups.items():
        day_key = str(day)
        lines = days.get(day_key)
        if lines is None:
            lines = days[day_key] = {}
        elif is_frozen(lines):  # a sealed day: a late record thaws it
            lines = days[day_key] = thawed(lines)
        # still judged when late: the day's figures are kept (common.LATE_KEEP)
        add_all(bucket_in(lines, line), group, late=open_since is not None and day < open_since)
        touched.add((day, reported_as[line]))
    return touched


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The findings of every open day and line in ``state``."""
    account = ctx.account(account_id)
    if not state or account is None:
        return []
    natural = is_natural_person(account)
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    keys = sorted(
        {
            (int(day), reported_line(line, natural))
            for day, lines in state["days"].items()
            if not is_sealed(int(day), state["wm"])
            for line in lines
        }
    )
    findings = (_evaluate(ctx, state, account_id, natural, cfg, day, line) for day, line in keys)
    return [f for f in findings if f is not None]


class LargeValueSignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a day's line and direction is at or above its reporting line."""

    day: int  # the Beijing day's start, epoch seconds
    line: str  # cash_in, cash_out, transfer_in, transfer_out, cross_border_in, cross_border_out
    natural_person: bool | None  # the holder; None when unknown (judged as a non-natural person)
    threshold_key: str  # the DEFAULTS key of the line crossed
    reporting_line_cents: int
    total_cents: int  # one-sided: this direction's sum of the day
    record_count: int
    largest_cents: int
    severity: str
    score: float


def _evaluate(
    ctx: DetectContext,
    st: dict[str, Any],
    account_id: str,
    natural: bool | None,
    cfg: dict[str, Any],
    day: int,
    line: str,
) -> Finding | None:
    lines = thawed(st["days"].get(str(day))) or {}
    reported_as = _REPORTED_AS[True if natural is True else None]
    buckets = [b for name, b in sorted(lines.items()) if reported_as[name] == line]
    signal = decide(buckets, natural, cfg, day, line)
    return None if signal is None else render(signal, ctx, account_id, cfg, buckets)


# (line's text, far multiple's text) -> (the line in cents, far_multiple x the line): the
# configuration holds a handful of such pairs, read for every (day, line) judged
_LINE_FIGURES: dict[tuple[Any, Any], tuple[int, Fraction]] = {}


def line_figures(line_text: Any, far_multiple_text: Any) -> tuple[int, Fraction]:
    """A reporting line (a money threshold) in cents, and ``far_multiple`` times it."""
    key = (line_text, far_multiple_text)
    found = _LINE_FIGURES.get(key)
    if found is None:
        if len(_LINE_FIGURES) > 1024:  # many configurations over a process's life (tests)
            _LINE_FIGURES.clear()
        reporting_line = cents_of(line_text)
        found = _LINE_FIGURES[key] = (reporting_line, fraction_of(far_multiple_text) * reporting_line)
    return found


def decide(
    buckets: list[dict[str, Any]], natural: bool | None, cfg: dict[str, Any], day: int, line: str
) -> LargeValueSignal | None:
    """The rule: the day's one-sided total of ``line`` (its buckets) at or above the line."""
    if not buckets:
        return None
    total = sum(b["c"] for b in buckets)
    threshold_key = _threshold_key(line, natural)
    reporting_line, far = line_figures(cfg[threshold_key], cfg["far_multiple"])
    if total < reporting_line:
        return None
    return LargeValueSignal(
        day=day,
        line=line,
        natural_person=natural,
        threshold_key=threshold_key,
        reporting_line_cents=reporting_line,
        total_cents=total,
        record_count=sum(b["n"] for b in buckets),
        largest_cents=max(b["top"][0][0] for b in buckets if b["top"]),  # each top: largest first
        # total >= far, in integers (far is a Fraction)
        severity="medium" if total * far.denominator >= far.numerator else "low",
        score=score_of(total, far),
    )


def render(
    signal: LargeValueSignal,
    ctx: DetectContext,
    account_id: str,
    cfg: dict[str, Any],
    buckets: list[dict[str, Any]],
) -> Finding:
    """The finding of a line that fires: window, evidence, metrics and the sentences."""
    role = ctx.role(account_id)
    date = beijing_date(signal.day)
    holder = _HOLDER[signal.natural_person]
    zh, en = _sentences(signal, role, mask(account_id), date)
    if len(buckets) == 1:  # most lines have one bucket (a non-natural person's transfers two)
        bucket = buckets[0]
        window_start, window_end, late = bucket["t0"], bucket["t1"], is_late(bucket)
        # common.record_ids of one bucket: its top (in top_rank order already) by time and id
        ids = tuple(map(_RECORD_ID, sorted(bucket["top"][:TOP_N], key=_TIME_AND_ID)))
    else:
        window_start = min(b["t0"] for b in buckets)
        window_end = max(b["t1"] for b in buckets)
        late = any(is_late(b) for b in buckets)
        ids = record_ids(buckets)
    return Finding(
        typology=NAME,
        key=f"{account_id}:{date}:{signal.line}",
        institution_id=ctx.reporting_institution(account_id) or "",
        severity=signal.severity,
        score=signal.score,
        accounts=(account_id,),
        amount_cents=signal.total_cents,
        window_start=window_start,
        window_end=window_end,
        record_ids=ids,
        metrics={
            "day": date,
            "line": signal.line,
            "total": money(signal.total_cents),
            "count": signal.record_count,
            "largest": money(signal.largest_cents),
            "single_at_or_above_line": signal.largest_cents >= signal.reporting_line_cents,
            "reporting_line": money(signal.reporting_line_cents),
            "threshold": signal.threshold_key,
            "holder": holder,
            "late": late,
        },
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": role, "region": ctx.region(account_id), "holder": holder},
    )


def _sentences(signal: LargeValueSignal, role: str | None, masked: str, date: str) -> tuple[str, str]:
    line, count = signal.line, signal.record_count
    total, reporting_line = signal.total_cents, signal.reporting_line_cents
    holder_en = "" if line.startswith("cash_") else (
        " for a natural person's account" if signal.natural_person is True
        else " for a non-natural-person account"
    )  # fmt: skip
    zh = (
        f"{role_zh(role)}{masked}于{date}{_DESC_ZH[line]}{count}笔，当日单边累计{yuan_zh(total)}，"
        f"达到大额交易报告标准{yuan_zh(reporting_line)}（中国人民银行令〔2016〕第3号第五条），"
        f"应按规定报告（《方案》{RULE}）。"
    )
    en = (
        f"On {date} the {role_en(role)} {masked} had {count} {_DESC_EN[line]} totalling "
        f"{yuan_en(total)}, at or above the large-value reporting line of {yuan_en(reporting_line)}"
        f"{holder_en} (PBoC Order [2016] No. 3, art. 5): a report is due (rectification plan §3(3))."
    )
    return zh, en
