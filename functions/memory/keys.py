"""Where every item of the sessions table lives (README: Data model): the one place keys are built."""

import hashlib

TURN_PREFIX = "TURN#"
# '~' sorts after every "TURN#..." key: newest first, one Query over [TURN#, SUMMARY_SK] meets the
# summary, then the newest turns. begins_with(sk, TURN#) (the history) never sees it, and the
# compactor's stream filter (prefix TURN#) does not fire on its own writes.
SUMMARY_SK = "TURN~SUMMARY"
STATUS_PREFIX = "ASYNC#"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY#"
# The session registry: one entry per session in its owner's partition. OWNER# can never equal a
# USER#... session key, whatever the user id holds.
REGISTRY_PREFIX = "OWNER#"
REGISTRY_SK_PREFIX = "SESSION#"
# The user's erasure mark (memory.registry): keyed by a hash of the user id, so the one item that
# outlives DELETE /me holds nothing that names the user.
MARK_PREFIX = "ERASED#"
MARK_SK = "MARK"


def session_key(user_id: str, session_id: str) -> str:
    # Session ids cannot contain '#', so no two (user, session) pairs share a key, and a caller can
    # only ever address keys that start with their own id.
    return f"USER#{user_id}#SESSION#{session_id}"


def session_ids(key: str) -> tuple[str, str]:
    """(user_id, session_id) of a session key."""
    user_id, session_id = key.removeprefix("USER#").rsplit("#SESSION#", 1)
    return user_id, session_id


def item_key(user_id: str, session_id: str, sort_key: str) -> dict:
    return {"pk": {"S": session_key(user_id, session_id)}, "sk": {"S": sort_key}}


def registry_key(user_id: str, session_id: str) -> dict:
    return {"pk": {"S": REGISTRY_PREFIX + user_id}, "sk": {"S": REGISTRY_SK_PREFIX + session_id}}


def mark_key(user_id: str) -> dict:
    return {"pk": {"S": MARK_PREFIX + hashlib.sha256(user_id.encode()).hexdigest()}, "sk": {"S": MARK_SK}}
