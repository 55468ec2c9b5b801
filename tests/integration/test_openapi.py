"""The OpenAPI document against what the routes really answer: every status documented, every
body matching its schema, every error an ErrorBody; and the JWT the deployed API requires."""

import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from agent import routes
from client import as_user
from memory.long_term import (DEFAULT_MAX_BYTES, DEFAULT_MAX_FACTS, DEFAULT_MAX_VALUE_CHARS, FACT_KEY, FACT_KEY_MAX_CHARS,
                              VALUE_RULE)

EXAMPLES_PER_OPERATION = 15
# The OpenAPI document does not list its own route.
UNDOCUMENTED = {"GET /openapi.json"}
PUBLIC = {(method.lower(), path) for method, path in (key.split(" ") for key in routes.PUBLIC)}


@pytest.fixture
def document(api):
    return api.get("/openapi.json").json()


def test_every_route_but_health_needs_the_bearer_jwt(document):
    assert document["components"]["securitySchemes"]["jwt"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["jwt"]["description"],
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("security") == (None if (method, path) in PUBLIC else [{"jwt": []}]), (method, path)


def test_the_deployed_routes_are_the_documented_operations_and_protected_alike(document):
    # The stack deploys agent/routes.py (infra/api.py): a route only the handler has answers 404 in AWS
    documented = {f"{method.upper()} {path}": bool(operation.get("security"))
                  for path, item in document["paths"].items() for method, operation in item.items()}
    deployed = {key: True for key in routes.PROTECTED} | {key: False for key in routes.PUBLIC}
    assert documented == {key: protected for key, protected in deployed.items() if key not in UNDOCUMENTED}


def test_every_error_is_an_error_body_and_deletes_answer_204(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            if method == "delete":
                assert "204" in operation["responses"] and "200" not in operation["responses"], path


def test_the_fact_rules_are_in_the_document(document):
    # The key: the store's own pattern, anchored, and its length
    put = document["paths"]["/memory/{key}"]["put"]
    [key] = [p["schema"] for p in put["parameters"] if p["name"] == "key"]
    assert (key["pattern"], key["maxLength"]) == (f"^{FACT_KEY}$", FACT_KEY_MAX_CHARS)
    assert re.fullmatch(key["pattern"], "..") is None and re.fullmatch(key["pattern"], "favourite_colour")
    # The value: its characters and its length, the deployed caps in the operation's description
    value = document["components"]["schemas"]["FactRequest"]["properties"]["value"]
    assert VALUE_RULE in value["description"] and "U+200C" in value["description"]
    assert f"at most {DEFAULT_MAX_VALUE_CHARS} characters" in put["description"]
    assert f"{DEFAULT_MAX_FACTS} facts and {DEFAULT_MAX_BYTES} bytes" in put["description"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
@pytest.mark.parametrize("identity", ["user", "none"])
def test_what_the_routes_answer_is_what_the_document_says(api, user, base_url, mode, identity):
    # Given the document the server serves
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = as_user(user) if identity == "user" else {}
    # When every operation gets generated requests, with or without an identity
    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = [operation.path_parameters, operation.query, operation.headers, operation.body]
        if mode == schemathesis.GenerationMode.NEGATIVE and not any(inputs):
            continue  # nothing to get wrong

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def conforms(case):
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            # Then each answer's status is documented and its body matches the documented schema
            case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                     response_schema_conformance])

        conforms()


def test_an_undocumented_openapi_route_is_still_served(base_url):
    assert httpx.get(f"{base_url}/openapi.json").status_code == 200
