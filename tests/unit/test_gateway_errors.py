"""services/gateway/errors.py: the error shape, Retry-After and other headers, query parameters."""

from __future__ import annotations

import json

import pytest
from multidict import MultiDict

from schemas.api import AlertQuery, DeliveryQuery, FlowQuery
from services.gateway.errors import RETRY_AFTER_S, ApiError, parse_query, unavailable


def test_an_error_answers_in_the_contract_shape():
    response = ApiError(422, "invalid_query", "`limit`: must be at most 1000", "limit").response()
    assert response.status == 422 and response.content_type == "application/json"
    assert json.loads(response.body) == {
        "error": {"code": "invalid_query", "message": "`limit`: must be at most 1000", "field": "limit"}
    }
    assert "Retry-After" not in response.headers


def test_retry_after_goes_out_as_a_header():
    response = ApiError(503, "unavailable", "later", retry_after=7).response()
    assert response.headers["Retry-After"] == "7"
    assert json.loads(response.body)["error"] == {"code": "unavailable", "message": "later"}


def test_unavailable_is_503_with_retry_after():
    error = unavailable("the broker is away")
    assert (error.status, error.code, error.retry_after) == (503, "unavailable", RETRY_AFTER_S)
    assert error.response().headers["Retry-After"] == str(RETRY_AFTER_S)


def test_other_headers_go_out_too():
    response = ApiError(405, "method_not_allowed", "no", headers={"Allow": "GET, HEAD"}).response()
    assert response.headers["Allow"] == "GET, HEAD"


def test_query_parameters_are_read_as_documented():
    ask = parse_query(
        MultiDict(grain="hour", since="2026-01-01T00:00:00+08:00", limit="5", cache="x"), FlowQuery
    )
    assert (ask.grain, ask.since, ask.limit) == ("hour", "2026-01-01T00:00:00+08:00", 5)
    assert parse_query(MultiDict(), FlowQuery).limit == 100


@pytest.mark.parametrize("name", ["since", "status", "severity", "limit", "region"])
def test_an_empty_parameter_breaks_its_rule_as_documented(name):
    with pytest.raises(ApiError) as info:
        parse_query(MultiDict({name: ""}), AlertQuery)
    assert info.value.field == name


def test_a_repeated_parameter_counts_with_its_first_value():
    assert parse_query(MultiDict([("limit", "3"), ("limit", "9")]), DeliveryQuery).limit == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [({"since": "2026-01-01T00:00:00"}, "since"), ({"since": "1999-12-31T23:59:59Z"}, "since"),
     ({"since": "2026-02-30T00:00:00Z"}, "since"), ({"limit": "1001"}, "limit"), ({"grain": "week"}, "grain")],
)  # fmt: skip
def test_a_parameter_breaking_its_rule_is_422_naming_it_in_words(query, field):
    with pytest.raises(ApiError) as info:
        parse_query(MultiDict(query), FlowQuery)
    assert (info.value.status, info.value.code, info.value.field) == (422, "invalid_query", field)
    assert "^" not in info.value.message and "Expected" not in info.value.message
