"""Alerts as CONTRACT.md §4 shapes them: a CloudEvents 1.0 event in structured JSON mode whose
``data`` is the alert. The same types serialise alerts for ClickHouse, the alerts topic, the API
and webhooks, so they cannot drift apart."""

from __future__ import annotations

from typing import Any

import msgspec

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
EVENT_SOURCE = "urn:fundwatch:alerts"
STATUSES = ("open", "acknowledged", "assigned", "disposed")


class Evidence(msgspec.Struct):
    record_ids: list[str]
    metrics: dict[str, Any]
    thresholds: dict[str, Any]


class Explanation(msgspec.Struct):
    zh: str
    en: str


class DetectorInfo(msgspec.Struct):
    name: str
    version: str


class AlertData(msgspec.Struct):
    alert_id: str
    typology: str
    severity: str
    score: float
    institution_id: str
    region: str
    accounts: list[str]
    amount: str  # decimal string, CNY
    window_start: str  # RFC 3339, event time
    window_end: str
    evidence: Evidence
    explanation: Explanation
    detector: DetectorInfo
    rule: str = ""  # the seed plan's section the rule comes from
    status: str = "open"
    created_at: str = ""
    updated_at: str = ""
    revision: int = 1  # grows each time the same violation's figures or its case change
    # The case (CONTRACT.md §2 actions; models/alert_case.py): set by desks' actions, laid over
    # every version a worker emits. None until an action sets them, so older documents decode.
    disposition: str | None = None  # of a disposed alert (DOMAIN.md 四(三))
    assignee: str | None = None
    reopened_reason: str | None = None  # why the alert reopened itself after disposal
    # Held back from webhooks by a suppression (still stored and listed): the dispatcher delivers
    # nothing of an alert event whose data says ``suppressed``.
    suppressed: bool = False
    suppression_id: str | None = None


class AlertEvent(msgspec.Struct, omit_defaults=True):
    """The CloudEvents envelope (structured mode). ``subject`` is the institution id, left out
    when no institution is known: CloudEvents 1.0 allows no empty subject, and its SDKs refuse
    one. Every other attribute is always written."""

    id: str
    source: str
    type: str
    time: str
    data: AlertData
    specversion: str
    datacontenttype: str
    subject: str | None = None


_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(AlertEvent)


def mask_account(account_id: str) -> str:
    """The masked form DOMAIN.md gives for data leaving FundWatch: the last 4 characters."""
    return "****" + account_id[-4:] if len(account_id) > 4 else "****"


def _names_accounts(key: str) -> bool:
    """A metrics key whose value is account numbers (or is keyed by them)."""
    return key in {
        "accounts",
        "account",
        "account_id",
        "counterparty",
        "counterparties",
        "counterparty_account",
    } or key.endswith(("_accounts", "_by_account", "_account", "_account_id", "_counterparties"))


def _mask_metrics(value: Any, accounts: frozenset[str]) -> Any:
    """Metrics with account numbers masked: any value or key that is one of the alert's accounts,
    and the account numbers that sit under a key naming accounts."""
    if isinstance(value, dict):
        return {
            (mask_account(key) if key in accounts else key): (
                _mask_named(item, accounts) if _names_accounts(str(key)) else _mask_metrics(item, accounts)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_metrics(item, accounts) for item in value]
    if isinstance(value, str) and value in accounts:
        return mask_account(value)
    return value


def _mask_named(value: Any, accounts: frozenset[str]) -> Any:
    """What a key naming accounts holds: an account number, a list of them, a mapping keyed by
    them, or rows that lead with one (``[account, amount, ...]``). Only the numbers are cut; the
    figures beside them stay as they are, and records inside name their own fields."""
    if isinstance(value, str):
        return mask_account(value)
    if isinstance(value, dict):
        return {mask_account(str(key)): _mask_metrics(item, accounts) for key, item in value.items()}
    if isinstance(value, list):
        masked: list[Any] = []
        for item in value:
            if isinstance(item, str):
                masked.append(mask_account(item))
            elif isinstance(item, list) and item and isinstance(item[0], str):
                masked.append([mask_account(item[0]), *(_mask_metrics(x, accounts) for x in item[1:])])
            else:
                masked.append(_mask_metrics(item, accounts))
        return masked
    return value


def mask_alert(alert: AlertData) -> AlertData:
    """The alert as it may leave FundWatch (DOMAIN.md, Personal data): account numbers cut to
    their last 4 characters wherever they appear. Explanations are written masked already."""
    accounts = frozenset(alert.accounts)
    evidence = msgspec.structs.replace(
        alert.evidence, metrics=_mask_metrics(alert.evidence.metrics, accounts)
    )
    return msgspec.structs.replace(
        alert, accounts=[mask_account(a) for a in alert.accounts], evidence=evidence
    )


def to_event(alert: AlertData, masked: bool) -> AlertEvent:
    """The alert as a CloudEvent; ``masked`` for anything sent outside (webhooks)."""
    data = mask_alert(alert) if masked else alert
    return AlertEvent(
        id=alert.alert_id,
        source=EVENT_SOURCE,
        type=f"fundwatch.alert.{alert.typology}",
        time=alert.updated_at or alert.created_at,
        data=data,
        specversion="1.0",
        datacontenttype="application/json",
        subject=alert.institution_id or None,
    )


def encode_event(event: AlertEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(body: bytes) -> AlertEvent:
    return _event_decoder.decode(body)
