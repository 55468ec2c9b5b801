"""Where AWS is strict, the local stack is too: what API Gateway and Lambda refuse or cut short is
refused or cut short locally, with their answers, through the multi-process local server."""

import base64
import os

import pytest

from client import as_user, raw

# A Cognito id token is a JWT of 1-4 KB (its claims, groups, and the RS256 signature), sent as
# `Authorization: Bearer ...` on every request: it takes that much of API Gateway's header budget.
REALISTIC_TOKEN_BYTES = 4_000


def bearer(size: int) -> dict:
    return {"Authorization": "Bearer " + base64.urlsafe_b64encode(os.urandom(size * 3 // 4)).decode()}


def test_two_identity_headers_are_refused_not_joined(server_url, reliability):
    # Given a request with two identities (the server would join them into "alice,bob")
    request = b"GET /memory HTTP/1.1\r\nHost: x\r\nX-Local-User: alice\r\nX-Local-User: bob\r\nConnection: close\r\n\r\n"
    status, body = raw(server_url, request)
    # Then it is API Gateway's 401: the handler never sees an identity
    assert (status, body) == (401, b'{"message": "Unauthorized"}')
    reliability("Local limits", "two X-Local-User headers", "401 from the gateway, no identity made of both")


def test_an_identity_with_a_comma_is_refused(api):
    response = api.get("/memory", headers=as_user("alice,bob"))
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


def test_a_real_tokens_size_fits_the_header_budget(api, user):
    response = api.get("/memory", headers=as_user(user) | bearer(REALISTIC_TOKEN_BYTES))
    assert response.status_code == 200 and response.json() == {"facts": {}}


@pytest.mark.parametrize("size", [10_300, 12_000])
def test_a_token_past_api_gateways_header_budget_is_refused(api, user, reliability, size):
    # API Gateway's quota: 10,240 bytes for the request line and header values together
    response = api.get("/memory", headers=as_user(user) | bearer(size))
    assert response.status_code == 431 and response.json() == {"message": "Request Header Fields Too Large"}
    reliability("Local limits", f"a {size:,}-byte token", "431 from the gateway, the handler not invoked")
