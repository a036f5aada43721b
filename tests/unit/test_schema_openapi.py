"""schemas/openapi.py: the generated OpenAPI 3.1 document."""

from __future__ import annotations

import json
import re

import pytest

from schemas.fields import AMOUNT_RULE
from schemas.openapi import build_openapi


@pytest.fixture(scope="module")
def doc():
    return build_openapi()


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_version_is_openapi_3_1_0(doc):
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/batches", "post"),
        ("/v1/admin/tokens", "post"),
        ("/v1/reference/institutions", "put"),
        ("/v1/reference/accounts", "put"),
        ("/v1/reference/related-parties", "put"),
        ("/v1/reference/products", "put"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/replays", "get"),
        ("/v1/replays/{replay_id}", "get"),
    ],
)
def test_path_and_method_present(doc, path, method):
    assert method in doc["paths"][path]
    assert doc["paths"][path][method]["responses"]


def test_document_is_json_serialisable(doc):
    assert json.loads(json.dumps(doc)) == doc


def test_every_ref_resolves_into_components(doc):
    refs = list(_refs(doc))
    assert refs, "expected the document to use $ref"
    schemas = doc["components"]["schemas"]
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_operation_ids_unique(doc):
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_transaction_schema_has_amount_pattern_and_rule(doc):
    amount = doc["components"]["schemas"]["Transaction"]["properties"]["amount"]
    assert amount["type"] == "string"
    assert amount["pattern"] == r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$(?!\n)"
    # Python's "$" alone took a final newline: "1.00\n" passed
    assert re.search(amount["pattern"], "12345.67") and not re.search(amount["pattern"], "1.00\n")
    assert amount["description"] == AMOUNT_RULE


def test_transaction_schema_required_fields(doc):
    required = set(doc["components"]["schemas"]["Transaction"]["required"])
    assert {
        "record_id", "account_id", "direction", "amount", "booked_at", "counterparty_account", "counterparty_bank", "channel",
    } <= required  # fmt: skip
    for optional in (
        "currency",
        "counterparty_name",
        "instruction_id",
        "purpose",
        "product_id",
        "balance_after",
    ):
        assert optional not in required


def test_balance_schema_required_fields(doc):
    required = set(doc["components"]["schemas"]["Balance"]["required"])
    assert {"record_id", "account_id", "as_of", "balance"} <= required
    assert "customer_liabilities" not in required


def test_batch_request_records_discriminated_on_kind(doc):
    schema = doc["paths"]["/v1/batches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ref = schema["$ref"].removeprefix("#/components/schemas/")
    records = doc["components"]["schemas"][ref]["properties"]["records"]
    assert records["maxItems"] == 10000
    assert records["items"]["discriminator"]["propertyName"] == "kind"
    assert set(records["items"]["discriminator"]["mapping"]) == {"transaction", "balance"}


def test_batches_answers_202_and_documents_errors(doc):
    responses = doc["paths"]["/v1/batches"]["post"]["responses"]
    assert {"202", "400", "401", "403", "413", "422"} <= set(responses)


def test_protected_operations_need_bearer(doc):
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/batches"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/v1/reference/products"]["put"]["security"] == [{"bearer": []}]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"])
def test_open_operations_need_no_token(doc, path):
    assert doc["paths"][path]["get"]["security"] == []


def test_metrics_is_text(doc):
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_reference_put_takes_an_array(doc):
    schema = doc["paths"]["/v1/reference/institutions"]["put"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert schema["type"] == "array"
    assert schema["items"]["$ref"] == "#/components/schemas/Institution"


def test_accounts_open_to_bank_role(doc):
    assert "bank" in doc["paths"]["/v1/reference/accounts"]["put"]["description"]
    assert "bank" not in doc["paths"]["/v1/reference/products"]["put"]["description"]


def test_build_is_deterministic():
    assert json.dumps(build_openapi(), sort_keys=True) == json.dumps(build_openapi(), sort_keys=True)


# --- complete enough for a schema-driven client ----------------------------------------------------


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_every_path_parameter_is_declared_with_its_rule(doc):
    for path, method, op in _operations(doc):
        declared = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        assert set(declared) == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        for parameter in declared.values():
            assert parameter["required"] is True
            schema = parameter["schema"]
            assert schema["type"] == "string" and schema["minLength"] == 1 and schema["maxLength"] == 128
            assert re.search(schema["pattern"], "6222020000000001") and not re.search(
                schema["pattern"], "a\x00"
            )


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/v1/alerts", {"typology", "status", "severity", "region", "institution_id", "since", "limit"}),
        ("/v1/accounts/{account_id}/flows", {"grain", "since", "limit"}),
        ("/v1/subscriptions/{subscription_id}/deliveries", {"status", "limit"}),
        ("/v1/replays", {"region", "limit"}),
    ],
)
def test_query_parameters_are_declared_with_types_and_bounds(doc, path, names):
    query = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"] if p["in"] == "query"}
    assert set(query) == names
    assert all(p["required"] is False for p in query.values())
    assert query["limit"]["schema"] | {"description": None} == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 100, "description": None,
    }  # fmt: skip
    for parameter in query.values():
        assert "null" not in json.dumps(parameter["schema"]), parameter  # a URL has no null
    if "since" in query:
        pattern = query["since"]["schema"]["pattern"]
        assert re.search(pattern, "2026-01-01T00:00:00+08:00") and not re.search(
            pattern, "2026-01-01T00:00:00"
        )


def test_enumerated_query_parameters_say_their_values(doc):
    flows = {
        p["name"]: p["schema"] for p in doc["paths"]["/v1/accounts/{account_id}/flows"]["get"]["parameters"]
    }
    assert sorted(flows["grain"]["enum"]) == ["day", "hour"]
    deliveries = {
        p["name"]: p["schema"]
        for p in doc["paths"]["/v1/subscriptions/{subscription_id}/deliveries"]["get"]["parameters"]
    }
    assert sorted(deliveries["status"]["enum"]) == ["dead", "delivered", "pending"]
    alerts = {p["name"]: p["schema"] for p in doc["paths"]["/v1/alerts"]["get"]["parameters"]}
    assert re.search(alerts["severity"]["pattern"], "high,critical")
    assert not re.search(alerts["severity"]["pattern"], "urgent")


def test_the_documented_enumerations_are_the_servers(doc):
    from typing import get_args

    from models.findings import SEVERITIES, TYPOLOGIES
    from schemas.alerts import STATUSES
    from schemas.api import AlertStatus, DeliveryState, Severity, Typology
    from services.webhooks.store import DELIVERY_STATES

    assert get_args(Typology) == TYPOLOGIES and get_args(Severity) == SEVERITIES
    assert get_args(AlertStatus) == STATUSES and get_args(DeliveryState) == DELIVERY_STATES


def test_the_token_request_is_one_of_three_roles_each_with_exactly_its_fields(doc):
    schema = doc["paths"]["/v1/admin/tokens"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "anyOf" not in schema and len(schema["oneOf"]) == 3
    assert schema["discriminator"]["propertyName"] == "role"
    components = doc["components"]["schemas"]
    variants = {}
    for ref in schema["oneOf"]:
        variant = components[ref["$ref"].removeprefix("#/components/schemas/")]
        assert variant["additionalProperties"] is False
        (role,) = variant["properties"]["role"]["enum"]
        variants[role] = (set(variant["properties"]), set(variant["required"]))
    assert variants == {
        "admin": ({"role"}, {"role"}),
        "bank": ({"role", "bank_code"}, {"role", "bank_code"}),
        "desk": ({"role", "region"}, {"role", "region"}),
    }


def test_every_error_answer_has_the_error_shape_and_503_says_retry_after(doc):
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400 and path != "/readyz":
                assert response["content"]["application/json"]["schema"] == error, (method, path, status)
            if status == "503":
                assert response["headers"]["Retry-After"]["required"] is True


def test_each_operation_lists_the_statuses_its_inputs_can_bring(doc):
    for path, method, op in _operations(doc):
        statuses = set(op["responses"])
        assert "414" in statuses
        if op["security"]:
            assert {"401", "403", "503"} <= statuses, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= statuses, (method, path)
        if op.get("parameters"):
            assert "422" in statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)


def test_the_query_structs_are_no_components(doc):
    assert not {"FlowQuery", "AlertQuery", "DeliveryQuery"} & set(doc["components"]["schemas"])
