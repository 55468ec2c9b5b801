"""The HTTP API's routes, as API Gateway route keys: what infra/api.py deploys and local/gateway.py
plays. Plain data with no imports: the CDK app reads it too. The handler's OpenAPI document lists
these operations and no others, with the JWT `security` on exactly the protected ones
(tests/integration/test_openapi.py): a route added to the handler alone fails that test."""

# Behind the JWT authorizer: the token's `sub` is the caller.
PROTECTED = (
    "POST /sessions/{session_id}/messages",
    "GET /sessions/{session_id}/messages",
    "GET /sessions/{session_id}/turns/{turn_id}",
    "DELETE /sessions/{session_id}",
    "GET /sessions",
    "GET /memory",
    "PUT /memory/{key}",
    "DELETE /memory/{key}",
    "DELETE /me",
)
# No identity needed: they hold no user data and call no model. The OpenAPI document does not list
# its own route.
PUBLIC = ("GET /health", "GET /openapi.json")
