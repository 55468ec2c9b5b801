"""Key schema of the two memory tables: the one source of truth for the code, the local
bootstrap and the CDK tables."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSchema:
    partition_key: str
    sort_key: str
    ttl_attribute: str | None = None

    def key_attributes(self) -> list[str]:
        return [self.partition_key, self.sort_key]


# One item per turn (and the session's summary and idempotency records) under a partition key built
# from the caller's id and the session id, one registry item per session in its owner's partition,
# and the user's erasure mark (memory.keys, memory.registry). No index: every read, erasure's included, is keyed and consistent.
SESSIONS = TableSchema(
    partition_key="pk",
    sort_key="sk",
    ttl_attribute="expires_at",
)

# Per-user key/value facts: permanent, no TTL.
LONG_TERM = TableSchema(partition_key="user_id", sort_key="fact_key")
