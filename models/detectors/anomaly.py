"""`anomaly`: a learned model scores each closed Beijing day of an account against the days of its
role, and names the features that made it unusual (DOMAIN.md; docs/anomaly-features.md). Not a
rule: a signal for a desk to verify, under the plan's fund monitoring (《方案》三(三)).

State (per account): ``wm``; ``features``, the account's feature state (models/features: per
Beijing day sums, counts, hours and a bounded counterparty sample, the KEPT_DAYS newest days),
held as the Struct and encoded as plain JSON by the worker; ``evidence``, per day that may still
be judged, its first and last booking time and its EVIDENCE_N largest transactions. Every part is
a function of the set of records, whatever their order.

When. A day is judged once it is closed: the account has booked a record on a later Beijing day
(``_closed``; the other detectors wait two more days, ALLOWED_LATENESS, for other banks' records,
but an account's records come from its own bank in booking order), on its whole set of records,
as training judged it. A message that closes a
day after a long silence may bring records far newer than the feature state could keep beside
it: that day is then judged on the state as it stood with this message's records up to the day,
so it sees its 14 history days as training did. Records of a day that came after it sealed
judge it again, and the sealed days after it (whose history they changed), while the state still
holds their whole history; its finding then is the one it would have had with them on time, so
it carries no ``late`` mark (the worker counts late records in fundwatch_late_records_total).
An account that then falls silent (a quiet customer's account used once to pass money on) has
its open day closed by ``close`` once its bank's event time has passed the day's end
(models/anomaly_sweep, run by the worker after each take): judged as if it had booked a record
then.

What. The role's forest (DetectContext.anomaly_model) scores the day's vector; above the role's
score quantile ``threshold_quantile`` of its training days (the artefact's, "p99.5" by default)
the day is raised, ``medium`` above ``medium_quantile``, ``low`` otherwise. The finding names
TOP_FEATURES features (at least three): those whose return to the role's median lowers the score
most, then, if the forest names fewer, those furthest from the role's median in its own robust
units; each with the account's value, its own usual range (10th-90th percentile of its history
days, when it has three) and its role's. No model, or no model for the account's role: the
features are kept and nothing is raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from models.detectors.anomaly_evidence import EVIDENCE_N as EVIDENCE_N
from models.detectors.anomaly_evidence import day_evidence, freeze_sealed, with_evidence
from models.detectors.anomaly_text import day_metrics, feature_metrics, sentences
from models.detectors.common import advance, beijing_date, is_expired, own_records
from models.detectors.context import DetectContext
from models.detectors.wording import mask
from models.features import AccountFeatureState, FeatureVector, own_usual_ranges, step, window_features
from models.features.schema import HISTORY_DAYS
from models.features.state import day_groups, step_days
from models.features.window import feature_values
from models.findings import Finding
from models.windows import DAY, beijing_day_start
from schemas.messages import BalanceRecord, TxnRecord

if TYPE_CHECKING:
    from models.anomaly_model import RoleModel
    from models.anomaly_serving import AnomalyModels

NAME = "anomaly"
VERSION = "1"
RULE = "三(三)"

DEFAULTS = {"threshold_quantile": "p99.5", "medium_quantile": "p99.9"}
TOP_FEATURES = 3  # at least this many named, whatever the forest says (the acceptance)
_LEAST_DROP = 1e-9  # score changes below float noise name nothing (as models/anomaly_model)

Record = TxnRecord | BalanceRecord


def _features_of(state: dict[str, Any]) -> AccountFeatureState | None:
    """The feature state: kept as the Struct between messages (converting a custody account's
    18 days to plain lists and back on every message doubled the worker's time per record), read
    from plain JSON once after a restart (the changelog and snapshots encode it as such)."""
    raw = state.get("features")
    if raw is None or type(raw) is AccountFeatureState:
        return raw
    return msgspec.convert(raw, AccountFeatureState)


def detect(
    ctx: DetectContext,
    state: dict[str, Any] | None,
    account_id: str,
    msg_id: str,
    records: list[Record],
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold one message's records of one account; judge the days it seals, and the sealed days
    its late records change."""
    if ctx.account(account_id) is None:
        return {}, []
    ceiling = ctx.event_time_ceiling
    mine = own_records(account_id, records)
    wm = advance((state or {}).get("wm"), mine, ceiling)
    return _step(ctx, state or {}, account_id, day_groups(mine, ceiling), wm)


def close(
    ctx: DetectContext, state: dict[str, Any] | None, account_id: str, until: int
) -> tuple[dict[str, Any], list[Finding]]:
    """The account's state and findings once event time ``until`` has passed without a record of
    it (models/anomaly_sweep: the time its bank has reached): its open day is judged exactly as
    if it had booked a record at ``until``. A record of that day that still comes judges it
    again, as any late record does."""
    if not state or ctx.account(account_id) is None:
        return state or {}, []
    ceiling = ctx.event_time_ceiling
    if ceiling is not None and until > ceiling:
        until = ceiling
    old_wm = state.get("wm")
    if old_wm is not None and until <= old_wm:
        return state, []
    return _step(ctx, state, account_id, {}, until)


def open_day_end(state: dict[str, Any] | None) -> int | None:
    """The end (epoch seconds) of the account's day that holds transactions and is not judged
    yet, or None: the time after which a silent account's day may be closed by ``close``."""
    if not state or state.get("wm") is None:
        return None
    features = _features_of(state)
    day = beijing_day_start(state["wm"])
    partial = features.day(day) if features is not None else None
    return day + DAY if partial is not None and partial.transactions else None


def _step(
    ctx: DetectContext,
    state: dict[str, Any],
    account_id: str,
    groups: dict[int, list[TxnRecord]],
    wm: int | None,
) -> tuple[dict[str, Any], list[Finding]]:
    """Fold the counted records (by day, ``day_groups``) with the account's event time moved to
    ``wm``; judge the days that closes, and the sealed days the late records change."""
    old_wm, old_features = state.get("wm"), _features_of(state)
    features = step_days(old_features, groups)
    evidence = with_evidence(state.get("evidence") or {}, groups)

    findings: list[Finding] = []
    model = ctx.anomaly_model
    if model is not None:
        counted = [r for txns in groups.values() for r in txns]
        closing_days = _to_judge(old_features, features, old_wm, wm, counted, ctx.event_time_ceiling)
        for day, source, closing in closing_days:
            finding = _judge(ctx, model, account_id, source, day, evidence, observe=closing)
            if finding is not None:
                findings.append(finding)
    if _bounds(features, wm) != _bounds(old_features, old_wm) or len(evidence) > len(
        state.get("evidence") or ()
    ):
        # what _may_judge reads moved, or a day came: otherwise it was pruned so already
        evidence = {key: day for key, day in evidence.items() if _may_judge(features, int(key), wm)}
    freeze_sealed(evidence, wm)
    return {"wm": wm, "features": features, "evidence": evidence}, findings


def _to_judge(
    old_features: AccountFeatureState | None,
    features: AccountFeatureState,
    old_wm: int | None,
    wm: int | None,
    counted: list[TxnRecord],
    ceiling: int | None,
) -> list[tuple[int, AccountFeatureState, bool]]:
    """(day, the state to judge it on, whether it closes now) for the days this message seals,
    then for the sealed days its late records change."""
    closing: list[int] = []
    if wm is not None and (old_wm is None or beijing_day_start(wm) != beijing_day_start(old_wm)):
        # a day closes only when wm enters a later Beijing day: otherwise no day held is looked at
        days = {beijing_day_start(r.booked_at) for r in counted}
        if old_features is not None:
            days.update(p.day_start for p in old_features.days if p.transactions)
        closing = sorted(d for d in days if _closed(d, wm) and not _closed(d, old_wm))
    out = [
        (
            day,
            features if _holds_history(features, day) else _as_of(old_features, counted, day, ceiling),
            True,
        )
        for day in closing
    ]
    late = [beijing_day_start(r.booked_at) for r in counted if _closed(r.booked_at, old_wm)]
    if late:
        out += [
            (day, features, False)
            for day in _judged_again(features, wm, old_wm, min(late))
            if day not in closing
        ]
    return out


def current(ctx: DetectContext, state: dict[str, Any] | None, account_id: str) -> list[Finding]:
    """The findings of the sealed days the state can still judge as they were judged when they
    closed: not expired, their whole history held."""
    model = ctx.anomaly_model
    if not state or model is None or ctx.account(account_id) is None:
        return []
    features, wm = _features_of(state), state.get("wm")
    if features is None:
        return []
    evidence = state.get("evidence") or {}
    found = (
        _judge(ctx, model, account_id, features, p.day_start, evidence, observe=False)
        for p in features.days
        if p.transactions and _closed(p.day_start, wm) and _may_judge(features, p.day_start, wm)
    )
    return [f for f in found if f is not None]


def _closed(ts: int, wm: int | None) -> bool:
    """Whether the account's day holding ``ts`` is closed for judging: the account has booked a
    record on a later Beijing day. Not the other detectors' seal (two days later): an account's
    records come from its one bank, in its booking order, so a record of a later day says the day
    is whole; and a quiet account (a customer's account used once to pass money on) may book
    nothing two days later, which would leave its day never judged. A record of a closed day that
    still comes judges it again (``_to_judge``)."""
    return wm is not None and beijing_day_start(ts) + DAY <= wm


def _bounds(features: AccountFeatureState | None, wm: int | None) -> tuple[int | None, ...]:
    """What ``_may_judge`` reads: ``wm`` only by its Beijing day (the thresholds of ``_closed``
    and ``is_expired`` are Beijing midnights), so a ``wm`` moving within its day re-filters nothing."""
    day = None if wm is None else beijing_day_start(wm)
    if features is None:
        return (day,)
    return (day, features.first_day, features.latest_day)


def _may_judge(features: AccountFeatureState, day: int, wm: int | None) -> bool:
    """Whether the day may still be judged (its evidence is still needed): open, or sealed and
    not expired with its whole history held."""
    if not _closed(day, wm):
        return True
    return not is_expired(day, wm) and _holds_history(features, day)


def _judged_again(features: AccountFeatureState, wm: int | None, old_wm: int | None, since: int) -> list[int]:
    """The days a late record of day ``since`` changes: it and the sealed days after it, while
    their figures are kept and their whole history held."""
    return [
        p.day_start
        for p in features.days
        if p.day_start >= since
        and p.transactions
        and _closed(p.day_start, old_wm)
        and _may_judge(features, p.day_start, wm)
    ]


def _holds_history(features: AccountFeatureState, day: int) -> bool:
    """Whether the state holds the day and every one of its HISTORY_DAYS history days (or every
    day since the account's first)."""
    oldest = features.oldest_kept_day()
    first = features.first_day if features.first_day is not None else day
    return features.day(day) is not None and (
        oldest is None or oldest <= max(day - HISTORY_DAYS * DAY, first)
    )


def _as_of(
    old: AccountFeatureState | None, counted: list[TxnRecord], day: int, ceiling: int | None
) -> AccountFeatureState:
    """The state as it stood with this message's records up to ``day``: before newer ones
    pushed the day's history out."""
    return step(old, [r for r in counted if beijing_day_start(r.booked_at) <= day], latest_plausible=ceiling)


def _judging_view(features: AccountFeatureState, day: int) -> AccountFeatureState:
    """The state as training saw it right after folding ``day``: nothing newer, and the days it
    no longer holds treated as not yet seen (not as days without money)."""
    oldest = features.oldest_kept_day()
    first = features.first_day
    if oldest is not None and first is not None:
        first = max(first, oldest)
    return AccountFeatureState(first, day, [p for p in features.days if p.day_start <= day])


# -- judging ---------------------------------------------------------------------------------


def _judge(
    ctx: DetectContext,
    model: AnomalyModels,
    account_id: str,
    features: AccountFeatureState,
    day: int,
    evidence: dict[str, Any],
    observe: bool,
) -> Finding | None:
    role = ctx.role(account_id)
    role_model = model.for_role(role)
    if role is None or role_model is None:
        return None
    view = _judging_view(features, day)
    vector = window_features(view, day, ctx.counterparty_kinds())
    if vector is None:
        return None
    if observe and model.observe is not None:
        model.observe(role, vector)
    cfg = ctx.config(NAME, account_id, DEFAULTS)
    quantiles = role_model.figures.score_quantiles
    threshold = quantiles.get(str(cfg["threshold_quantile"]))
    if threshold is None:  # a quantile the artefact does not carry: no threshold, no alert
        return None
    score = model.score(role, vector)
    if score <= threshold:
        return None
    medium = quantiles.get(str(cfg["medium_quantile"]))
    signal = AnomalySignal(
        day=day,
        role=role,
        score=score,
        threshold=threshold,
        severity="medium" if medium is not None and score > medium else "low",
        vector=vector,
        named=_named_features(model, role, vector),
    )
    return render(signal, ctx, model, role_model, account_id, cfg, view, day_evidence(evidence, day))


class AnomalySignal(msgspec.Struct, frozen=True, kw_only=True):
    """What decided that a closed day is unusual for its role."""

    day: int  # the Beijing day's start, epoch seconds
    role: str
    score: float  # the forest's 0-1 anomaly score
    threshold: float  # the role's training-score quantile it is above
    severity: str
    vector: FeatureVector
    named: tuple[tuple[int, float], ...]  # (feature index, score drop), in the order named


def _named_features(model: AnomalyModels, role: str, vector: FeatureVector) -> tuple[tuple[int, float], ...]:
    """TOP_FEATURES features: those whose return to the role's median lowers the score most;
    then, when the forest names fewer (an isolation forest splits only inside the range it was
    fitted on, and never on a feature constant in its training days), those furthest from the
    role's median in robust units."""
    drops = model.contributions(role, vector)
    scaling = model.roles[role].figures.scaling
    distance = [
        abs((value - center) / scale)
        for value, center, scale in zip(feature_values(vector), scaling.center, scaling.scale, strict=True)
    ]

    def rank(j: int) -> tuple[bool, float, int]:
        by_model = drops[j] > _LEAST_DROP
        return (not by_model, -drops[j] if by_model else -distance[j], j)

    return tuple((j, drops[j]) for j in sorted(range(len(distance)), key=rank)[:TOP_FEATURES])


def render(
    signal: AnomalySignal,
    ctx: DetectContext,
    model: AnomalyModels,
    role_model: RoleModel,
    account_id: str,
    cfg: dict[str, Any],
    view: AccountFeatureState,
    evidence: dict[str, Any] | None,
) -> Finding:
    """The finding of a day that scores above its role's threshold: window, evidence, metrics
    and the sentences."""
    date = beijing_date(signal.day)
    own = own_usual_ranges(view, signal.day, ctx.counterparty_kinds())
    named = feature_metrics(signal.vector, signal.named, own, role_model.figures.usual)
    partial = view.day(signal.day)
    inflow = partial.inflow_cents if partial else 0
    outflow = partial.outflow_cents if partial else 0
    zh, en = sentences(
        signal.role, signal.score, signal.threshold, str(cfg["threshold_quantile"]), model.artefact_id,
        named, mask(account_id), date,
    )  # fmt: skip
    top = (evidence or {}).get("top") or []
    return Finding(
        typology=NAME,
        key=f"{account_id}:{date}",
        institution_id=ctx.reporting_institution(account_id) or "",
        severity=signal.severity,
        score=round(min(1.0, max(0.0, signal.score)), 4),
        accounts=(account_id,),
        amount_cents=inflow + outflow,
        window_start=(evidence or {}).get("t0") or signal.day,
        window_end=(evidence or {}).get("t1") or signal.day + DAY - 1,
        record_ids=tuple(entry[2] for entry in sorted(top, key=lambda e: (e[1], e[2]))),
        metrics=day_metrics(signal, date, cfg, model, own, partial, named),
        thresholds={**cfg, "config_version": ctx.thresholds.version},
        explanation_zh=zh,
        explanation_en=en,
        rule=RULE,
        detector_version=f"{NAME}/{VERSION}",
        extra={"account_role": signal.role, "region": ctx.region(account_id)},
    )
