"""DynamoDB helpers the memory stores share: error translation, paging, batches, transactions."""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from functools import wraps

from botocore.exceptions import BotoCoreError, ClientError

from .errors import MemoryUnavailable

BATCH_WRITE_MAX_ITEMS = 25
BATCH_WRITE_MAX_ROUNDS = 5
UNPROCESSED_BACKOFF_SECONDS = 0.05
# Only writers of the same thing meet inside a transaction (a user's fact totals, two runs of one
# compaction); DynamoDB cancels the later one (TransactionConflict) and botocore does not retry
# that. Three more tries, jittered below 0.05/0.1/0.2 s, stay well inside a 4 s write budget.
TRANSACTION_CONFLICT_RETRIES = 3
TRANSACTION_CONFLICT_BACKOFF_SECONDS = 0.05
# Shared by every request of the process: reads that go side by side (a turn's window, facts and
# fence; a history page and its fence) and erasure's sessions.
POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="memory")
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


def condition_failed(error: Exception) -> bool:
    return isinstance(error, ClientError) and error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def cancelled_by(error: ClientError, code: str) -> bool:
    """Whether a cancelled transaction names `code` among its reasons (one per item)."""
    return any(reason.get("Code") == code for reason in error.response.get("CancellationReasons") or [])


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


def query_all(client, **query) -> list[dict]:
    items, start = [], None
    while True:
        page = client.query(**query, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def batch_get(client, table: str, keys: list[dict]) -> list[dict]:
    """The items of `keys` that exist (consistent), retrying what comes back unprocessed."""
    found, pending = [], keys
    for attempt in range(BATCH_WRITE_MAX_ROUNDS):
        response = client.batch_get_item(RequestItems={table: {"Keys": pending, "ConsistentRead": True}})
        found += response["Responses"].get(table, [])
        pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if not pending:
            return found
        time.sleep(UNPROCESSED_BACKOFF_SECONDS * 2**attempt)
    raise MemoryUnavailable(f"{len(pending)} reads left unprocessed")


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


def delete_all(client, table: str, keys: list[dict]) -> None:
    batch_write_all(client, table, [{"DeleteRequest": {"Key": key}} for key in keys])
