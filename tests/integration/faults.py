"""Faults injected at the wire, for one botocore client at a time.

botocore's before-send hook answers instead of DynamoDB: an error response, an exception raised
where urllib3's would surface (connection reset, read timeout), or a BatchWriteItem that does only
part of its work. For the timeouts themselves, `unresponsive_endpoint` and `resetting_endpoint` are
real sockets that misbehave, so the client's own timeouts and retries are what bound the wait."""

import contextlib
import json
import socket
import struct
import threading

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError


class _Body:
    def __init__(self, payload: bytes):
        self.payload = payload

    def stream(self, **_):
        yield self.payload


def dynamodb_response(status: int, payload: dict) -> AWSResponse:
    body = json.dumps(payload).encode()
    return AWSResponse("https://dynamodb.local", status, {"x-amzn-requestid": "injected"}, _Body(body))


def dynamodb_error(status: int, error_type: str, **fields) -> AWSResponse:
    return dynamodb_response(
        status, {"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": "injected", **fields}
    )


THROTTLED = dynamodb_error(400, "ProvisionedThroughputExceededException")
SERVER_ERROR = dynamodb_error(500, "InternalServerError")
# What DynamoDB answers when two transactions touch the same item (here: the session's registry entry).
TRANSACTION_CONFLICT = dynamodb_error(
    400,
    "TransactionCanceledException",
    CancellationReasons=[{"Code": "None"}, {"Code": "TransactionConflict"}],
)


def connection_reset(request):
    """The peer closed the connection before answering (botocore's view of ECONNRESET)."""
    raise ConnectionClosedError(endpoint_url=request.url)


def read_timeout(request):
    """No answer within the client's read timeout."""
    raise ReadTimeoutError(endpoint_url=request.url)


def partial_batch(backdoor, *, processed: int):
    """A BatchWriteItem fault: the first `processed` requests of each call are done for real
    (through `backdoor`, a client without faults), the rest come back as UnprocessedItems."""

    def answer(request):
        batch = json.loads(request.body)["RequestItems"]
        (table, requests), = batch.items()
        if processed:
            backdoor.batch_write_item(RequestItems={table: requests[:processed]})
        return dynamodb_response(200, {"UnprocessedItems": {table: requests[processed:]}})

    return answer


@contextlib.contextmanager
def failing(client, operation: str, fault, *, table: str | None = None, times: int | None = None):
    """`operation` calls of `client` get `fault` (a response, or a function of the request that
    returns or raises one); only calls on `table` if given; only the first `times` if given.
    Yields the list of requests the fault answered."""
    attempts = []

    def answer(request, **_):
        if table and table not in _tables(json.loads(request.body)):
            return None
        if times is not None and len(attempts) >= times:
            return None
        attempts.append(request)
        return fault(request) if callable(fault) else fault

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register(event, answer)
    try:
        yield attempts
    finally:
        client.meta.events.unregister(event, answer)


@contextlib.contextmanager
def hanging(client, operation: str, url: str, *, when=lambda body: True):
    """`operation` calls of `client` whose body satisfies `when` are sent to `url` instead, a socket
    that never answers (`unresponsive_endpoint`): only the client's own timeouts and attempts end them."""

    def redirect(request, **_):
        if when(request.body):
            request.url = url

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register(event, redirect)
    try:
        yield
    finally:
        client.meta.events.unregister(event, redirect)


def _tables(body: dict) -> set[str]:
    """The tables a request touches: its own, or its transaction items'."""
    items = body.get("TransactItems", [])
    return {body.get("TableName"), *(action["TableName"] for item in items for action in item.values())}


@contextlib.contextmanager
def recording(client):
    """Yields the list of DynamoDB operations `client` sends while the block runs."""
    operations = []

    def record(request, event_name, **_):
        operations.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send.dynamodb", record)
    try:
        yield operations
    finally:
        client.meta.events.unregister("before-send.dynamodb", record)


@contextlib.contextmanager
def _misbehaving_endpoint(on_request):
    """A TCP server on 127.0.0.1 that reads each request and hands the socket to `on_request`."""
    listener = socket.create_server(("127.0.0.1", 0))
    open_sockets = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            open_sockets.append(connection)
            connection.recv(65536)
            on_request(connection)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in open_sockets:
            connection.close()


def unresponsive_endpoint():
    """Accepts the connection and the request, then never answers."""
    return _misbehaving_endpoint(lambda connection: None)


def resetting_endpoint():
    """Reads the request, then resets the connection (RST, not a clean close)."""

    def reset(connection):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()

    return _misbehaving_endpoint(reset)
