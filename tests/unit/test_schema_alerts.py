"""The alert as CONTRACT.md §4 shapes it: `status` and `revision` on every alert, `subject` only
when the institution is known, and every event accepted by the CloudEvents SDK."""

from __future__ import annotations

import msgspec
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from models.alerting import alert_data
from models.findings import Finding
from schemas.alerts import CLOUDEVENTS_CONTENT_TYPE, encode_event, to_event


def _finding(institution_id: str) -> Finding:
    return Finding(
        typology="large_value",
        key="ACC-000123456/2025-11-25",
        severity="low",
        score=0.4,
        institution_id=institution_id,
        accounts=("ACC-000123456",),
        amount_cents=260_000_000,
        window_start=1_764_000_000,
        window_end=1_764_086_400,
        record_ids=("r1",),
        metrics={"total": "2600000.00"},
        thresholds={"line": "2000000.00"},
        explanation_zh="大额",
        explanation_en="large",
        detector_version="large_value/1",
        rule="三(三)",
    )


def _parsed(body: bytes):
    return from_http(HTTPMessage(headers={"content-type": CLOUDEVENTS_CONTENT_TYPE}, body=body), JSONFormat())


@pytest.mark.parametrize("masked", [True, False])
def test_a_first_revision_carries_status_and_revision(masked: bool) -> None:
    body = encode_event(to_event(alert_data(_finding("INS-1"), "220102", 1_764_086_400), masked=masked))
    data = msgspec.json.decode(body)["data"]
    assert data["status"] == "open"
    assert data["revision"] == 1


def test_subject_is_the_institution_when_known() -> None:
    body = encode_event(to_event(alert_data(_finding("INS-1"), "220102", 1_764_086_400), masked=True))
    assert msgspec.json.decode(body)["subject"] == "INS-1"
    assert _parsed(body).get_subject() == "INS-1"


def test_no_subject_without_an_institution_and_the_sdk_takes_it() -> None:
    body = encode_event(to_event(alert_data(_finding(""), "", 1_764_086_400), masked=True))
    envelope = msgspec.json.decode(body)
    assert "subject" not in envelope
    assert envelope["specversion"] == "1.0"
    assert envelope["datacontenttype"] == "application/json"
    event = _parsed(body)
    assert event.get_subject() is None
    assert event.get_id() == _finding("").alert_id
