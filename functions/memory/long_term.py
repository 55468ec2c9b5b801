"""Long-term memory: permanent key/value facts per user, in their own table, under caps.

Every fact goes into every prompt of its user and stays for ever, so the store bounds it: how many
facts, how long a value, how many bytes in all. The totals live in one usage item per user, updated
in the same transaction as the fact, on the condition that it stays under the caps: two writers
racing at the cap cannot both land past it, and a write that does not grow the totals (overwriting a
fact with a value no longer) always goes through. Totals are only trusted to let a write through: when
they are missing (facts stored before the caps) or would refuse it, the facts are counted, and the
write goes by that count, so totals that drifted (an erasure that failed half way) never refuse a
fact below the caps."""

import re
import time
import unicodedata
from dataclasses import dataclass

from botocore.exceptions import ClientError

from .dynamo import batch_get, cancelled_by, delete_all, query_all, transact_write, translate_errors
from .errors import MemoryUnavailable
from .inert import invisible
from .turns import iso

# A fact key is a path segment of /memory/{key}: not dots only, because clients resolve "." and ".."
# away before they send a URL (RFC 3986 section 5.2.4), so no such fact could be deleted. Its length
# is checked apart, so the pattern needs no lookahead (which pydantic's Rust regex engine lacks).
FACT_KEY = r"[a-z0-9_.-]*[a-z0-9_-][a-z0-9_.-]*"
FACT_KEY_MAX_CHARS = 64
FACT_KEY_PATTERN = re.compile(FACT_KEY)
FACT_KEY_RULE = f"1 to {FACT_KEY_MAX_CHARS} of a-z, 0-9, '_', '-' and '.', not dots only"
# The user's totals. Its sort key cannot be a fact key ('#' is not in FACT_KEY), so no fact can
# overwrite it, and it sorts before every fact key: reading the facts skips it by key, not by filter.
USAGE_KEY = "#usage"
DEFAULT_MAX_FACTS = 200
DEFAULT_MAX_VALUE_CHARS = 500
# ~16,000 tokens at chars/4: all of a user's facts fit the default facts share of the prompt.
DEFAULT_MAX_BYTES = 64 * 1024
# A line break or a control character could end a fact's entry in the prompt and start another; an
# invisible format character (memory.inert) could hide text, or turn it around, from anyone reading it.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
VALUE_RULE = ("one line of visible text: no control characters, line or paragraph separators, or invisible "
              "format characters (Unicode category Cf: tag characters, bidi controls, zero-width spaces), "
              "except the joiners U+200C and U+200D")
# Each try rereads the fact and the totals: only writers of the same user racing make another try.
WRITE_TRIES = 4


class InvalidFact(Exception):
    """The key or value is not one the store accepts (the client's fault, or the model's)."""


class FactsLimitReached(Exception):
    """Storing the fact would take the user past a cap: nothing was stored."""


@dataclass(frozen=True)
class Fact:
    key: str
    value: str
    updated_at: str
    mark: int = 0  # the user's erasure mark its writer read (memory.registry): visible while it is current


@dataclass(frozen=True)
class FactLimits:
    max_facts: int = DEFAULT_MAX_FACTS
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class Totals:
    """A user's number of facts and their bytes (keys and values, UTF-8), or a change to them."""

    facts: int
    size: int

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(self.facts + other.facts, self.size + other.size)


def valid_key(key) -> bool:
    return isinstance(key, str) and len(key) <= FACT_KEY_MAX_CHARS and FACT_KEY_PATTERN.fullmatch(key) is not None


def refused(char: str) -> bool:
    return unicodedata.category(char) in REFUSED_CATEGORIES or invisible(char)


def fact_bytes(key: str, value: str) -> int:
    return len(key.encode()) + len(value.encode())


def _size(key: str, value: str | None) -> int:
    return fact_bytes(key, value) if value is not None else 0


class FactStore:
    def __init__(self, *, client, table_name: str, limits: FactLimits = FactLimits(), clock=time.time):
        self._client = client
        self._table = table_name
        self.limits = limits
        self._clock = clock

    @translate_errors
    def all(self, user_id: str) -> list[Fact]:
        """Every fact stored for the user, of any mark, most recently updated first."""
        items = query_all(self._client, TableName=self._table,
                          KeyConditionExpression="user_id = :user AND fact_key > :usage",
                          ExpressionAttributeValues={":user": {"S": user_id}, ":usage": {"S": USAGE_KEY}},
                          ConsistentRead=True)
        facts = [Fact(item["fact_key"]["S"], item["value"]["S"], item["updated_at"]["S"],
                      int(item.get("mark", {"N": "0"})["N"])) for item in items]
        return sorted(facts, key=lambda fact: fact.updated_at, reverse=True)

    def check(self, key, value) -> None:
        """Raises InvalidFact unless `key` and `value` can be stored: the API and the tool alike."""
        if not valid_key(key):
            raise InvalidFact(f"key must be {FACT_KEY_RULE}")
        if not isinstance(value, str) or not value.strip():
            raise InvalidFact("value must be a non-blank string")
        if len(value) > self.limits.max_value_chars:
            raise InvalidFact(f"value must be at most {self.limits.max_value_chars} characters")
        if any(refused(char) for char in value):
            raise InvalidFact(f"value must be {VALUE_RULE}")

    @translate_errors
    def put(self, user_id: str, key: str, value: str, *, mark: int = 0) -> None:
        """Stores the fact stamped with the user's erasure `mark` its writer read. Raises
        InvalidFact, or FactsLimitReached past a cap (nothing stored then)."""
        self.check(key, value)
        for _ in range(WRITE_TRIES):
            old, totals = self._read(user_id, key)
            change = Totals(facts=0 if old is not None else 1, size=fact_bytes(key, value) - _size(key, old))
            if totals is not None and not self._refusal(totals, change):
                usage = self._add_usage(user_id, change)
            else:
                # No totals yet (the user's first write under caps), or totals that refuse the write:
                # count what is stored, so that totals that drifted from it never refuse a fact below the caps.
                stored = self._stored(user_id)
                if refusal := self._refusal(stored, change):
                    raise FactsLimitReached(refusal)
                usage = self._set_usage(user_id, stored + change, was=totals)
            if self._write(self._put_fact(user_id, key, value, old, mark), usage):
                return
        raise MemoryUnavailable("too many concurrent writes to this user's facts")

    @translate_errors
    def delete(self, user_id: str, key: str) -> bool:
        """Whether there was a fact to delete."""
        for _ in range(WRITE_TRIES):
            old, totals = self._read(user_id, key)
            if old is None:
                return False
            change = Totals(facts=-1, size=-_size(key, old))
            usage = (self._add_usage(user_id, change) if totals is not None
                     else self._set_usage(user_id, self._stored(user_id) + change, was=None))
            delete = {"Delete": {"TableName": self._table, "Key": self._key(user_id, key), **_as_read(old)}}
            if self._write(delete, usage):
                return True
        raise MemoryUnavailable("too many concurrent writes to this user's facts")

    @translate_errors
    def erase(self, user_id: str, *, before_mark: int) -> int:
        """Every fact of an erasure mark older than `before_mark`, and the totals; returns how many."""
        keys = [fact.key for fact in self.all(user_id) if fact.mark < before_mark]
        # The totals go in the first batch: if a later one fails, the next put recounts what is left.
        delete_all(self._client, self._table, [self._key(user_id, key) for key in [USAGE_KEY, *keys]])
        return len(keys)

    @translate_errors
    def discard(self, user_id: str, key: str, *, mark: int) -> None:
        """Deletes a fact its writer stored with `mark` after an erasure moved the mark on, and the
        totals (the next write counts what is left)."""
        try:
            self._client.delete_item(TableName=self._table, Key=self._key(user_id, key),
                                     ConditionExpression="mark = :mark",
                                     ExpressionAttributeValues={":mark": {"N": str(mark)}})
        except self._client.exceptions.ConditionalCheckFailedException:
            pass  # overwritten by a writer of the new mark: not ours to delete
        self._client.delete_item(TableName=self._table, Key=self._key(user_id, USAGE_KEY))

    def _read(self, user_id: str, key: str) -> tuple[str | None, Totals | None]:
        """The fact's stored value and the user's totals, read consistently. Not a TransactGetItems:
        DynamoDB cancels one that meets any write in flight, and the write's conditions (the fact
        and the totals as read) already refuse a write based on a stale read."""
        items = {item["fact_key"]["S"]: item for item in batch_get(
            self._client, self._table, [self._key(user_id, key), self._key(user_id, USAGE_KEY)])}
        old = items[key]["value"]["S"] if key in items else None
        if USAGE_KEY not in items:
            return old, None
        return old, Totals(int(items[USAGE_KEY]["fact_count"]["N"]), int(items[USAGE_KEY]["fact_bytes"]["N"]))

    def _stored(self, user_id: str) -> Totals:
        facts = self.all(user_id)
        return Totals(len(facts), sum(fact_bytes(fact.key, fact.value) for fact in facts))

    def _refusal(self, totals: Totals, change: Totals) -> str | None:
        """Why `change` may not be made to `totals`: only a write that grows them past a cap is refused."""
        if change.facts > 0 and totals.facts + change.facts > self.limits.max_facts:
            return f"at most {self.limits.max_facts} facts per user"
        if change.size > 0 and totals.size + change.size > self.limits.max_bytes:
            return f"at most {self.limits.max_bytes} bytes of facts per user"
        return None

    def _write(self, fact_write: dict, usage_write: dict) -> bool:
        """False when another writer of this user got there first (a condition failed): read again."""
        try:
            transact_write(self._client, [fact_write, usage_write])
        except ClientError as error:
            if cancelled_by(error, "ConditionalCheckFailed"):
                return False
            raise
        return True

    def _put_fact(self, user_id: str, key: str, value: str, old: str | None, mark: int) -> dict:
        item = {**self._key(user_id, key), "value": {"S": value}, "updated_at": {"S": iso(self._clock())},
                "mark": {"N": str(mark)}}
        return {"Put": {"TableName": self._table, "Item": item, **_as_read(old)}}

    def _set_usage(self, user_id: str, totals: Totals, *, was: Totals | None) -> dict:
        """The totals as counted, on the condition that they did not move since they were read."""
        if was is None:
            condition, values = "attribute_not_exists(fact_key)", {}
        else:
            condition = "fact_count = :was_facts AND fact_bytes = :was_bytes"
            values = {":was_facts": {"N": str(was.facts)}, ":was_bytes": {"N": str(was.size)}}
        return {"Put": {
            "TableName": self._table,
            "Item": {**self._key(user_id, USAGE_KEY), "fact_count": {"N": str(totals.facts)},
                     "fact_bytes": {"N": str(totals.size)}},
            "ConditionExpression": condition,
            **({"ExpressionAttributeValues": values} if values else {}),
        }}

    def _add_usage(self, user_id: str, change: Totals) -> dict:
        """Adds `change` to the totals; a change that grows them is refused if it would pass a cap."""
        conditions = ["attribute_exists(fact_key)"]
        values = {":facts": {"N": str(change.facts)}, ":bytes": {"N": str(change.size)}}
        if change.facts > 0:
            conditions.append("fact_count <= :facts_below")
            values[":facts_below"] = {"N": str(self.limits.max_facts - change.facts)}
        if change.size > 0:
            conditions.append("fact_bytes <= :bytes_below")
            values[":bytes_below"] = {"N": str(self.limits.max_bytes - change.size)}
        return {"Update": {
            "TableName": self._table,
            "Key": self._key(user_id, USAGE_KEY),
            "UpdateExpression": "ADD fact_count :facts, fact_bytes :bytes",
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
        }}

    @staticmethod
    def _key(user_id: str, key: str) -> dict:
        return {"user_id": {"S": user_id}, "fact_key": {"S": key}}


def _as_read(old: str | None) -> dict:
    """The condition that a fact is still as it was read: the change to the totals depends on it."""
    if old is None:
        return {"ConditionExpression": "attribute_not_exists(fact_key)"}
    return {
        "ConditionExpression": "#value = :old",
        "ExpressionAttributeNames": {"#value": "value"},
        "ExpressionAttributeValues": {":old": {"S": old}},
    }
