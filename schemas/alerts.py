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


class AlertData(msgspec.Struct, omit_defaults=True):
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
    revision: int = 1  # grows each time the same violation's figures change


class AlertEvent(msgspec.Struct):
    """The CloudEvents envelope (structured mode)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    data: AlertData
    specversion: str = "1.0"
    datacontenttype: str = "application/json"


_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(AlertEvent)


def mask_account(account_id: str) -> str:
    """The masked form DOMAIN.md gives for data leaving FundWatch: the last 4 characters."""
    return "****" + account_id[-4:] if len(account_id) > 4 else "****"


def to_event(alert: AlertData, masked: bool) -> AlertEvent:
    """The alert as a CloudEvent; ``masked`` for anything sent outside (webhooks)."""
    data = (
        msgspec.structs.replace(alert, accounts=[mask_account(a) for a in alert.accounts])
        if masked
        else alert
    )
    return AlertEvent(
        id=alert.alert_id,
        source=EVENT_SOURCE,
        type=f"fundwatch.alert.{alert.typology}",
        subject=alert.institution_id,
        time=alert.updated_at or alert.created_at,
        data=data,
    )


def encode_event(event: AlertEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(body: bytes) -> AlertEvent:
    return _event_decoder.decode(body)
