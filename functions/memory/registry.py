"""The session registry and the user's erasure mark: how erasure finds a user's data, and how a
writer that began before an erasure learns of it (README: Data model, the fence).

Registry entry (pk OWNER#<user>, sk SESSION#<session>), one per session: `gen`, a random token naming
this incarnation of the session (every item written into the session carries it), `mark`, the
user's erasure mark when the entry was made, and what listing shows (`turn_count`, `created_at`,
`updated_at`, `turns_expire_at`). Erasure mark (pk ERASED#<sha256(user)>, sk MARK): a counter that
DELETE /me moves before it erases anything; it names nobody and stays.

A session is live while its entry exists, carries the user's current mark and is not `erasing`; an
item is visible while its `gen` is its live session's. A writer reads its session's Fence (gen and
mark) before it reads anything else, stamps what it writes with it, and confirms the fence after
writing: a confirm that fails means an erasure ran in between, so the writer removes what it wrote
and raises Erased. Erasure marks the entry `erasing` first, sweeps the session, and deletes the entry
last, so every write lands either before the sweep (swept) or before a confirm that fails (removed
by its writer); an erasure cut short (its function's timeout) leaves the entry marked, and the
retry finds it and finishes.

Only single-item writes ever touch these items, never a transaction: DynamoDB cancels transactions
that meet on an item, and every turn of a session and every session of a user meet here."""

import secrets
import time
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from .dynamo import batch_get, query_all, translate_errors
from .errors import Erased
from .keys import MARK_PREFIX, REGISTRY_PREFIX, REGISTRY_SK_PREFIX, mark_key, registry_key
from .turns import iso

SECONDS_PER_DAY = 86_400
# TTL deletes expired items "typically within a few days" and in no order: the entry outlives the
# newest item of its session by a month, so erasure still finds whatever TTL is late on.
REGISTRY_GRACE_SECONDS = 30 * SECONDS_PER_DAY
# Entries and items written before generations existed carry none: they are generation "".
LEGACY_GENERATION = ""
# The attribute of an entry whose session an erasure has begun to sweep.
ERASING = "erasing"


@dataclass(frozen=True)
class Fence:
    """What a writer read when it began: its session's generation and its user's erasure mark."""

    generation: str
    mark: int


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    created_at: str
    updated_at: str
    turns: int


def generation_of(item: dict) -> str:
    return item.get("gen", {}).get("S", LEGACY_GENERATION)


def mark_of(item: dict | None) -> int:
    return int(item["mark"]["N"]) if item and "mark" in item else 0


def _live(entry: dict | None, mark: int) -> Fence | None:
    if entry is None or mark_of(entry) != mark or ERASING in entry:
        return None
    return Fence(generation_of(entry), mark)


class Registry:
    def __init__(self, *, client, table_name: str, ttl_days: int, clock=time.time):
        self._client = client
        self._table = table_name
        self._ttl_seconds = ttl_days * SECONDS_PER_DAY
        self._clock = clock

    @translate_errors
    def read(self, user_id: str, session_id: str) -> tuple[dict | None, int]:
        """The session's entry (None if there is none) and the user's mark: one consistent read."""
        items = batch_get(self._client, self._table, [registry_key(user_id, session_id), mark_key(user_id)])
        entry = next((item for item in items if item["pk"]["S"].startswith(REGISTRY_PREFIX)), None)
        return entry, mark_of(next((item for item in items if item["pk"]["S"].startswith(MARK_PREFIX)), None))

    @translate_errors
    def fence(self, user_id: str, session_id: str) -> Fence | None:
        """The live session's fence, None if the session does not exist (or was erased)."""
        return _live(*self.read(user_id, session_id))

    @translate_errors
    def open(self, user_id: str, session_id: str) -> Fence:
        """The session's fence, registering the session first if it is new. Raises Erased when
        DELETE /me began while it registered (the request read the user's memory before it)."""
        entry, mark = self.read(user_id, session_id)
        if fence := _live(entry, mark):
            return fence
        now = self._clock()
        values = {":sid": {"S": session_id}, ":gen": {"S": secrets.token_hex(8)}, ":mark": {"N": str(mark)},
                  ":now": {"S": iso(now)}, ":zero": {"N": "0"}, ":exp": {"N": str(self._entry_expiry(now))}}
        try:
            entry = self._client.update_item(
                TableName=self._table, Key=registry_key(user_id, session_id),
                UpdateExpression="SET session_id = :sid, gen = :gen, mark = :mark, created_at = :now, "
                                 "updated_at = :now, turn_count = :zero, turns_expire_at = :zero, expires_at = :exp "
                                 "REMOVE erasing",
                # Absent, being erased, or left by an erasure of the user that this request came after. A
                # sibling request may have registered it a moment ago: then its entry is this one's too.
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(mark) OR mark < :mark "
                                    "OR attribute_exists(erasing)",
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
            made = True
        except self._client.exceptions.ConditionalCheckFailedException as error:
            entry, made = error.response["Item"], False
        fence = Fence(generation_of(entry), mark_of(entry))
        # DELETE /me moves the mark before it lists the entries: if it has not moved now, the
        # erasure (if any) will find this entry; if it has, it may have listed them before.
        if fence.mark != mark or self.mark(user_id) != mark:
            if made:
                self.drop(user_id, session_id, fence.generation)
            raise Erased()
        return fence

    @translate_errors
    def check(self, user_id: str, session_id: str, fence: Fence) -> None:
        """Raises Erased unless the session is still the one `fence` was read from."""
        if self.fence(user_id, session_id) != fence:
            raise Erased()

    @translate_errors
    def confirm_turn(self, user_id: str, session_id: str, fence: Fence, *, turn_expires_at: int) -> None:
        """Counts a stored turn into the entry (what listing shows) on the condition that the fence
        still holds: the confirm of a turn's write. Raises Erased if it does not."""
        now = self._clock()
        condition, values = _fence_condition(fence)
        try:
            self._client.update_item(
                TableName=self._table, Key=registry_key(user_id, session_id),
                UpdateExpression="SET updated_at = :now, turns_expire_at = :texp, expires_at = :exp "
                                 "ADD turn_count :one",
                ConditionExpression=condition,
                ExpressionAttributeValues={**values, ":now": {"S": iso(now)}, ":texp": {"N": str(turn_expires_at)},
                                           ":exp": {"N": str(self._entry_expiry(now))}, ":one": {"N": "1"}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise Erased() from None

    @translate_errors
    def drop(self, user_id: str, session_id: str, generation: str) -> bool:
        """Deletes the entry if it is still of `generation`: one this request registered after an
        erasure may have listed the entries."""
        condition, values = _fence_condition(Fence(generation, 0), with_mark=False)
        try:
            self._client.delete_item(TableName=self._table, Key=registry_key(user_id, session_id),
                                     ConditionExpression=condition, ExpressionAttributeValues=values)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, user_id: str, session_id: str, fence: Fence) -> None:
        """Deletes the entry if it is still of `fence` and holds no turn: what a request that
        registered a session leaves when an erasure refused its writes. Best effort: an entry
        without turns is listed nowhere, and the next erasure takes it."""
        condition, values = _fence_condition(fence, with_mark=False)
        try:
            self._client.delete_item(TableName=self._table, Key=registry_key(user_id, session_id),
                                     ConditionExpression=f"{condition} AND turn_count = :zero",
                                     ExpressionAttributeValues={**values, ":zero": {"N": "0"}})
        except (BotoCoreError, ClientError):  # not of this fence any more, not empty, or unreachable
            pass

    @translate_errors
    def begin_erasure(self, entry: dict) -> None:
        """Marks the entry `erasing` if it is still the one listed (not registered anew meanwhile):
        from here on every confirm of its writers fails, and listing and reads skip it."""
        condition, values = _fence_condition(Fence(generation_of(entry), mark_of(entry)), erasing=True)
        try:
            self._client.update_item(TableName=self._table, Key=_key_of(entry), UpdateExpression="SET erasing = :true",
                                     ConditionExpression=condition,
                                     ExpressionAttributeValues={**values, ":true": {"BOOL": True}})
        except self._client.exceptions.ConditionalCheckFailedException:
            pass  # registered anew (its items of the old generation are swept all the same) or gone

    @translate_errors
    def end_erasure(self, entry: dict) -> None:
        """Deletes the entry once its session is swept, unless it was registered anew meanwhile."""
        condition, values = _fence_condition(Fence(generation_of(entry), 0), with_mark=False, erasing=True)
        try:
            self._client.delete_item(TableName=self._table, Key=_key_of(entry),
                                     ConditionExpression=f"{condition} AND attribute_exists(erasing)",
                                     ExpressionAttributeValues=values)
        except self._client.exceptions.ConditionalCheckFailedException:
            pass

    @translate_errors
    def live_generations(self, user_id: str, session_ids: list[str]) -> dict[str, str]:
        """session id -> generation, for those of `session_ids` whose entry is live or new (of any mark,
        not being erased): their items are not an erasure's to sweep."""
        items = batch_get(self._client, self._table, [registry_key(user_id, sid) for sid in session_ids])
        return {item["session_id"]["S"]: generation_of(item) for item in items if ERASING not in item}

    @translate_errors
    def entries(self, user_id: str) -> list[dict]:
        """Every entry of the user, read consistently (an index could still miss the newest)."""
        return query_all(self._client, TableName=self._table, KeyConditionExpression="pk = :pk",
                         ExpressionAttributeValues={":pk": {"S": REGISTRY_PREFIX + user_id}}, ConsistentRead=True)

    @translate_errors
    def mark(self, user_id: str) -> int:
        return mark_of(self._client.get_item(TableName=self._table, Key=mark_key(user_id),
                                             ConsistentRead=True).get("Item"))

    @translate_errors
    def advance(self, user_id: str) -> int:
        """Moves the user's mark: from here on every session and fact of an older mark is erased."""
        return mark_of(self._client.update_item(
            TableName=self._table, Key=mark_key(user_id), UpdateExpression="ADD mark :one",
            ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW",
        )["Attributes"])

    @translate_errors
    def sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions with turns, most recently used first, sorted here (a sort key
        that moved every turn would cost an index rewrite each)."""
        entries, mark = self.entries(user_id), self.mark(user_id)
        now = int(self._clock())
        infos = [
            SessionInfo(session_id=item["session_id"]["S"], created_at=item["created_at"]["S"],
                        updated_at=item["updated_at"]["S"], turns=int(item["turn_count"]["N"]))
            for item in entries
            if item["sk"]["S"].startswith(REGISTRY_SK_PREFIX) and _live(item, mark)
            and int(item.get("turn_count", {"N": "0"})["N"]) > 0 and int(item["turns_expire_at"]["N"]) > now
        ]
        return sorted(infos, key=lambda info: info.updated_at, reverse=True)

    def _entry_expiry(self, now: float) -> int:
        return int(now) + self._ttl_seconds + REGISTRY_GRACE_SECONDS


def _key_of(entry: dict) -> dict:
    return {"pk": entry["pk"], "sk": entry["sk"]}


def _fence_condition(fence: Fence, *, with_mark: bool = True, erasing: bool = False) -> tuple[str, dict]:
    """The condition that an entry is still of `fence` (legacy entries carry neither attribute) and,
    unless `erasing`, that no erasure has begun on it."""
    if fence.generation == LEGACY_GENERATION:
        parts, values = ["attribute_exists(pk) AND attribute_not_exists(gen)"], {}
    else:
        parts, values = ["gen = :gen"], {":gen": {"S": fence.generation}}
    if not erasing:
        parts.append("attribute_not_exists(erasing)")
    if with_mark:
        parts.append("(attribute_not_exists(mark) OR mark = :mark)" if fence.mark == 0 else "mark = :mark")
        values[":mark"] = {"N": str(fence.mark)}
    return " AND ".join(parts), values
