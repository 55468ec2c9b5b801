"""The HTTP API's routes, as API Gateway route keys, and their throttle: what infra/api.py deploys
and local/gateway.py plays. Plain data with no imports: the CDK app reads it too. The handler's OpenAPI document lists
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

# Every message can cost a model call: the stage caps each route's request rate (a token bucket per
# route: this many requests a second, bursts of up to THROTTLE_BURST), so a leaked token or a runaway
# client cannot run up the spend. 10 turns/s of ~5 s each keep ~50 Lambdas busy, far under the
# account's 1000.
THROTTLE_RATE_PER_SECOND = 10
THROTTLE_BURST = 20
