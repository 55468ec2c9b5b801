"""local.strict_dynamodb applies DynamoDB's transaction-conflict rules to DynamoDB Local, over the
wire, with botocore: what it refuses, in the shape botocore parses, and what it lets through.

Each test runs its own proxy with long hold times, so that "during" is not a race on a busy machine:
the first request holds its items for HOLD_SECONDS, and the second is sent SETTLE_SECONDS after it."""

import json
import subprocess
import sys
import threading
import time
import uuid

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack import SESSIONS_TABLE
from local.strict_dynamodb import REFUSALS_PATH, strict_dynamodb

pytestmark = [pytest.mark.slow, pytest.mark.waits]  # holds waited out

HOLD_SECONDS = 1.5
SETTLE_SECONDS = 0.2
# One attempt: botocore must show what the proxy answered, not retry it away.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, read_timeout=30)
CANCELLED = "TransactionCanceledException"
OK = ("ok", [])


@pytest.fixture
def strict(strict_proxy, tables):
    with strict_dynamodb(strict_proxy.upstream, transaction_seconds=HOLD_SECONDS, write_seconds=HOLD_SECONDS) as proxy:
        yield proxy


def client(endpoint: str):
    return botocore.session.get_session().create_client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG)


def key(name: str) -> dict:
    return {"pk": {"S": f"strict-{uuid.uuid4().hex}"}, "sk": {"S": name}}


def put(item_key: dict) -> dict:
    return {"Put": {"TableName": SESSIONS_TABLE, "Item": {**item_key, "value": {"S": "put"}}}}


def update(item_key: dict) -> dict:
    return {"Update": {"TableName": SESSIONS_TABLE, "Key": item_key, "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}


def outcome(call) -> tuple[str, list[str]]:
    """("ok", []) or (the error code botocore parsed, the cancellation reasons' codes)."""
    try:
        call()
        return OK
    except ClientError as error:
        return error.response["Error"]["Code"], [r["Code"] for r in error.response.get("CancellationReasons", [])]


def at_once(*calls) -> list[tuple]:
    """The outcomes of `calls`, sent together from threads."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(n):
        barrier.wait()
        outcomes[n] = outcome(calls[n])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def during(first, *then) -> tuple[tuple, list[tuple]]:
    """The outcome of `first`, and those of `then`, sent together while `first` is ongoing."""
    outcomes = {}
    thread = threading.Thread(target=lambda: outcomes.update(first=outcome(first)))
    thread.start()
    time.sleep(SETTLE_SECONDS)
    meanwhile = at_once(*then)
    thread.join()
    return outcomes["first"], meanwhile


def overlapping_transactions(endpoint: str) -> tuple[list[tuple], dict, list[dict]]:
    """Two transactions sent at once, each putting an item of its own and updating a shared one."""
    dynamodb, shared, own = client(endpoint), key("shared"), [key("a"), key("b")]
    outcomes = at_once(*(lambda k=k: dynamodb.transact_write_items(TransactItems=[put(k), update(shared)]) for k in own))
    return outcomes, shared, own


def stored(dynamodb, item_key: dict) -> dict | None:
    return dynamodb.get_item(TableName=SESSIONS_TABLE, Key=item_key, ConsistentRead=True).get("Item")


def test_overlapping_transactions_on_one_item_cancel_all_but_one(strict):
    # When two transactions that share one item are sent at once
    outcomes, shared, own = overlapping_transactions(strict.endpoint)
    # Then exactly one is cancelled, TransactionConflict on the shared item, None on its own
    assert sorted(outcomes) == [(CANCELLED, ["None", "TransactionConflict"]), OK]
    # And the cancelled one wrote nothing: the shared item was updated once, one own item exists
    dynamodb = client(strict.endpoint)
    assert stored(dynamodb, shared)["n"] == {"N": "1"}
    assert sum(stored(dynamodb, k) is not None for k in own) == 1
    assert strict.refusals() == {"TransactWriteItems": 1}


def test_dynamodb_local_alone_cancels_neither(strict_proxy, tables):
    # The reason the proxy exists: DynamoDB Local applies both transactions, one after the other
    outcomes, shared, _ = overlapping_transactions(strict_proxy.upstream)
    assert outcomes == [OK, OK]
    assert stored(client(strict_proxy.upstream), shared)["n"] == {"N": "2"}


SINGLE_WRITES = {
    "PutItem": lambda dynamodb, k: dynamodb.put_item(TableName=SESSIONS_TABLE, Item={**k, "value": {"S": "single"}}),
    "UpdateItem": lambda dynamodb, k: dynamodb.update_item(**update(k)["Update"]),
    "DeleteItem": lambda dynamodb, k: dynamodb.delete_item(TableName=SESSIONS_TABLE, Key=k),
}


@pytest.mark.parametrize("operation", SINGLE_WRITES)
def test_a_single_write_on_an_item_a_transaction_holds_fails_with_transaction_conflict(strict, operation):
    dynamodb, held = client(strict.endpoint), key("held")
    # When a single write arrives while a transaction holds its item
    transaction, single = during(lambda: dynamodb.transact_write_items(TransactItems=[put(held)]),
                                 lambda: SINGLE_WRITES[operation](dynamodb, held))
    # Then the write fails with TransactionConflictException, and the item is as the transaction wrote it
    assert (transaction, single) == (OK, [("TransactionConflictException", [])])
    assert stored(dynamodb, held)["value"] == {"S": "put"}
    assert strict.refusals() == {operation: 1}


HOLDERS = {
    "PutItem": lambda dynamodb, k: dynamodb.put_item(TableName=SESSIONS_TABLE, Item=k),
    "BatchWriteItem": lambda dynamodb, k: dynamodb.batch_write_item(
        RequestItems={SESSIONS_TABLE: [{"PutRequest": {"Item": k}}]}),
    "TransactWriteItems": lambda dynamodb, k: dynamodb.transact_write_items(TransactItems=[put(k)]),
}


@pytest.mark.parametrize("holder", HOLDERS)
def test_a_transactional_read_of_an_item_any_write_holds_is_cancelled(strict, holder):
    dynamodb, held, free = client(strict.endpoint), key("held"), key("free")
    gets = [{"Get": {"TableName": SESSIONS_TABLE, "Key": k}} for k in (held, free)]
    # When a TransactGetItems reads an item an ongoing write holds, and one nobody holds
    write, read = during(lambda: HOLDERS[holder](dynamodb, held), lambda: dynamodb.transact_get_items(TransactItems=gets))
    # Then the read is cancelled, TransactionConflict on the held item only; the write goes through
    assert (write, read) == (OK, [(CANCELLED, ["TransactionConflict", "None"])])
    assert strict.refusals() == {"TransactGetItems": 1}


def test_requests_on_other_items_are_not_held_up(strict):
    dynamodb, held = client(strict.endpoint), key("held")
    others = [key("other") for _ in range(4)]
    # When a transaction holds one item, and writes and a transactional read of other items come
    _, meanwhile = during(
        lambda: dynamodb.transact_write_items(TransactItems=[put(held)]),
        lambda: dynamodb.transact_write_items(TransactItems=[put(others[0])]),
        lambda: dynamodb.put_item(TableName=SESSIONS_TABLE, Item=others[1]),
        lambda: dynamodb.update_item(**update(others[2])["Update"]),
        lambda: dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": SESSIONS_TABLE, "Key": others[3]}}]),
    )
    # Then they all go through
    assert meanwhile == [OK] * 4
    assert strict.refusals() == {}


def test_what_the_documentation_lists_no_conflict_for_goes_through(strict):
    dynamodb, written, held = client(strict.endpoint), key("written"), key("held")
    # When a transaction meets an ongoing single write of its item
    _, transaction = during(lambda: dynamodb.put_item(TableName=SESSIONS_TABLE, Item=written),
                            lambda: dynamodb.transact_write_items(TransactItems=[update(written)]))
    # And a BatchWriteItem, a GetItem and a Query meet an ongoing transaction of their item
    _, others = during(
        lambda: dynamodb.transact_write_items(TransactItems=[put(held)]),
        lambda: dynamodb.batch_write_item(RequestItems={SESSIONS_TABLE: [{"DeleteRequest": {"Key": held}}]}),
        lambda: dynamodb.get_item(TableName=SESSIONS_TABLE, Key=held),
        lambda: dynamodb.query(TableName=SESSIONS_TABLE, KeyConditionExpression="pk = :pk",
                               ExpressionAttributeValues={":pk": held["pk"]}),
    )
    # Then none is refused
    assert (transaction, others) == ([OK], [OK] * 3)
    assert strict.refusals() == {}


def test_one_request_after_another_never_conflicts(strict):
    dynamodb, item = client(strict.endpoint), key("serial")
    # When every kind of request on one item is sent after the previous one answered
    outcomes = [outcome(call) for call in (
        lambda: dynamodb.transact_write_items(TransactItems=[put(item)]),
        lambda: dynamodb.put_item(TableName=SESSIONS_TABLE, Item=item),
        lambda: dynamodb.transact_write_items(TransactItems=[update(item)]),
        lambda: dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": SESSIONS_TABLE, "Key": item}}]),
        lambda: dynamodb.update_item(**update(item)["Update"]),
        lambda: dynamodb.delete_item(TableName=SESSIONS_TABLE, Key=item),
    )]
    # Then none conflicts: a request releases its items when it answers
    assert outcomes == [OK] * 6
    assert strict.refusals() == {}


# Another process: its own botocore client, ready before the transaction starts, writes on a cue.
WRITER = """
import sys, json, botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, table, item = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
dynamodb = botocore.session.get_session().create_client(
    "dynamodb", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}))
dynamodb.describe_table(TableName=table)
print("ready", flush=True)
sys.stdin.readline()
try:
    dynamodb.put_item(TableName=table, Item=item)
    print("ok", flush=True)
except ClientError as error:
    print(error.response["Error"]["Code"], flush=True)
"""


def test_another_process_meets_the_items_this_one_holds(strict):
    dynamodb, held = client(strict.endpoint), key("held")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, strict.endpoint, SESSIONS_TABLE, json.dumps(held)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    answers = []

    def cue_the_writer():
        writer.stdin.write("\n")
        writer.stdin.flush()
        answers.append(writer.stdout.readline().strip())

    try:
        assert writer.stdout.readline() == "ready\n"
        # When another process writes the item while a transaction of this process holds it
        transaction, _ = during(lambda: dynamodb.transact_write_items(TransactItems=[put(held)]), cue_the_writer)
    finally:
        writer.kill()
        writer.wait()
    # Then its write fails as it would on DynamoDB, and any process can read the count
    assert (transaction, answers) == (OK, ["TransactionConflictException"])
    assert httpx.get(strict.endpoint + REFUSALS_PATH).json() == {"PutItem": 1}
