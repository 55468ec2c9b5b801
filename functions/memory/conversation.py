"""Conversation memory: one item per turn, per session, expiring SESSION_TTL_DAYS after its write;
one registry entry per session, its erasure fence (README: Data model)."""

import base64
import binascii
import json
import random
import time
from dataclasses import dataclass
from functools import wraps

from botocore.exceptions import BotoCoreError, ClientError

from .errors import InvalidToken, MemoryUnavailable, SessionNotFound, WriteRejected
from .turns import Turn, Usage, iso
from .window import Summary

SECONDS_PER_DAY = 86_400
TURN_PREFIX = "TURN#"
# The session registry: one item per session in its owner's partition (pk OWNER#<user>, sk
# SESSION#<session>). It is the session's fence (its `version` moves with every write into the
# session), its listing entry, and the only way erasure finds the session. OWNER# can never equal a
# USER#... session key, whatever the user id holds.
REGISTRY_PREFIX = "OWNER#"
REGISTRY_SK_PREFIX = "SESSION#"
# TTL deletes expired items "typically within a few days" and in no order: the registry entry
# outlives the newest item of its session by a month, so erasure still finds whatever TTL is late on.
REGISTRY_GRACE_SECONDS = 30 * SECONDS_PER_DAY
# A delete goes round again when a write moved the fence; under a steady stream of writes into one
# session it gives up (503) rather than chase it forever: a retried DELETE finishes the job.
ERASE_MAX_ROUNDS = 8
# '~' sorts after every "TURN#..." key: newest first, one Query over [TURN#, SUMMARY_SK] meets the
# summary, then the newest turns. begins_with(sk, TURN#) (the history) never sees it, and the
# compactor's stream filter (prefix TURN#) does not fire on its own writes.
SUMMARY_SK = "TURN~SUMMARY"
BATCH_WRITE_MAX_ITEMS = 25
BATCH_WRITE_MAX_ROUNDS = 5
UNPROCESSED_BACKOFF_SECONDS = 0.05
# Concurrent turns of one session all update its registry entry, and DynamoDB cancels a transaction
# that meets another on the same item (TransactionConflict); botocore does not retry that. Three
# more tries, jittered below 0.05/0.1/0.2 s, keep the append well inside its 4 s write budget.
TRANSACTION_CONFLICT_RETRIES = 3
TRANSACTION_CONFLICT_BACKOFF_SECONDS = 0.05
# From the OS, not a seeded generator: SnapStart would restore every environment with the same state.
_JITTER = random.SystemRandom()


def translate_errors(method):
    """Any DynamoDB failure leaves the store as MemoryUnavailable, the cause kept for the logs."""

    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (BotoCoreError, ClientError) as error:
            raise MemoryUnavailable(type(error).__name__) from error

    return wrapper


def session_key(user_id: str, session_id: str) -> str:
    # Session ids cannot contain '#', so no two (user, session) pairs share a key, and a caller can
    # only ever address keys that start with their own id.
    return f"USER#{user_id}#SESSION#{session_id}"


def registry_key(user_id: str, session_id: str) -> dict:
    return {"pk": {"S": REGISTRY_PREFIX + user_id}, "sk": {"S": REGISTRY_SK_PREFIX + session_id}}


def session_ids(key: str) -> tuple[str, str]:
    """(user_id, session_id) of a session key."""
    user_id, session_id = key.removeprefix("USER#").rsplit("#SESSION#", 1)
    return user_id, session_id


def encode_token(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode()


def decode_token(token: str) -> str:
    """Only the sort key travels in the token: the partition is always rebuilt from the caller."""
    try:
        sort_key = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidToken("next_token is not a token this API issued") from None
    if not sort_key.startswith(TURN_PREFIX):
        raise InvalidToken("next_token is not a token this API issued")
    return sort_key


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    created_at: str
    updated_at: str
    turns: int


class ConversationStore:
    def __init__(self, *, client, table_name: str, ttl_days: int, clock=time.time):
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * SECONDS_PER_DAY
        self._clock = clock

    @translate_errors
    def load(self, user_id: str, session_id: str, *, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first: one Query whatever the history's length (more only
        past DynamoDB's 1 MB page). Expiry grows with the sort key, so filtering after the limit
        only ever drops the oldest."""
        items = self._newest(
            limit,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": session_key(user_id, session_id)},
                ":turn": {"S": TURN_PREFIX},
                ":now": {"N": str(int(self._clock()))},
            },
        )
        return [_turn_from_item(item) for item in reversed(items)]

    @translate_errors
    def load_window(self, user_id: str, session_id: str, *, limit: int) -> tuple[Summary | None, list[Turn]]:
        """The session's summary and, oldest first, those of its last `limit` turns it does not
        cover: one Query, newest first, which meets the summary (it sorts after every turn) first."""
        items = self._newest(
            limit + 1,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :turn AND :summary",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": session_key(user_id, session_id)},
                ":turn": {"S": TURN_PREFIX},
                ":summary": {"S": SUMMARY_SK},
                ":now": {"N": str(int(self._clock()))},
            },
        )
        summary = _summary_from_item(items.pop(0)) if items and items[0]["sk"]["S"] == SUMMARY_SK else None
        covered = TURN_PREFIX + (summary.covered_through if summary else "")
        return summary, [_turn_from_item(item) for item in reversed(items[:limit]) if item["sk"]["S"] > covered]

    @translate_errors
    def turns_after(self, user_id: str, session_id: str, *, after: str | None, limit: int) -> list[Turn]:
        """Up to `limit` turns that follow turn `after` (from the first turn if None), oldest first."""
        response = self._client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND sk > :after",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": session_key(user_id, session_id)},
                ":after": {"S": TURN_PREFIX + (after or "")},
                ":now": {"N": str(int(self._clock()))},
            },
            Limit=limit,
            ConsistentRead=True,
        )
        return [_turn_from_item(item) for item in response["Items"] if item["sk"]["S"].startswith(TURN_PREFIX)]

    @translate_errors
    def save_summary(self, user_id: str, session_id: str, summary: Summary, *, replaces: Summary | None) -> bool:
        """Stores `summary` in place of the one it was built on (`replaces`), while the newest turn
        it covers still exists, under the session's fence. Returns False if a condition fails:
        another run already moved the coverage on, or the session was deleted; either way nothing
        is left to do."""
        now = self._clock()
        pk = {"S": session_key(user_id, session_id)}
        put = {
            "TableName": self._table,
            "Item": {
                "pk": pk,
                "sk": {"S": SUMMARY_SK},
                "text": {"S": summary.text},
                "covered_through": {"S": summary.covered_through},
                "covered_turns": {"N": str(summary.covered_turns)},
                "tokens": {"N": str(summary.tokens)},
                "created_at": {"S": iso(now)},
                "expires_at": {"N": str(int(now) + self._ttl_seconds)},
            },
        }
        if replaces:
            put["ConditionExpression"] = "covered_through = :previous"
            put["ExpressionAttributeValues"] = {":previous": {"S": replaces.covered_through}}
        else:  # an expired summary that TTL has not deleted yet counts as none
            put["ConditionExpression"] = "attribute_not_exists(sk) OR expires_at <= :now"
            put["ExpressionAttributeValues"] = {":now": {"N": str(int(now))}}
        covered_turn = {"pk": pk, "sk": {"S": TURN_PREFIX + summary.covered_through}}
        try:
            self.write_in_session(user_id, session_id, [
                {"ConditionCheck": {"TableName": self._table, "Key": covered_turn,
                                    "ConditionExpression": "attribute_exists(sk)"}},
                {"Put": put},
            ], create_session=False)
        except WriteRejected:
            return False
        return True

    @translate_errors
    def history(
        self, user_id: str, session_id: str, *, limit: int, next_token: str | None = None
    ) -> tuple[list[Turn], str | None]:
        """Every stored turn, oldest first, a page at a time. Raises SessionNotFound."""
        pk = session_key(user_id, session_id)
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :turn)",
            "FilterExpression": "expires_at > :now",
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":turn": {"S": TURN_PREFIX},
                ":now": {"N": str(int(self._clock()))},
            },
            "Limit": limit,
            # Read-your-writes: a GET right after the first POST finds the turn it stored.
            "ConsistentRead": True,
        }
        if next_token:
            query["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": decode_token(next_token)}}
        response = self._client.query(**query)
        # The filter runs after the limit, and expired turns that TTL has not deleted yet are the
        # oldest: a page of nothing but them says nothing about the live turns after it.
        while not response["Items"] and "LastEvaluatedKey" in response:
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            response = self._client.query(**query)
        if not response["Items"] and not next_token:
            raise SessionNotFound(session_id)
        last = response.get("LastEvaluatedKey")
        return [_turn_from_item(item) for item in response["Items"]], (
            encode_token(last["sk"]["S"]) if last else None
        )

    @translate_errors
    def append(self, turn: Turn, also: tuple[dict, ...] = ()) -> None:
        """One transaction: the turn (never overwriting one), `also` (TransactItems stored with the
        turn or not at all, e.g. an idempotency record) and the session's registry entry, whose
        version it moves (the fence) and which it creates if the session is new. Raises
        WriteRejected if the turn is already stored."""
        now = self._clock()
        expires_at = int(now) + self._ttl_seconds
        put = {"Put": {"TableName": self._table, "Item": turn_item(turn, expires_at=expires_at),
                       "ConditionExpression": "attribute_not_exists(sk)"}}
        self._fenced(turn.user_id, turn.session_id, [put, *also], create_session=True, turn_expires_at=expires_at)

    @translate_errors
    def write_in_session(self, user_id: str, session_id: str, writes: list[dict], *, create_session: bool) -> None:
        """THE way to write anything but a turn into a session's partition (idempotency records,
        summaries, turn status): `writes` (TransactItems on keys under session_key(user_id,
        session_id), at most 99, each item expiring within SESSION_TTL_DAYS) commit in one
        transaction with a move of the session's fence. A delete that raced them either erases them
        or goes round again; none can land after its final check. With create_session=False they
        are written only while the session exists. Raises WriteRejected if a condition fails."""
        self._fenced(user_id, session_id, writes, create_session=create_session)

    def _fenced(self, user_id: str, session_id: str, writes: list[dict], *, create_session: bool,
                turn_expires_at: int | None = None) -> None:
        now = self._clock()
        values = {
            ":sid": {"S": session_id},
            ":now": {"S": iso(now)},
            ":one": {"N": "1"},
            ":exp": {"N": str(int(now) + self._ttl_seconds + REGISTRY_GRACE_SECONDS)},
        }
        update = ("SET session_id = :sid, expires_at = :exp, created_at = if_not_exists(created_at, :now)",
                  "ADD version :one")
        if turn_expires_at is not None:  # what listing shows: the newest turn, the count, when it lapses
            update = (update[0] + ", updated_at = :now, turns_expire_at = :texp", update[1] + ", turn_count :one")
            values[":texp"] = {"N": str(turn_expires_at)}
        registry = {"TableName": self._table, "Key": registry_key(user_id, session_id),
                    "UpdateExpression": " ".join(update), "ExpressionAttributeValues": values}
        if not create_session:
            registry["ConditionExpression"] = "attribute_exists(pk)"
        try:
            transact_write(self._client, [*writes, {"Update": registry}])
        except ClientError as error:
            if cancelled_by(error, "ConditionalCheckFailed"):
                raise WriteRejected(error.response["CancellationReasons"]) from error
            raise

    @translate_errors
    def sessions(self, user_id: str) -> list[SessionInfo]:
        """The caller's live sessions, most recently used first: one consistent Query of their
        registry, sorted here (a sort key that moved every turn would cost an index rewrite each)."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk",
            FilterExpression="turn_count > :zero AND turns_expire_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": REGISTRY_PREFIX + user_id},
                ":zero": {"N": "0"},
                ":now": {"N": str(int(self._clock()))},
            },
            ConsistentRead=True,
        )
        infos = [
            SessionInfo(
                session_id=item["session_id"]["S"],
                created_at=item["created_at"]["S"],
                updated_at=item["updated_at"]["S"],
                turns=int(item["turn_count"]["N"]),
            )
            for item in items
        ]
        return sorted(infos, key=lambda info: info.updated_at, reverse=True)

    @translate_errors
    def delete(self, user_id: str, session_id: str) -> None:
        """Every item of the session, whatever writes raced the delete. Raises SessionNotFound."""
        if not self._erase(user_id, session_id):
            raise SessionNotFound(session_id)

    @translate_errors
    def delete_user(self, user_id: str) -> int:
        """Every session of the user, expired ones included, found through the registry read
        consistently (an index could still miss the newest); returns how many."""
        entries = self._query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": REGISTRY_PREFIX + user_id}},
            ProjectionExpression="sk",
            ConsistentRead=True,
        )
        for entry in entries:
            self._erase(user_id, entry["sk"]["S"].removeprefix(REGISTRY_SK_PREFIX))
        return len(entries)

    def _erase(self, user_id: str, session_id: str) -> bool:
        """The fence: read the registry's version, delete every item of the session, then the
        registry entry only if its version has not moved (every write into the session moves it in
        its own transaction); else go round. Returns whether there was anything to erase."""
        key = registry_key(user_id, session_id)
        found = False
        for _ in range(ERASE_MAX_ROUNDS):
            entry = self._client.get_item(TableName=self._table, Key=key, ProjectionExpression="version",
                                          ConsistentRead=True).get("Item")
            keys = self._query_all(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": session_key(user_id, session_id)}},
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
            if entry is None and not keys:
                return found
            found = True
            batch_write_all(self._client, self._table,
                            [{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in keys])
            if entry is None:  # no fence to take down; the next round checks nothing was added
                continue
            try:
                self._client.delete_item(TableName=self._table, Key=key, ConditionExpression="version = :seen",
                                         ExpressionAttributeValues={":seen": entry["version"]})
                return True
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        raise MemoryUnavailable(f"the session kept changing over {ERASE_MAX_ROUNDS} rounds of erasure")

    def _newest(self, limit: int, **query) -> list[dict]:
        """Up to `limit` items evaluated newest first, consistently, as one Query with that Limit
        would return them had DynamoDB no 1 MB page: past it, the next pages."""
        items, evaluated, start = [], 0, None
        while True:
            page = self._client.query(
                TableName=self._table, **query, ScanIndexForward=False, ConsistentRead=True,
                Limit=limit - evaluated, **({"ExclusiveStartKey": start} if start else {}),
            )
            items += page["Items"]
            evaluated += page["ScannedCount"]
            start = page.get("LastEvaluatedKey")
            if not start or evaluated >= limit:
                return items

    def _query_all(self, **query) -> list[dict]:
        items, start = [], None
        while True:
            page = self._client.query(
                TableName=self._table, **query, **({"ExclusiveStartKey": start} if start else {})
            )
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items


def transact_write(client, items: list[dict]) -> None:
    """TransactWriteItems, tried again when it only lost a race with another transaction."""
    for attempt in range(TRANSACTION_CONFLICT_RETRIES + 1):
        try:
            client.transact_write_items(TransactItems=items)
            return
        except ClientError as error:
            if attempt == TRANSACTION_CONFLICT_RETRIES or not cancelled_by(error, "TransactionConflict"):
                raise
        time.sleep(_JITTER.uniform(0, TRANSACTION_CONFLICT_BACKOFF_SECONDS * 2**attempt))


def cancelled_by(error: ClientError, code: str) -> bool:
    """Whether a cancelled transaction names `code` among its reasons (one per item)."""
    return any(reason.get("Code") == code for reason in error.response.get("CancellationReasons") or [])


def batch_write_all(client, table: str, requests: list[dict]) -> None:
    """BatchWriteItem in chunks, retrying what comes back unprocessed, a bounded number of rounds."""
    for first in range(0, len(requests), BATCH_WRITE_MAX_ITEMS):
        pending = requests[first : first + BATCH_WRITE_MAX_ITEMS]
        for attempt in range(BATCH_WRITE_MAX_ROUNDS):
            response = client.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            time.sleep(UNPROCESSED_BACKOFF_SECONDS * 2**attempt)
        if pending:
            raise MemoryUnavailable(f"{len(pending)} writes left unprocessed")


def turn_item(turn: Turn, *, expires_at: int) -> dict:
    """The stored item of a turn (what _turn_from_item reads back)."""
    return {
        "pk": {"S": session_key(turn.user_id, turn.session_id)},
        "sk": {"S": TURN_PREFIX + turn.turn_id},
        "created_at": {"S": turn.created_at},
        "expires_at": {"N": str(expires_at)},
        "messages": {"S": json.dumps(turn.messages, ensure_ascii=False)},
        "input_tokens": {"N": str(turn.usage.input_tokens)},
        "output_tokens": {"N": str(turn.usage.output_tokens)},
    }


def _turn_from_item(item: dict) -> Turn:
    user_id, session_id = session_ids(item["pk"]["S"])
    return Turn(
        user_id=user_id,
        session_id=session_id,
        turn_id=item["sk"]["S"].removeprefix(TURN_PREFIX),
        created_at=item["created_at"]["S"],
        messages=json.loads(item["messages"]["S"]),
        usage=Usage(int(item["input_tokens"]["N"]), int(item["output_tokens"]["N"])),
    )


def _summary_from_item(item: dict) -> Summary:
    return Summary(
        text=item["text"]["S"],
        covered_through=item["covered_through"]["S"],
        covered_turns=int(item["covered_turns"]["N"]),
        tokens=int(item["tokens"]["N"]),
    )
