"""Scoring detectors against ground truth: precision, recall, F1 and alert delay per typology.

Pure: labels (the simulator's ``labels.jsonl``) and alerts (each alert's latest data and the event
time at which it was first raised) in, a score table out. ``fundwatch eval`` gathers both from a
real run of the pipeline.

Matching. An alert and a positive label of the same typology pair up when

- the alert id is the one the label's key would give (``alert_id_for(typology, key)``): labels
  use the detectors' keys where the key is known in advance (an account and day, a product);
- or the label names a product and the alert is that product's (key ``product:<id>``);
- or they share a record id (patterns whose alert key is a period the label cannot know, such as
  a fund pool's).

Precision = alerts that pair with some positive label / all alerts of the typology.
Recall = positive labels that pair with some alert / all positive labels of the typology.
A hard negative is *flagged* when an alert of the typology it resembles pairs with it the same way.

Delay: for each paired label, the event time at which its first alert was raised (the window end
of the alert's first revision) minus the label's start (the first record of the violation, or the
start of the data when the label's window opened before it: a product sold for months before the
data begins), never below 0. It measures how much of a violation the detectors must see before they speak, not
processing time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from models.findings import TYPOLOGIES, alert_id_for

POSITIVE = "positive"
HARD_NEGATIVE = "hard_negative"


@dataclass(frozen=True)
class SeenAlert:
    alert_id: str
    typology: str
    record_ids: frozenset[str]
    first_event_time: int  # epoch seconds: the window end of the alert's first revision
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TypologyScore:
    typology: str
    labels: int = 0
    alerts: int = 0
    labels_found: int = 0
    alerts_true: int = 0
    hard_negatives: int = 0
    hard_negatives_flagged: int = 0
    delays_s: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # label ids without an alert
    # positive labels the variant's data cannot settle (its fields say nothing the rule needs):
    # neither in ``labels`` nor in recall; an alert pairing with one still counts as true
    undecidable: int = 0
    false_alerts: list[str] = field(default_factory=list)  # alert ids without a label

    @property
    def precision(self) -> float | None:
        return self.alerts_true / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.labels_found / self.labels if self.labels else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def delay_median_s(self) -> float | None:
        return float(median(self.delays_s)) if self.delays_s else None

    @property
    def delay_max_s(self) -> int | None:
        return max(self.delays_s) if self.delays_s else None

    def to_builtins(self) -> dict[str, Any]:
        return {
            "typology": self.typology,
            "labels": self.labels,
            "alerts": self.alerts,
            "labels_found": self.labels_found,
            "alerts_true": self.alerts_true,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "hard_negatives": self.hard_negatives,
            "hard_negatives_flagged": self.hard_negatives_flagged,
            "undecidable": self.undecidable,
            "delay_median_s": self.delay_median_s,
            "delay_max_s": self.delay_max_s,
            "missed": self.missed[:20],
            "false_alerts": self.false_alerts[:20],
        }


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _candidate_ids(label: Mapping[str, Any]) -> set[str]:
    typology = label["typology"]
    ids = set()
    if label.get("key"):
        ids.add(alert_id_for(typology, str(label["key"])))
    if label.get("product_id"):
        ids.add(alert_id_for(typology, f"product:{label['product_id']}"))
    return ids


def _pairs(label: Mapping[str, Any], alerts: list[SeenAlert], by_id: dict[str, SeenAlert]) -> list[SeenAlert]:
    found = {alert.alert_id: alert for alert_id in _candidate_ids(label) if (alert := by_id.get(alert_id))}
    records = set(label.get("record_ids") or ())
    if records:
        for alert in alerts:
            if alert.alert_id not in found and alert.record_ids & records:
                found[alert.alert_id] = alert
    return list(found.values())


def score(
    labels: Iterable[Mapping[str, Any]],
    alerts: Iterable[SeenAlert],
    data_start: int = 0,
    undecidable: Collection[str] = (),
) -> dict[str, TypologyScore]:
    """One score per typology that has labels or alerts, in the contract's order. ``data_start``
    (epoch seconds) is when the data begins; ``undecidable`` holds the ids of positive labels the
    data as pushed cannot settle (services/simulator/variants.undecidable_labels), counted apart."""
    by_typology: dict[str, list[SeenAlert]] = {}
    for alert in alerts:
        by_typology.setdefault(alert.typology, []).append(alert)
    labels_by_typology: dict[str, list[Mapping[str, Any]]] = {}
    for label in labels:
        labels_by_typology.setdefault(label["typology"], []).append(label)

    scores: dict[str, TypologyScore] = {}
    for typology in TYPOLOGIES:
        mine = by_typology.get(typology, [])
        truth = labels_by_typology.get(typology, [])
        if not mine and not truth:
            continue
        result = scores[typology] = TypologyScore(typology, alerts=len(mine))
        by_id = {alert.alert_id: alert for alert in mine}
        paired_alerts: set[str] = set()
        for label in truth:
            pairs = _pairs(label, mine, by_id)
            if label.get("kind") == HARD_NEGATIVE:
                result.hard_negatives += 1
                result.hard_negatives_flagged += bool(pairs)
                continue
            if label.get("label_id") in undecidable:
                result.undecidable += 1
                paired_alerts.update(alert.alert_id for alert in pairs)
                continue
            result.labels += 1
            if pairs:
                result.labels_found += 1
                paired_alerts.update(alert.alert_id for alert in pairs)
                opened = (
                    _epoch(label["window_start"]) if label.get("window_start") else int(label.get("at", 0))
                )
                start = max(opened, data_start)
                first = min(alert.first_event_time for alert in pairs)
                result.delays_s.append(max(0, first - start))
            else:
                result.missed.append(str(label.get("label_id") or label.get("key")))
        result.alerts_true = len(paired_alerts)
        result.false_alerts = sorted(alert.alert_id for alert in mine if alert.alert_id not in paired_alerts)
    return scores


def fold_alert_events(events: Iterable[Mapping[str, Any]]) -> list[SeenAlert]:
    """Alert data as the alerts topic carried it (every revision, any order, repeats allowed)
    folded into one SeenAlert per alert: the latest revision's data, the first one's time."""
    latest: dict[str, Mapping[str, Any]] = {}
    first: dict[str, tuple[int, int]] = {}
    for data in events:
        alert_id = data["alert_id"]
        revision = int(data.get("revision", 1))
        if alert_id not in latest or revision >= int(latest[alert_id].get("revision", 1)):
            latest[alert_id] = data
        seen_at = _epoch(str(data["window_end"]).replace("Z", "+00:00"))
        if alert_id not in first or revision < first[alert_id][0]:
            first[alert_id] = (revision, seen_at)
    return [
        SeenAlert(
            alert_id=alert_id,
            typology=data["typology"],
            record_ids=frozenset(data.get("evidence", {}).get("record_ids") or ()),
            first_event_time=first[alert_id][1],
            data=data,
        )
        for alert_id, data in sorted(latest.items())
    ]
