"""Long-term memory: permanent key/value facts per user, in their own table, under caps.

Every fact goes into every prompt of its user and stays for ever, so the store bounds it: how many
facts, how long a value, how many bytes in all. The totals live in one usage item per user, updated
in the same transaction as the fact, on the condition that it stays under the caps: two writers
racing at the cap cannot both land past it, and a write that does not grow the totals (overwriting a
fact with a value no longer) always goes through."""

import re
import time
import unicodedata
from dataclasses import dataclass

from botocore.exceptions import ClientError

from memory.conversation import batch_write_all, cancelled_by, transact_write, translate_errors
from memory.errors import MemoryUnavailable
from memory.turns import iso

FACT_KEY = r"[a-z0-9_.-]{1,64}"
FACT_KEY_PATTERN = re.compile(FACT_KEY)
# The user's totals. Its sort key cannot be a fact key ('#' is not in FACT_KEY), so no fact can
# overwrite it, and it sorts before every fact key: reading the facts skips it by key, not by filter.
USAGE_KEY = "#usage"
DEFAULT_MAX_FACTS = 200
DEFAULT_MAX_VALUE_CHARS = 500
# ~16,000 tokens at chars/4: all of a user's facts fit the default facts share of the prompt.
DEFAULT_MAX_BYTES = 64 * 1024
# A line break or a control character could end a fact's entry in the prompt and start another.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
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


@dataclass(frozen=True)
class FactLimits:
    max_facts: int = DEFAULT_MAX_FACTS
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
    max_bytes: int = DEFAULT_MAX_BYTES


def valid_key(key) -> bool:
    return isinstance(key, str) and FACT_KEY_PATTERN.fullmatch(key) is not None


def fact_bytes(key: str, value: str) -> int:
    return len(key.encode()) + len(value.encode())


class FactStore:
    def __init__(self, *, client, table_name: str, limits: FactLimits = FactLimits(), clock=time.time):
        self._client = client
        self._table = table_name
        self.limits = limits
        self._clock = clock

    @translate_errors
    def all(self, user_id: str) -> list[Fact]:
        """The user's facts, most recently updated first."""
        facts, start = [], None
        while True:
            page = self._client.query(
                TableName=self._table,
                KeyConditionExpression="user_id = :user AND fact_key > :usage",
                ExpressionAttributeValues={":user": {"S": user_id}, ":usage": {"S": USAGE_KEY}},
                ConsistentRead=True,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            facts += [Fact(item["fact_key"]["S"], item["value"]["S"], item["updated_at"]["S"]) for item in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return sorted(facts, key=lambda fact: fact.updated_at, reverse=True)

    def check(self, key, value) -> None:
        """Raises InvalidFact unless `key` and `value` can be stored: the API and the tool alike."""
        if not valid_key(key):
            raise InvalidFact(f"key must match {FACT_KEY}")
        if not isinstance(value, str) or not value.strip():
            raise InvalidFact("value must be a non-blank string")
        if len(value) > self.limits.max_value_chars:
            raise InvalidFact(f"value must be at most {self.limits.max_value_chars} characters")
        if any(unicodedata.category(char) in REFUSED_CATEGORIES for char in value):
            raise InvalidFact("value must be one line of text, without control characters")

    @translate_errors
    def put(self, user_id: str, key: str, value: str) -> None:
        """Raises InvalidFact, or FactsLimitReached past a cap (nothing stored then)."""
        self.check(key, value)
        for _ in range(WRITE_TRIES):
            old, usage = self._read(user_id, key)
            new_facts = 0 if old is not None else 1
            grown = fact_bytes(key, value) - (fact_bytes(key, old) if old is not None else 0)
            if usage is None:  # the user's first write under caps: the totals start from what is stored
                stored = self.all(user_id)
                usage = {"facts": len(stored), "bytes": sum(fact_bytes(f.key, f.value) for f in stored)}
                counter = self._new_usage(user_id, usage["facts"] + new_facts, usage["bytes"] + grown)
            else:
                counter = self._add_usage(user_id, new_facts, grown)
            if new_facts and usage["facts"] + new_facts > self.limits.max_facts:
                raise FactsLimitReached(f"at most {self.limits.max_facts} facts per user")
            if grown > 0 and usage["bytes"] + grown > self.limits.max_bytes:
                raise FactsLimitReached(f"at most {self.limits.max_bytes} bytes of facts per user")
            if self._write(self._put_fact(user_id, key, value, old), counter):
                return
        raise MemoryUnavailable("too many concurrent writes to this user's facts")

    @translate_errors
    def delete(self, user_id: str, key: str) -> bool:
        """Whether there was a fact to delete."""
        for _ in range(WRITE_TRIES):
            old, usage = self._read(user_id, key)
            if old is None:
                return False
            delete = {"Delete": {
                "TableName": self._table,
                "Key": self._key(user_id, key),
                "ConditionExpression": "#value = :old",
                "ExpressionAttributeNames": {"#value": "value"},
                "ExpressionAttributeValues": {":old": {"S": old}},
            }}
            # Without a usage item there are no totals to keep: the next put counts what is stored.
            if self._write(delete, self._add_usage(user_id, -1, -fact_bytes(key, old)) if usage else None):
                return True
        raise MemoryUnavailable("too many concurrent writes to this user's facts")

    @translate_errors
    def delete_user(self, user_id: str) -> int:
        keys = [fact.key for fact in self.all(user_id)]
        # The usage item goes in the first batch: if a later one fails, the next put recounts what is left.
        batch_write_all(
            self._client,
            self._table,
            [{"DeleteRequest": {"Key": self._key(user_id, key)}} for key in [USAGE_KEY, *keys]],
        )
        return len(keys)

    def _read(self, user_id: str, key: str) -> tuple[str | None, dict | None]:
        """The fact's stored value and the user's totals, read together (serialisably)."""
        fact, usage = self._client.transact_get_items(TransactItems=[
            {"Get": {"TableName": self._table, "Key": self._key(user_id, key)}},
            {"Get": {"TableName": self._table, "Key": self._key(user_id, USAGE_KEY)}},
        ])["Responses"]
        old = fact["Item"]["value"]["S"] if "Item" in fact else None
        if "Item" not in usage:
            return old, None
        return old, {"facts": int(usage["Item"]["fact_count"]["N"]), "bytes": int(usage["Item"]["fact_bytes"]["N"])}

    def _write(self, fact_write: dict, usage_write: dict | None) -> bool:
        """False when another writer of this user got there first (a condition failed): read again."""
        try:
            transact_write(self._client, [fact_write, *([usage_write] if usage_write else [])])
        except ClientError as error:
            if cancelled_by(error, "ConditionalCheckFailed"):
                return False
            raise
        return True

    def _put_fact(self, user_id: str, key: str, value: str, old: str | None) -> dict:
        """The fact, on the condition that it is still as read: the totals' deltas depend on it."""
        put = {
            "TableName": self._table,
            "Item": {
                **self._key(user_id, key),
                "value": {"S": value},
                "updated_at": {"S": iso(self._clock())},
            },
        }
        if old is None:
            put["ConditionExpression"] = "attribute_not_exists(fact_key)"
        else:
            put |= {
                "ConditionExpression": "#value = :old",
                "ExpressionAttributeNames": {"#value": "value"},
                "ExpressionAttributeValues": {":old": {"S": old}},
            }
        return {"Put": put}

    def _new_usage(self, user_id: str, facts: int, size: int) -> dict:
        return {"Put": {
            "TableName": self._table,
            "Item": {**self._key(user_id, USAGE_KEY), "fact_count": {"N": str(facts)}, "fact_bytes": {"N": str(size)}},
            "ConditionExpression": "attribute_not_exists(fact_key)",
        }}

    def _add_usage(self, user_id: str, facts: int, size: int) -> dict:
        """Adds to the totals; a write that grows them is refused if it would pass a cap."""
        conditions, values = ["attribute_exists(fact_key)"], {":facts": {"N": str(facts)}, ":bytes": {"N": str(size)}}
        if facts > 0:
            conditions.append("fact_count <= :facts_below")
            values[":facts_below"] = {"N": str(self.limits.max_facts - facts)}
        if size > 0:
            conditions.append("fact_bytes <= :bytes_below")
            values[":bytes_below"] = {"N": str(self.limits.max_bytes - size)}
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
