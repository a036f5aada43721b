"""schemas/openapi.py: the generated OpenAPI 3.1 document."""

from __future__ import annotations

import json

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
    assert amount["pattern"] == r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$"
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
