"""DynamoDB Local, as strict about transaction conflicts as DynamoDB.

DynamoDB Local applies transactions one after another and never cancels one for a conflict. DynamoDB
does, by these rules ("Transaction conflict handling in DynamoDB",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling):

- a PutItem, UpdateItem or DeleteItem on an item that an ongoing TransactWriteItems includes fails
  with TransactionConflictException;
- a TransactWriteItems with an item that another ongoing TransactWriteItems includes is cancelled:
  TransactionCanceledException, one CancellationReason per item in request order, TransactionConflict
  on the conflicting ones, None on the others;
- a TransactGetItems with an item that an ongoing TransactWriteItems, BatchWriteItem, PutItem,
  UpdateItem or DeleteItem includes is cancelled the same way.

The page names no other conflict: a TransactWriteItems meeting an ongoing single write, and a
BatchWriteItem meeting a transaction, go through (the API declares no TransactionConflictException
for BatchWriteItem), and so they do here.

This is an HTTP proxy in front of DynamoDB Local that applies those rules. A write holds its items
from the moment it arrives until it answers, and it answers no sooner than its hold time after it
arrived: a transaction takes tens of milliseconds on the real service (STRICT_DYNAMODB_TRANSACTION_MS,
20), a single write a few (STRICT_DYNAMODB_WRITE_MS, 5). Clients reach it through
AWS_ENDPOINT_URL_DYNAMODB, so one proxy judges the writes of every process that uses it. Everything
else (reads, PartiQL, the control plane) is forwarded untouched. What it refused, per operation, is
`refusals()` in its own process and GET /strict-dynamodb/refusals (JSON) from any other."""

import collections
import contextlib
import http.client
import json
import os
import threading
import time
import urllib.parse
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRANSACTION_MS = float(os.environ.get("STRICT_DYNAMODB_TRANSACTION_MS", "20"))
WRITE_MS = float(os.environ.get("STRICT_DYNAMODB_WRITE_MS", "5"))
TARGET_PREFIX = "DynamoDB_20120810."
ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"
ONGOING = "Transaction is ongoing for the item"
REFUSALS_PATH = "/strict-dynamodb/refusals"
SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
# Who holds an item, and which holders each operation is refused by.
TRANSACTION, WRITE = "transaction", "write"
HOLDER = {"TransactWriteItems": TRANSACTION, "BatchWriteItem": WRITE, **dict.fromkeys(SINGLE_WRITES, WRITE)}
REFUSED_BY = {"TransactWriteItems": {TRANSACTION}, "TransactGetItems": {TRANSACTION, WRITE},
              **dict.fromkeys(SINGLE_WRITES, {TRANSACTION})}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class StrictDynamoDB:
    """The proxy: `endpoint` to point clients at, `refusals()` to count what it refused."""

    def __init__(self, upstream: str, *, transaction_seconds: float, write_seconds: float):
        self.upstream = upstream
        self._hold_seconds = {TRANSACTION: transaction_seconds, WRITE: write_seconds}
        self._lock = threading.Lock()
        self._holds: dict[tuple, collections.Counter] = {}
        self._refused: collections.Counter = collections.Counter()
        self._key_names: dict[str, list[str]] = {}
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.strict = self
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def refusals(self) -> collections.Counter:
        """How many requests it refused so far, per operation (PutItem, TransactWriteItems, ...)."""
        with self._lock:
            return collections.Counter(self._refused)

    def answer(self, headers, body: bytes, forward) -> tuple[int, list, bytes]:
        operation = headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
        if operation == "DeleteTable":  # a table created again under that name may have other keys
            self._key_names.pop(json.loads(body).get("TableName"), None)
        if operation not in HOLDER and operation not in REFUSED_BY:
            return forward(body, headers)
        items = self._items(operation, json.loads(body), headers, forward)
        if items is None:  # not a valid request: DynamoDB Local says why
            return forward(body, headers)
        arrived = time.monotonic()
        holder = HOLDER.get(operation)
        conflicts = self._admit(operation, items, holder)
        if any(conflicts):
            return _refusal(operation, conflicts)
        try:
            answer = forward(body, headers)
            if holder:
                time.sleep(max(0.0, arrived + self._hold_seconds[holder] - time.monotonic()))
            return answer
        finally:
            self._release(items, holder)

    def _admit(self, operation: str, items: list[tuple], holder: str | None) -> list[bool]:
        """Which items are held against `operation`; if none, `holder` now holds them all."""
        with self._lock:
            conflicts = [any(self._holds.get(item, {}).get(kind) for kind in REFUSED_BY.get(operation, ()))
                         for item in items]
            if any(conflicts):
                self._refused[operation] += 1
            elif holder:
                for item in items:
                    self._holds.setdefault(item, collections.Counter())[holder] += 1
            return conflicts

    def _release(self, items: list[tuple], holder: str | None) -> None:
        if not holder:
            return
        with self._lock:
            for item in items:
                self._holds[item][holder] -= 1
                if not self._holds[item].total():
                    del self._holds[item]

    def _items(self, operation: str, request: dict, headers, forward) -> list[tuple] | None:
        """(table, key) of every item the request touches, in request order."""
        if operation in SINGLE_WRITES:
            targets = [(request.get("TableName"), request.get("Key") or request.get("Item"))]
        elif operation == "BatchWriteItem":
            targets = [(table, write.get("PutRequest", {}).get("Item") or write.get("DeleteRequest", {}).get("Key"))
                       for table, writes in request.get("RequestItems", {}).items() for write in writes]
        else:  # TransactWriteItems (Put, Update, Delete, ConditionCheck) and TransactGetItems (Get)
            actions = [next(iter(action.values()), {}) for action in request.get("TransactItems", [])]
            targets = [(action.get("TableName"), action.get("Key") or action.get("Item")) for action in actions]
        items = []
        for table, attributes in targets:
            names = self._key_schema(table, headers, forward)
            if not names or not attributes or not all(name in attributes for name in names):
                return None
            items.append((table, json.dumps({name: attributes[name] for name in names}, sort_keys=True)))
        return items

    def _key_schema(self, table: str | None, headers, forward) -> list[str] | None:
        """The table's key attributes, from DescribeTable upstream, once per table."""
        if table not in self._key_names:
            body = json.dumps({"TableName": table}).encode()
            described = {name: value for name, value in headers.items()
                         if name.lower() not in ("x-amz-target", "content-length")}
            described |= {"X-Amz-Target": TARGET_PREFIX + "DescribeTable", "Content-Length": str(len(body))}
            status, _, answer = forward(body, described)
            if status != 200:
                return None
            self._key_names[table] = [k["AttributeName"] for k in json.loads(answer)["Table"]["KeySchema"]]
        return self._key_names[table]


def _refusal(operation: str, conflicts: list[bool]) -> tuple[int, list, bytes]:
    """The error DynamoDB answers, in its wire shape (botocore parses it into error.response)."""
    if operation in SINGLE_WRITES:
        return _error("TransactionConflictException", {"message": ONGOING})
    codes = ["TransactionConflict" if conflict else "None" for conflict in conflicts]
    reasons = [{"Code": "TransactionConflict", "Message": ONGOING} if conflict else {"Code": "None"}
               for conflict in conflicts]
    return _error("TransactionCanceledException", {
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{', '.join(codes)}]",
        "CancellationReasons": reasons,
    })


def _error(error_type: str, fields: dict) -> tuple[int, list, bytes]:
    body = json.dumps({"__type": ERROR_TYPE_PREFIX + error_type, **fields}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", uuid.uuid4().hex),
               ("x-amz-crc32", str(zlib.crc32(body)))]
    return 400, headers, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's backlog of 5 resets connections under a burst of clients.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    """One client connection (kept alive), with its own kept-alive connection to DynamoDB Local."""

    protocol_version = "HTTP/1.1"
    # The head and the body of an answer leave in two writes: with Nagle's algorithm the body waits
    # for the client's delayed ACK of the head, 40 ms on every request.
    disable_nagle_algorithm = True
    _upstream: http.client.HTTPConnection | None = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(*self.server.strict.answer(self.headers, body, self._forward))

    def do_GET(self):
        if self.path == REFUSALS_PATH:
            body = json.dumps(self.server.strict.refusals()).encode()
            self._send(200, [("Content-Type", "application/json")], body)
        else:
            self._send(*self._forward(b"", self.headers))

    def _forward(self, body: bytes, headers) -> tuple[int, list, bytes]:
        # A kept-alive connection DynamoDB Local closed while idle fails on first use: one new try.
        for attempt in range(2):
            if self._upstream is None:
                url = urllib.parse.urlsplit(self.server.strict.upstream)
                self._upstream = http.client.HTTPConnection(url.hostname, url.port)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=dict(headers.items()))
                response = self._upstream.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise

    def _send(self, status: int, headers: list, body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def finish(self):
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def strict_dynamodb(upstream: str, *, transaction_seconds: float = TRANSACTION_MS / 1000,
                    write_seconds: float = WRITE_MS / 1000):
    """Yields a StrictDynamoDB in front of `upstream`, serving on a thread of this process."""
    proxy = StrictDynamoDB(upstream, transaction_seconds=transaction_seconds, write_seconds=write_seconds)
    threading.Thread(target=proxy.server.serve_forever, daemon=True, name="strict-dynamodb").start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
