"""Ground truth of the product- and institution-level typologies, by their rules over the whole feed.

The five rules are those of the detectors (models/detectors/{excess_return, maturity_mismatch,
investor_cap_breach, rapid_growth, disguised_clearing}.py), restated here from their spec and
evaluated over *every* product of the province (the plan's new and patched products included) and
*every* record of the feed, injected or not, so that precision can be measured:

- ``excess_return`` per product (key ``product:<id>``): (1) declared yield above the project rate;
  (2) above ``lpr_one_year * lpr_multiple``; (3) robust z over the declared yields of the products
  of the same institution type above ``robust_z`` (at least ``min_peers`` products, MAD > 0);
  (4) payouts (instructed custody debits with the product to ``investor`` accounts) at least
  ``min_payout`` and repayments (custody credits with the product from ``borrower`` accounts) over
  payouts below ``payout_coverage_min``, only when the term is not split.
- ``maturity_mismatch`` per product: ``term_days < underlying_term_days * term_ratio_max``; with
  uncovered payouts (as (4)) the same label adds ``rollover``.
- ``investor_cap_breach`` per product: distinct payers (neither an account of the institution nor a
  ``borrower``) of custody credits with the product above the product's ``investor_cap``, or above
  ``default_cap`` for institution types not in ``uncapped_types``.
- ``rapid_growth`` per institution and Beijing day (key ``<institution>:<day>``): the day's credits
  on its custody and reserve accounts from accounts not its own, against the median of the
  previous ``trend_days`` days (only days from the institution's first record on, at least
  ``min_history_days`` of them): inflow at least ``min_inflow`` and ``growth_ratio`` times
  ``max(baseline, min_inflow / growth_ratio)``, or new payers (not seen in the previous
  ``trend_days`` days) at least ``min_new_investors`` and ``growth_ratio`` times ``max(1, their
  baseline)``.
- ``disguised_clearing`` per payment institution and day: credits from outside on its accounts at
  one bank mirrored (amount within ``amount_tolerance``, within ``max_lag_seconds``) by a debit to
  outside from its account at another bank; at least ``min_customers`` distinct payers a day.

"Accounts of the institution" are its custody, reserve and own operating accounts, the records an
institution-level detector sees (models/institution_detection.INSTITUTION_ROLES). Thresholds come
from the plan (the file), with the detectors' defaults for keys the file does not carry.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from models.thresholds import Thresholds
from schemas.fields import amount_to_cents, cents_to_text
from schemas.reference import Account, AccountRole, InstitutionType, Product
from services.simulator.violations_base import POSITIVE, ViolationLabel, _iso, _ratio, _ts

INSTITUTION_ROLES = frozenset(
    {AccountRole.customer_custody, AccountRole.payment_reserve, AccountRole.own_operating}
)
_INFLOW_ROLES = frozenset({AccountRole.customer_custody, AccountRole.payment_reserve})
PRODUCT_TYPOLOGIES = ("excess_return", "maturity_mismatch", "investor_cap_breach")
DAY_TYPOLOGIES = ("rapid_growth", "disguised_clearing")
TOP_N = 50  # records a day-level label cites besides the injected ones (as the detectors' evidence)
_MAD_SCALE = Fraction(14826, 10000)

# The detectors' defaults for keys models/thresholds.toml may not carry.
DEFAULTS: dict[str, dict[str, Any]] = {
    "excess_return": {"robust_z": "3.5", "lpr_one_year": "0.030", "lpr_multiple": 4,
                      "payout_coverage_min": "1.0", "min_peers": 5, "min_payout": "100000.00"},
    "maturity_mismatch": {"term_ratio_max": "0.5", "min_payout": "100000.00", "payout_coverage_min": "1.0"},
    "investor_cap_breach": {"default_cap": 200, "uncapped_types": ["p2p_lending", "payment"]},
    "rapid_growth": {"trend_days": 14, "growth_ratio": "3.0", "min_inflow": "1000000.00",
                     "min_history_days": 5, "min_new_investors": 20},
    "disguised_clearing": {"max_lag_seconds": 3600, "min_customers": 20, "amount_tolerance": "0.00"},
}  # fmt: skip


def config(thresholds: Thresholds, typology: str, institution_type: str | None) -> dict[str, Any]:
    return {**DEFAULTS[typology], **thresholds.get(typology, institution_type)}


def frac(value: Any) -> Fraction:
    return Fraction(str(value))


def money(value: Any) -> int:
    return amount_to_cents(str(value))


def uncapped_types(cfg: Mapping[str, Any]) -> frozenset[str]:
    value = cfg.get("uncapped_types", ())
    if isinstance(value, str):
        value = value.split(",")
    return frozenset(str(item).strip() for item in value if str(item).strip())


def median(values: Sequence[Fraction | int]) -> Fraction:
    ordered = sorted(Fraction(v) for v in values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def peer_stats(yields: Sequence[Fraction]) -> tuple[Fraction, Fraction]:
    """Median and median absolute deviation."""
    mid = median(yields)
    return mid, median([abs(y - mid) for y in yields])


def robust_z(value: Fraction, yields: Sequence[Fraction]) -> Fraction | None:
    """(value - median) / (1.4826 * MAD) over ``yields`` (which hold ``value``); None when MAD is 0."""
    mid, mad = peer_stats(yields)
    return (value - mid) / (_MAD_SCALE * mad) if mad > 0 else None


def is_split(product: Product, ratio_max: Fraction) -> bool:
    if product.term_days is None or product.underlying_term_days is None:
        return False
    return product.term_days < product.underlying_term_days * ratio_max


@dataclass(slots=True)
class _Flows:
    """One product's payouts and repayments and the first payment of each of its investors."""

    paid: int = 0
    repaid: int = 0
    payouts: list[tuple[int, str, str, int]] = field(default_factory=list)  # (ts, bank, record id, cents)
    repayments: list[tuple[int, str, str, int]] = field(default_factory=list)
    first: dict[str, tuple[int, str, str]] = field(default_factory=dict)  # payer -> (ts, record id, bank)
    first_seen: int | None = None
    # Per typology, while payouts were uncovered: (paid, repaid, latest payout) first and last seen.
    uncovered: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Leg:
    ts: int
    bank: str
    party: str  # the customer (credit) or payee (debit)
    cents: int
    record_id: str
    account: str


class InstitutionTruth:
    """Watches every transaction record and labels the five typologies by their rules.

    ``accounts`` and ``products`` are the reference data as pushed (the province's with the plan's
    upserted); ``injection_of`` names the injection behind a record id, ``typology_of`` the
    typology of an injection.
    """

    def __init__(
        self,
        thresholds: Thresholds,
        institution_types: Mapping[str, InstitutionType],
        accounts: Mapping[str, Account],
        products: Iterable[Product],
        injection_of: Callable[[str], str | None],
        typology_of: Callable[[str], str],
        start: int,
        end: int,
    ) -> None:
        self.thresholds = thresholds
        self.types = {iid: kind.value for iid, kind in institution_types.items()}
        self.accounts = accounts
        self.products = {p.product_id: p for p in products}
        self.injection_of = injection_of
        self.typology_of = typology_of
        self.start, self.end = start, end
        self._cfg: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.flows: dict[str, _Flows] = defaultdict(_Flows)
        self.first_day: dict[str, str] = {}
        self.inflow: dict[str, Counter[str]] = defaultdict(Counter)
        self.payers: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.top: dict[tuple[str, str], list[tuple[int, int, str, str]]] = defaultdict(list)
        self.injected_in: dict[tuple[str, str], dict[str, list[tuple[int, str, str]]]] = defaultdict(dict)
        self.investor_inflow: dict[str, Counter[str]] = defaultdict(Counter)
        self.credits: dict[str, list[_Leg]] = defaultdict(list)
        self.debits: dict[str, dict[int, list[_Leg]]] = defaultdict(lambda: defaultdict(list))
        self._dirty: set[str] = set()
        # The account a label names: the institution's custody account, or its main reserve.
        self._holder: dict[str, str] = {}
        for account in accounts.values():
            if account.institution_id and account.role in _INFLOW_ROLES:
                current = self._holder.get(account.institution_id)
                if current is None or (
                    self.accounts[current].role is AccountRole.payment_reserve
                    and account.role is AccountRole.customer_custody
                ):
                    self._holder[account.institution_id] = account.account_id

    # -- reference helpers -----------------------------------------------------------------

    def cfg(self, typology: str, institution_id: str | None) -> dict[str, Any]:
        kind = self.types.get(institution_id or "")
        key = (typology, kind)
        if key not in self._cfg:
            self._cfg[key] = config(self.thresholds, typology, kind)
        return self._cfg[key]

    def role(self, account_id: str | None) -> AccountRole | None:
        account = self.accounts.get(account_id or "")
        return account.role if account is not None else None

    def is_own(self, institution_id: str, account_id: str | None) -> bool:
        account = self.accounts.get(account_id or "")
        return (
            account is not None
            and account.institution_id == institution_id
            and account.role in INSTITUTION_ROLES
        )

    def split(self, product_id: str) -> bool:
        product = self.products.get(product_id)
        if product is None:
            return False
        return is_split(
            product, frac(self.cfg("maturity_mismatch", product.institution_id)["term_ratio_max"])
        )

    def peers(self, institution_type: str) -> list[Fraction]:
        return [
            frac(p.declared_annual_yield)
            for p in self.products.values()
            if self.types.get(p.institution_id) == institution_type
        ]

    # -- the records -----------------------------------------------------------------------

    def see(self, bank: str, r: dict) -> None:
        """One transaction record (any bank, any account)."""
        account = self.accounts.get(r["account_id"])
        if account is None or account.role not in INSTITUTION_ROLES or not account.institution_id:
            return
        iid, role = account.institution_id, account.role
        stamp, rid = r["booked_at"], r["record_id"]
        day, ts, cents = stamp[:10], _ts(stamp), amount_to_cents(r["amount"])
        if iid not in self.first_day or day < self.first_day[iid]:
            self.first_day[iid] = day
        credit = r["direction"] == "credit"
        counterparty = r["counterparty_account"]
        outside = not self.is_own(iid, counterparty)
        other_role = self.role(counterparty)
        if role is AccountRole.customer_custody:
            product_id = r.get("product_id")
            if product_id:
                flows = self.flows[product_id]
                if flows.first_seen is None or ts < flows.first_seen:
                    flows.first_seen = ts
                if not credit and r.get("instruction_id") and other_role is AccountRole.investor:
                    flows.paid += cents
                    self._dirty.add(product_id)
                    flows.payouts.append((ts, bank, rid, cents))
                elif credit and other_role is AccountRole.borrower:
                    flows.repaid += cents
                    self._dirty.add(product_id)
                    flows.repayments.append((ts, bank, rid, cents))
                if credit and outside and other_role is not AccountRole.borrower:
                    first = flows.first.get(counterparty)
                    if first is None or (ts, rid) < first[:2]:
                        flows.first[counterparty] = (ts, rid, bank)
            if credit and other_role is AccountRole.investor:
                self.investor_inflow[iid][day] += cents
        if role in _INFLOW_ROLES and credit and outside:
            self.inflow[iid][day] += cents
            self.payers[iid][day].add(counterparty)
            top = self.top[(iid, day)]
            top.append((-cents, ts, rid, bank))
            if len(top) > 4 * TOP_N:
                top.sort()
                del top[TOP_N:]
            injection = self.injection_of(rid)
            if injection:
                self.injected_in[(iid, day)].setdefault(injection, []).append((ts, bank, rid))
        if self.types.get(iid) == InstitutionType.payment.value and outside:
            leg = _Leg(ts, bank, counterparty, cents, rid, account.account_id)
            if credit:
                self.credits[iid].append(leg)
            else:
                self.debits[iid][cents].append(leg)

    def settle(self) -> None:
        """Check the payout coverage of the products whose sums changed (the feed calls this
        after every tick). A product's payouts that were uncovered once stay a finding, as the
        alert raised then does, even when later repayments cover them again."""
        for product_id in sorted(self._dirty):
            flows, product = self.flows[product_id], self.products.get(product_id)
            if product is None or not flows.paid:
                continue
            coverage = Fraction(flows.repaid, flows.paid)
            last = max(leg[0] for leg in flows.payouts)
            for typology in ("excess_return", "maturity_mismatch"):
                cfg = self.cfg(typology, product.institution_id)
                if flows.paid >= money(cfg["min_payout"]) and coverage < frac(cfg["payout_coverage_min"]):
                    seen = flows.uncovered.setdefault(typology, [(flows.paid, flows.repaid, last)])
                    seen[1:] = [(flows.paid, flows.repaid, last)]
        self._dirty.clear()

    # -- what the injected steps ask -------------------------------------------------------

    def payout_sums(self, product_id: str) -> tuple[int, int]:
        """(repaid, paid out) of a product so far."""
        flows = self.flows.get(product_id)
        return (flows.repaid, flows.paid) if flows else (0, 0)

    def distinct_investors(self, product_id: str) -> int:
        flows = self.flows.get(product_id)
        return len(flows.first) if flows else 0

    def _days_before(self, iid: str, day: str) -> list[str]:
        """The trend's history days of ``day``: the previous ``trend_days`` days from the first record on."""
        trend = int(self.cfg("rapid_growth", iid)["trend_days"])
        first = self.first_day.get(iid)
        current = date.fromisoformat(day)
        days = [(current - timedelta(days=n)).isoformat() for n in range(trend, 0, -1)]
        return [d for d in days if first is not None and d >= first]

    def _new_payers(self, iid: str, day: str) -> int:
        payers = self.payers[iid].get(day)
        if not payers:
            return 0
        trend = int(self.cfg("rapid_growth", iid)["trend_days"])
        current = date.fromisoformat(day)
        seen: set[str] = set()
        for n in range(1, trend + 1):
            seen |= self.payers[iid].get((current - timedelta(days=n)).isoformat(), set())
        return len(payers - seen)

    def growth_baseline(self, iid: str, day: str) -> tuple[int, Fraction, Fraction]:
        """(history days, baseline inflow in cents, baseline of new payers) of ``day``."""
        history = self._days_before(iid, day)
        if not history:
            return 0, Fraction(0), Fraction(0)
        inflow = median([self.inflow[iid].get(d, 0) for d in history])
        fresh = median([self._new_payers(iid, d) for d in history])
        return len(history), inflow, fresh

    # -- labels ----------------------------------------------------------------------------

    def labels(self, product_episode: Mapping[str, str]) -> list[ViolationLabel]:
        """Every positive of the five typologies in the records so far (and the reference data)."""
        return [
            *self._product_labels(product_episode),
            *self._growth_labels(),
            *self._clearing_labels(),
        ]

    def _label(
        self,
        typology: str,
        what: str,
        key: str,
        institution_id: str,
        entries: Iterable[tuple[int, str, str]],
        window: tuple[str, str] | None,
        metrics: dict[str, Any],
        note: str,
        *,
        episode: str | None = None,
        product_id: str | None = None,
        account_id: str | None = None,
    ) -> ViolationLabel:
        ordered = sorted(set(entries))
        if window is None:
            window = (
                (_iso(ordered[0][0]), _iso(ordered[-1][0])) if ordered else (_iso(self.start), _iso(self.end))
            )
        if episode is None:
            episode = self._episode([rid for _, _, rid in ordered], typology)
        if account_id is None:
            account_id = self._holder.get(institution_id)
        return ViolationLabel(
            labels=(typology, f"{POSITIVE}:{what}"),
            records=tuple((bank, rid) for _, bank, rid in ordered),
            institution_id=institution_id,
            at=_ts(window[0]),
            label_id=f"{typology}/{key}",
            typology=typology,
            kind=POSITIVE,
            what=what,
            key=key,
            account_id=account_id,
            record_ids=tuple(rid for _, _, rid in ordered),
            window_start=window[0],
            window_end=window[1],
            episode_id=episode,
            product_id=product_id,
            metrics=metrics,
            note=note,
        )

    def _episode(self, record_ids: Iterable[str], typology: str) -> str | None:
        """The injection behind the records: one of ``typology`` first, else the first one met."""
        found = None
        for rid in record_ids:
            injection = self.injection_of(rid)
            if injection and self.typology_of(injection) == typology:
                return injection
            found = found or injection
        return found

    def _evidence(self, legs: list[tuple[int, str, str, int]]) -> list[tuple[int, str, str]]:
        """The injected records and the ``TOP_N`` largest others (by amount, time, id)."""
        injected = [(ts, bank, rid) for ts, bank, rid, _ in legs if self.injection_of(rid)]
        largest = sorted(legs, key=lambda leg: (-leg[3], leg[0], leg[2]))[:TOP_N]
        return sorted(set(injected) | {(ts, bank, rid) for ts, bank, rid, _ in largest})

    def _product_window(self, product: Product, flows: _Flows | None) -> tuple[str, str] | None:
        if product.sale_start:
            stamp = _iso(_ts(product.sale_start))
            return stamp, stamp
        if flows is not None and flows.first_seen is not None:
            return _iso(flows.first_seen), _iso(flows.first_seen)
        return None  # the detector waits for a first record

    def _product_labels(self, product_episode: Mapping[str, str]) -> list[ViolationLabel]:
        out: list[ViolationLabel] = []
        peer_cache: dict[str, tuple[list[Fraction], Fraction, Fraction]] = {}
        for pid in sorted(self.products):
            product = self.products[pid]
            iid = product.institution_id
            kind = self.types.get(iid)
            flows = self.flows.get(pid)
            window = self._product_window(product, flows)
            if window is None:
                continue
            episode = product_episode.get(pid)
            declared = frac(product.declared_annual_yield)
            er = self.cfg("excess_return", iid)
            mm = self.cfg("maturity_mismatch", iid)
            ratio_max = frac(mm["term_ratio_max"])
            split = is_split(product, ratio_max)
            paid, repaid = (flows.paid, flows.repaid) if flows else (0, 0)
            payout_records = self._evidence(flows.payouts + flows.repayments) if flows else []
            coverage = Fraction(repaid, paid) if paid else None

            # excess_return
            if kind not in peer_cache:
                yields = self.peers(kind or "")
                mid, mad = peer_stats(yields) if yields else (Fraction(0), Fraction(0))
                peer_cache[kind or ""] = (yields, mid, mad)
            yields, mid, mad = peer_cache[kind or ""]
            cap = frac(er["lpr_one_year"]) * frac(er["lpr_multiple"])
            z = (declared - mid) / (_MAD_SCALE * mad) if mad > 0 else None
            signals = []
            project = frac(product.underlying_project_rate) if product.underlying_project_rate else None
            if project is not None and declared > project:
                signals.append("yield_above_project")
            if declared > cap:
                signals.append("yield_above_legal_cap")
            if len(yields) >= int(er["min_peers"]) and z is not None and z > frac(er["robust_z"]):
                signals.append("peer_outlier")
            uncovered = flows.uncovered.get("excess_return") if flows else None
            if uncovered and not split:
                signals.append("payout_coverage")
            if signals:
                metrics = {
                    "signals": signals,
                    "declared_annual_yield": product.declared_annual_yield,
                    "underlying_project_rate": product.underlying_project_rate,
                    "legal_cap": _ratio(cap),
                    "peer_count": len(yields),
                    "peer_median": _ratio(mid),
                    "peer_mad": _ratio(mad),
                    "robust_z": _ratio(z) if z is not None else None,
                    "paid_out": cents_to_text(paid),
                    "repaid": cents_to_text(repaid),
                    "payout_coverage": _ratio(coverage) if coverage is not None else None,
                    "term_split": split,
                    **_uncovered_metrics(uncovered if not split else None),
                }
                with_payouts = "payout_coverage" in signals
                note = f"product {pid}: " + ", ".join(s.replace("_", " ") for s in signals)
                if with_payouts:
                    note += f" (paid out {cents_to_text(paid)}, repaid {cents_to_text(repaid)})"
                records = payout_records if with_payouts else []
                out.append(self._label(
                    "excess_return", "+".join(signals), f"product:{pid}", iid, records,
                    (window[0], _iso(uncovered[-1][2])) if with_payouts and uncovered else window, metrics, note,
                    episode=self._episode([rid for _, _, rid in sorted(records)], "excess_return") or episode,
                    product_id=pid,
                ))  # fmt: skip

            # maturity_mismatch
            if split:
                rollover = flows.uncovered.get("maturity_mismatch") if flows else None
                what = "term_split+rollover" if rollover else "term_split"
                payout_days = sorted({_iso(leg[0])[:10] for leg in flows.payouts}) if flows else []
                metrics = {
                    "term_days": product.term_days,
                    "underlying_term_days": product.underlying_term_days,
                    "term_ratio": _ratio(Fraction(product.term_days, product.underlying_term_days)),
                    "term_ratio_max": _ratio(ratio_max),
                    "paid_out": cents_to_text(paid),
                    "repaid": cents_to_text(repaid),
                    "payout_coverage": _ratio(coverage) if coverage is not None else None,
                    "investor_inflow": cents_to_text(
                        sum(self.investor_inflow[iid].get(d, 0) for d in payout_days)
                    ),
                    **_uncovered_metrics(rollover),
                }
                note = (f"product {pid}: a {product.term_days}-day term on a {product.underlying_term_days}-day "
                        f"project")  # fmt: skip
                if rollover:
                    note += f"; investors paid {cents_to_text(paid)} against {cents_to_text(repaid)} repaid"
                records = payout_records if rollover else []
                out.append(self._label(
                    "maturity_mismatch", what, f"product:{pid}", iid, records,
                    (window[0], _iso(rollover[-1][2])) if rollover else window, metrics, note,
                    episode=self._episode([rid for _, _, rid in sorted(records)], "maturity_mismatch") or episode,
                    product_id=pid,
                ))  # fmt: skip

            # investor_cap_breach
            ic = self.cfg("investor_cap_breach", iid)
            cap_n = product.investor_cap
            source = "product"
            if cap_n is None and kind not in uncapped_types(ic):
                cap_n, source = int(ic["default_cap"]), "default_cap"
            if cap_n is not None and flows is not None and len(flows.first) > cap_n:
                firsts = sorted(flows.first.values())
                entries = [(ts, bank, rid) for ts, rid, bank in firsts]
                metrics = {"distinct_investors": len(firsts), "investor_cap": cap_n, "cap_source": source,
                           "over_cap": len(firsts) - cap_n}  # fmt: skip
                note = f"product {pid}: {len(firsts)} distinct investors paid in, above the cap of {cap_n}"
                out.append(self._label(
                    "investor_cap_breach", "over_cap", f"product:{pid}", iid, entries,
                    (_iso(firsts[0][0]), _iso(firsts[cap_n][0])), metrics, note,
                    episode=self._episode([rid for _, rid, _ in firsts], "investor_cap_breach") or episode,
                    product_id=pid,
                ))  # fmt: skip
        return out

    def _growth_labels(self) -> list[ViolationLabel]:
        out = []
        for iid in sorted(self.inflow):
            cfg = self.cfg("rapid_growth", iid)
            ratio, min_inflow = frac(cfg["growth_ratio"]), money(cfg["min_inflow"])
            min_history, min_new = int(cfg["min_history_days"]), int(cfg["min_new_investors"])
            for day in sorted(self.inflow[iid]):
                history, baseline, baseline_new = self.growth_baseline(iid, day)
                if history < min_history:
                    continue
                inflow, fresh = self.inflow[iid][day], self._new_payers(iid, day)
                signals = []
                if inflow >= min_inflow and inflow >= ratio * max(baseline, Fraction(min_inflow) / ratio):
                    signals.append("inflow_growth")
                if fresh >= min_new and fresh >= ratio * max(Fraction(1), baseline_new):
                    signals.append("new_investors")
                if not signals:
                    continue
                top = sorted(self.top[(iid, day)])[:TOP_N]
                entries = [(ts, bank, rid) for _, ts, rid, bank in top]
                injected = self.injected_in.get((iid, day), {})
                for injection, legs in injected.items():
                    if self.typology_of(injection) == "rapid_growth":
                        entries.extend(legs)
                episode = next((i for i in injected if self.typology_of(i) == "rapid_growth"), None)
                episode = episode or next(iter(injected), None)
                metrics = {
                    "signals": signals,
                    "day": day,
                    "inflow": cents_to_text(inflow),
                    "baseline_inflow": cents_to_text(math.floor(baseline)),
                    "inflow_ratio": _ratio(Fraction(inflow) / baseline) if baseline else None,
                    "new_investors": fresh,
                    "baseline_new_investors": _ratio(baseline_new),
                    "history_days": history,
                }
                note = (f"{day}: inflow {metrics['inflow']} against a trailing median of "
                        f"{metrics['baseline_inflow']}; {fresh} new payers against a median of "
                        f"{float(baseline_new):g}")  # fmt: skip
                out.append(self._label("rapid_growth", "+".join(signals), f"{iid}:{day}", iid, entries,
                                       None, metrics, note, episode=episode))  # fmt: skip
        return out

    def _clearing_labels(self) -> list[ViolationLabel]:
        out = []
        for iid in sorted(self.credits):
            cfg = self.cfg("disguised_clearing", iid)
            lag, tolerance = int(cfg["max_lag_seconds"]), frac(cfg["amount_tolerance"])
            min_customers = int(cfg["min_customers"])
            debits = self.debits.get(iid, {})
            amounts = sorted(debits)
            by_day: dict[str, list[tuple[_Leg, list[_Leg]]]] = defaultdict(list)
            for credit in self.credits[iid]:
                if tolerance:
                    spread = credit.cents * tolerance
                    lo = bisect_left(amounts, math.ceil(credit.cents - spread))
                    hi = bisect_right(amounts, math.floor(credit.cents + spread))
                    candidates = [leg for amount in amounts[lo:hi] for leg in debits[amount]]
                else:
                    candidates = debits.get(credit.cents, [])
                mirrors = [d for d in candidates if d.bank != credit.bank and abs(d.ts - credit.ts) <= lag]
                if mirrors:
                    by_day[_iso(credit.ts)[:10]].append((credit, mirrors))
            for day in sorted(by_day):
                pairs = by_day[day]
                customers = {credit.party for credit, _ in pairs}
                if len(customers) < min_customers:
                    continue
                entries = set()
                for credit, mirrors in pairs:
                    entries.add((credit.ts, credit.bank, credit.record_id))
                    entries.update((d.ts, d.bank, d.record_id) for d in mirrors)
                banks = sorted({credit.bank for credit, _ in pairs} | {d.bank for _, ms in pairs for d in ms})
                total = sum(credit.cents for credit, _ in pairs)
                metrics = {"day": day, "customers": len(customers), "mirrored_credits": len(pairs),
                           "amount": cents_to_text(total), "banks": banks}  # fmt: skip
                note = (f"{day}: {len(customers)} customers' payments at one bank mirrored by payments to "
                        f"payees from another bank within {lag} s, {metrics['amount']} in all")  # fmt: skip
                receiving = Counter(credit.account for credit, _ in pairs).most_common(1)[0][0]
                out.append(self._label("disguised_clearing", "cross_bank_mirrors", f"{iid}:{day}", iid,
                                       entries, None, metrics, note, account_id=receiving))  # fmt: skip
        return out


def _uncovered_metrics(seen: list[tuple[int, int, int]] | None) -> dict[str, Any]:
    """When payouts were first and last seen above the repayments, and the sums then."""
    if not seen:
        return {}
    (paid, repaid, at), (last_paid, last_repaid, last_at) = seen[0], seen[-1]
    return {
        "first_uncovered": {"at": _iso(at), "paid_out": cents_to_text(paid), "repaid": cents_to_text(repaid)},
        "last_uncovered": {"at": _iso(last_at), "paid_out": cents_to_text(last_paid),
                           "repaid": cents_to_text(last_repaid)},
    }  # fmt: skip
