"""Durable two-tier memory for LLM agents on DynamoDB.

- Conversation memory (`ConversationStore`): one item per turn, per session, expiring `ttl_days`
  after its write; concurrent turns never overwrite each other; erasure of a session or of a user
  is a fence (nothing it erased is left, whatever raced it).
- Long-term memory (`FactStore`): a user's key/value facts, permanent, under caps.
- `ResilientMemory`: reads fail fast (`MemoryUnavailable`); a write is best effort: when it fails it
  is logged as the event `memory_write_suppressed` through the logger you pass, and the turn goes on.
- `WindowPolicy`: what goes into the next prompt, cut by whole turns, never between a tool call
  and its result.

`connect(...)` builds the usual set; `ensure_tables(...)` creates the tables from the key schema the
CDK stack uses. Framework adapters are optional extras: `durable_memory.adapters.strands`,
`.langchain`, `.openai_agents`. The agent's Lambda imports this same package as `memory`."""

import logging

from .client import dynamodb_client
from .conversation import ConversationStore
from .errors import InvalidToken, MemoryUnavailable, SessionNotFound
from .long_term import Fact, FactLimits, FactsLimitReached, FactStore, InvalidFact
from .resilient import MemoryContext, ResilientMemory
from .schema import LONG_TERM, SESSIONS, TableSchema
from .tables import ensure_tables
from .turns import Turn, Usage, iso, new_turn_id
from .window import WindowPolicy

__version__ = "0.1.0"

DEFAULT_TTL_DAYS = 30
DEFAULT_MAX_TURNS = 20

__all__ = [
    "ConversationStore", "Fact", "FactLimits", "FactStore", "FactsLimitReached", "InvalidFact", "InvalidToken",
    "LONG_TERM", "MemoryContext", "MemoryUnavailable", "ResilientMemory", "SESSIONS", "SessionNotFound",
    "TableSchema", "Turn", "Usage", "WindowPolicy", "__version__", "connect", "dynamodb_client", "ensure_tables",
    "iso", "new_turn_id",
]


def connect(
    *,
    sessions_table: str,
    long_term_table: str,
    client=None,
    logger: logging.Logger | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    ttl_days: int = DEFAULT_TTL_DAYS,
    window: WindowPolicy = WindowPolicy(),
    fact_limits: FactLimits = FactLimits(),
) -> ResilientMemory:
    """The memory of an agent on these two tables. `client`: a DynamoDB client (boto3's or
    botocore's; default: `dynamodb_client()`, with short timeouts and 2 attempts). `logger` receives
    `memory_write_suppressed` warnings (default: the `durable_memory` stdlib logger); in Lambda with
    JSON logs, the stack's metric filter counts them. `max_turns`: the most turns a window reads."""
    client = client or dynamodb_client()
    return ResilientMemory(
        conversations=ConversationStore(client=client, table_name=sessions_table, ttl_days=ttl_days),
        facts=FactStore(client=client, table_name=long_term_table, limits=fact_limits),
        logger=logger or logging.getLogger("durable_memory"),
        max_turns=max_turns,
        window=window,
    )
