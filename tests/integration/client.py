"""The HTTP API as a test calls it: as a user, whose id the local gateway turns into the JWT claim
`sub` (the header X-Local-User), exactly where API Gateway's authorizer would put it."""

import httpx


def as_user(user_id: str) -> dict:
    return {"X-Local-User": user_id}


def say(api: httpx.Client, user: str, session: str, message: str, *, idempotency_key: str | None = None
        ) -> httpx.Response:
    """One synchronous turn: `message` to `session`, as `user`."""
    headers = as_user(user) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
    return api.post(f"/sessions/{session}/messages", json={"message": message}, headers=headers)
