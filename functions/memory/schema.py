"""Key schema of the two memory tables: the one source of truth for the code, the local
bootstrap and the CDK tables."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSchema:
    partition_key: str
    sort_key: str
    ttl_attribute: str | None = None
    indexes: tuple[Index, ...] = ()

    def key_attributes(self) -> list[str]:
        names = [self.partition_key, self.sort_key]
        for index in self.indexes:
            names += [index.partition_key, index.sort_key]
        return list(dict.fromkeys(names))


# One item per turn plus one small META item per session, all under one partition key built from
# the caller's id and the session id. Only META items carry the index keys, so the index is sparse:
# it lists a user's sessions, newest first, without touching their turns.
SESSIONS = TableSchema(
    partition_key="pk",
    sort_key="sk",
    ttl_attribute="expires_at",
    indexes=(Index(name="by_owner", partition_key="owner", sort_key="updated_at"),),
)

# Per-user key/value facts: permanent, no TTL.
LONG_TERM = TableSchema(partition_key="user_id", sort_key="fact_key")
