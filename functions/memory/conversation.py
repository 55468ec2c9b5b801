"""Conversation memory: one item per turn, per session, expiring SESSION_TTL_DAYS after its write,
written and erased under the session's fence (memory.registry; README: Data model)."""

import base64
import binascii
import json
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from .dynamo import POOL, cancelled_by, delete_all, query_all, transact_write, translate_errors
from .errors import Erased, InvalidToken, MemoryUnavailable, SessionNotFound
from .keys import SUMMARY_SK, TURN_PREFIX, item_key, session_ids, session_key
from .registry import SECONDS_PER_DAY, Fence, Registry, SessionInfo, generation_of, mark_of
from .turns import Turn, Usage, iso
from .window import Summary

__all__ = ["ConversationStore", "SessionInfo", "turn_item"]

# Erasure deletes in BatchWriteItem calls of 25, this many calls' worth per thread of the pool: a
# user with thousands of sessions is erased side by side, inside the function's time budget.
ERASE_BATCH_ITEMS = 100
# Erasure finishes this many sessions at a time (marked, swept, their entries deleted): an erasure
# cut short by its function's timeout has finished every chunk before the one it was in.
ERASE_CHUNK_SESSIONS = 100


def encode_token(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode()


def _listing_token(info: SessionInfo) -> str:
    return base64.urlsafe_b64encode(json.dumps([info.updated_at, info.session_id]).encode()).decode()


def _listing_position(token: str) -> tuple[str, str]:
    try:
        updated_at, session_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        if isinstance(updated_at, str) and isinstance(session_id, str):
            return updated_at, session_id
    except (binascii.Error, UnicodeError, ValueError, TypeError):
        pass
    raise InvalidToken("next_token is not a token this API issued")


def _listed_after(info: SessionInfo, position: tuple[str, str]) -> bool:
    """Whether `info` comes after `position` in the listing's order: newest first, then by id (the
    order the registry's Query returns them in, kept by the stable sort)."""
    updated_at, session_id = position
    return info.updated_at < updated_at or (info.updated_at == updated_at and info.session_id > session_id)


def decode_token(token: str) -> str:
    """Only the sort key travels in the token: the partition is always rebuilt from the caller."""
    try:
        sort_key = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidToken("next_token is not a token this API issued") from None
    if not sort_key.startswith(TURN_PREFIX):
        raise InvalidToken("next_token is not a token this API issued")
    return sort_key


class ConversationStore:
    def __init__(self, *, client, table_name: str, ttl_days: int, clock=time.time):
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * SECONDS_PER_DAY
        self._clock = clock
        self.registry = Registry(client=client, table_name=table_name, ttl_days=ttl_days, clock=clock)

    @translate_errors
    def window(self, user_id: str, session_id: str, *, limit: int, summary: bool,
               fence: Callable[[], Fence | None]) -> tuple[Summary | None, list[Turn]]:
        """The session's summary (if `summary`) and, oldest first, those of its last `limit` turns
        it does not cover: one Query, newest first, whatever the history's length (more only past
        DynamoDB's 1 MB page); the summary sorts after every turn, so it comes first. Only items of
        the live session count: `fence` is asked once the Query answered, so its read can run
        alongside. Expiry grows with the sort key, so filtering after the limit drops the oldest."""
        items = self._newest(
            limit + (1 if summary else 0),
            KeyConditionExpression="pk = :pk AND sk BETWEEN :turn AND :last",
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": session_key(user_id, session_id)},
                ":turn": {"S": TURN_PREFIX},
                ":last": {"S": SUMMARY_SK if summary else TURN_PREFIX + "~"},
                ":now": {"N": str(int(self._clock()))},
            },
        )
        live = fence()
        items = [item for item in items if live and generation_of(item) == live.generation]
        found = _summary_from_item(items.pop(0)) if items and items[0]["sk"]["S"] == SUMMARY_SK else None
        covered = TURN_PREFIX + (found.covered_through if found else "")
        return found, [_turn_from_item(item) for item in reversed(items[:limit]) if item["sk"]["S"] > covered]

    def load(self, user_id: str, session_id: str, *, limit: int) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        return self.load_window(user_id, session_id, limit=limit, summary=False)[1]

    def load_window(self, user_id: str, session_id: str, *, limit: int,
                    summary: bool = True) -> tuple[Summary | None, list[Turn]]:
        """window() of the session as it is now."""
        return self.window(user_id, session_id, limit=limit, summary=summary,
                           fence=lambda: self.registry.fence(user_id, session_id))

    @translate_errors
    def turns_after(self, user_id: str, session_id: str, *, after: str | None, limit: int,
                    fence: Fence) -> list[Turn]:
        """Up to `limit` turns of the session `fence` names that follow turn `after` (from the first
        turn if None), oldest first."""
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
        return [_turn_from_item(item) for item in response["Items"]
                if item["sk"]["S"].startswith(TURN_PREFIX) and generation_of(item) == fence.generation]

    @translate_errors
    def save_summary(self, user_id: str, session_id: str, summary: Summary, *, replaces: Summary | None,
                     fence: Fence) -> bool:
        """Stores `summary` in place of the one it was built on (`replaces`), while the newest turn
        it covers still exists, then confirms the fence. Returns False if a condition fails:
        another run already moved the coverage on, or the session was erased; either way nothing
        is left to do."""
        now = self._clock()
        put = {
            "TableName": self._table,
            "Item": {
                **item_key(user_id, session_id, SUMMARY_SK),
                "gen": {"S": fence.generation},
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
        covered_turn = item_key(user_id, session_id, TURN_PREFIX + summary.covered_through)
        try:
            # Two runs of one session's compaction are the only writers that meet here.
            transact_write(self._client, [
                {"ConditionCheck": {"TableName": self._table, "Key": covered_turn,
                                    "ConditionExpression": "attribute_exists(sk)"}},
                {"Put": put},
            ])
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return False
        try:
            self.registry.check(user_id, session_id, fence)
        except Erased:
            self._discard([item_key(user_id, session_id, SUMMARY_SK)])
            return False
        return True

    @translate_errors
    def history(
        self, user_id: str, session_id: str, *, limit: int, next_token: str | None = None
    ) -> tuple[list[Turn], str | None]:
        """Every stored turn, oldest first, a page at a time. Raises SessionNotFound."""
        fence = POOL.submit(self.registry.fence, user_id, session_id)
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
        live = fence.result()
        if live is None:
            raise SessionNotFound(session_id)
        visible = [item for item in response["Items"] if generation_of(item) == live.generation]
        # The filter runs after the limit, and expired turns that TTL has not deleted yet are the
        # oldest: a page of nothing but them says nothing about the live turns after it.
        while not visible and "LastEvaluatedKey" in response:
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            response = self._client.query(**query)
            visible = [item for item in response["Items"] if generation_of(item) == live.generation]
        if not visible and not next_token:
            raise SessionNotFound(session_id)
        last = response.get("LastEvaluatedKey")
        return [_turn_from_item(item) for item in visible], (encode_token(last["sk"]["S"]) if last else None)

    @translate_errors
    def append(self, turn: Turn, fence: Fence | None = None, also: tuple[dict, ...] = ()) -> None:
        """Stores the turn (never over another) stamped with the session's generation, with `also`
        (TransactItems of this turn alone, e.g. its idempotency record) in the same transaction,
        then confirms the fence, counting the turn into the session's entry. Raises Erased, having
        removed what it stored, when the session or its user was erased since `fence` was read
        (None: read now, for a writer that read nothing of the session before)."""
        fence = fence or self.registry.open(turn.user_id, turn.session_id)
        expires_at = int(self._clock()) + self._ttl_seconds
        put = {"TableName": self._table, "Item": turn_item(turn, expires_at=expires_at, generation=fence.generation),
               "ConditionExpression": "attribute_not_exists(sk)"}
        if also:  # items no sibling request touches: no transaction of this turn meets another
            try:
                transact_write(self._client, [{"Put": put}, *also])
            except ClientError as error:
                # The records a turn is stored with are conditional on still being this request's
                # (its idempotency claim, its async status): erasure took them, and the turn with them.
                if cancelled_by(error, "ConditionalCheckFailed"):
                    raise Erased() from error
                raise
        else:
            self._client.put_item(**put)
        try:
            self.registry.confirm_turn(turn.user_id, turn.session_id, fence, turn_expires_at=expires_at)
        except (Erased, MemoryUnavailable):
            # Unconfirmed, a turn may belong to an erased session: it is not kept, whatever failed.
            self._discard([item_key(turn.user_id, turn.session_id, TURN_PREFIX + turn.turn_id),
                           *(_key_of(item) for item in also)])
            raise

    def sessions(self, user_id: str) -> list[SessionInfo]:
        return self.registry.sessions(user_id)

    def sessions_page(self, user_id: str, *, limit: int, next_token: str | None = None
                      ) -> tuple[list[SessionInfo], str | None]:
        """A page of the user's sessions, most recently used first, and the token of the next page
        (None: the last page). A session used between two pages moves to the front and is not seen
        again in this listing. Raises InvalidToken."""
        sessions = self.registry.sessions(user_id)
        start = 0
        if next_token:
            after = _listing_position(next_token)
            start = next((n for n, info in enumerate(sessions) if _listed_after(info, after)), len(sessions))
        page = sessions[start:start + limit]
        more = start + limit < len(sessions)
        return page, (_listing_token(page[-1]) if more else None)

    @translate_errors
    def delete(self, user_id: str, session_id: str) -> None:
        """Every item of the session, whatever writes raced the delete. Raises SessionNotFound. Cut
        short, it leaves the entry marked erasing: the session reads as gone, and a retry finishes."""
        entry, mark = self.registry.read(user_id, session_id)
        self._erase(user_id, [session_id], [entry] if entry else [])
        if entry is None or mark_of(entry) != mark:  # leftovers of an erased user are swept all the same
            raise SessionNotFound(session_id)

    @translate_errors
    def erase_user(self, user_id: str, mark: int) -> int:
        """Every session of the user made before erasure mark `mark` (which the caller has just
        moved); returns how many. Cut short (its function's timeout), it has finished whole chunks
        of sessions and left the others' entries to the retry, which moves the mark again."""
        entries = self.registry.entries(user_id)
        # Every session is swept, a new incarnation's too: registering over an entry of an older mark
        # leaves that entry's items behind, under the new entry.
        stale = [entry for entry in entries if mark_of(entry) < mark]
        for first in range(0, len(entries), ERASE_CHUNK_SESSIONS):
            chunk = entries[first:first + ERASE_CHUNK_SESSIONS]
            self._erase(user_id, [entry["session_id"]["S"] for entry in chunk],
                        [entry for entry in chunk if mark_of(entry) < mark])
        return len(stale)

    def _erase(self, user_id: str, session_ids: list[str], entries: list[dict]) -> None:
        """Marks the entries erasing (so every later confirm of their writers fails), sweeps the
        sessions' partitions, side by side, of everything but what a new incarnation of a session,
        registered meanwhile, wrote, then deletes the entries: a write lands before the sweep's Query
        (swept) or after the mark (its confirm fails and its writer removes it); a new incarnation's
        entry precedes its items."""
        list(POOL.map(self.registry.begin_erasure, entries))
        found = POOL.map(lambda session_id: query_all(
            self._client, TableName=self._table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": session_key(user_id, session_id)}},
            ProjectionExpression="pk, sk, gen", ConsistentRead=True), session_ids)
        keys = [key for keys in found for key in keys]
        live = {session_key(user_id, session_id): generation
                for session_id, generation in (self.registry.live_generations(user_id, session_ids) if keys else {}).items()}
        doomed = [{"pk": key["pk"], "sk": key["sk"]} for key in keys if generation_of(key) != live.get(key["pk"]["S"])]
        batches = [doomed[first:first + ERASE_BATCH_ITEMS] for first in range(0, len(doomed), ERASE_BATCH_ITEMS)]
        list(POOL.map(lambda batch: delete_all(self._client, self._table, batch), batches))
        list(POOL.map(self.registry.end_erasure, entries))

    def _discard(self, keys: list[dict]) -> None:
        """Best effort: what is left is invisible (its generation is not live) and expires by TTL."""
        try:
            for key in keys:  # a turn and its records: a few single deletes, no batch grant needed
                self._client.delete_item(TableName=self._table, Key=key)
        except (BotoCoreError, ClientError):
            pass

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


def _key_of(transact_item: dict) -> dict:
    operation = next(iter(transact_item.values()))
    return operation.get("Key") or {"pk": operation["Item"]["pk"], "sk": operation["Item"]["sk"]}


def turn_item(turn: Turn, *, expires_at: int, generation: str) -> dict:
    """The stored item of a turn (what _turn_from_item reads back)."""
    return {
        **item_key(turn.user_id, turn.session_id, TURN_PREFIX + turn.turn_id),
        "gen": {"S": generation},
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
