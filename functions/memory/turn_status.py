"""The status of asynchronous turns: one item per turn in the session's own partition
(sk ASYNC#<turn id>), stamped with the session's generation, so erasing the session or the user
erases it, and one user's key can never reach another's.

A status is `running` (with the reply written so far), then `done` (with the turn's answer) or
`failed` (with the error). Its `deadline` (epoch seconds) is when a running turn counts as failed:
the worker stops before it, so only a dead worker leaves a turn running past it. The worker that
runs the turn first claims it (`worker`, a random token); every later write is conditional on that
claim and on the item still existing, so a second delivery of the same turn never runs it, and a
worker whose turn was erased learns it at its next write (a progress write, about once a second)."""

import json
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from .conversation import ConversationStore
from .dynamo import POOL, condition_failed, translate_errors
from .errors import Erased
from .keys import STATUS_PREFIX, item_key
from .registry import Fence, generation_of

RUNNING, DONE, FAILED = "running", "done", "failed"
# A client has a day to collect the answer; the turn itself stays in the history for SESSION_TTL_DAYS.
STATUS_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class TurnStatus:
    turn_id: str
    status: str
    message: str
    reply: str
    deadline: int
    generation: str  # the session's generation the turn was accepted in
    worker: str | None = None
    answer: dict | None = None  # done: the turn's answer, as the synchronous path gives it
    error: dict | None = None  # failed: {"error": code, "message": text}


class TurnStatusStore:
    def __init__(self, *, client, table_name: str, conversations: ConversationStore, clock=time.time):
        self._client = client
        self._table = table_name
        self._registry = conversations.registry
        self._clock = clock

    @translate_errors
    def start(self, user_id: str, session_id: str, turn_id: str, message: str, *, deadline: int,
              fence: Fence) -> None:
        """Records a new running turn of the session `fence` was read from (Registry.open), then
        confirms the fence. Raises Erased, having removed it, if the session was erased meanwhile."""
        now = self._clock()
        item = {
            **_key(user_id, session_id, turn_id),
            "gen": {"S": fence.generation},
            "status": {"S": RUNNING},
            "message": {"S": message},
            "reply": {"S": ""},
            "deadline": {"N": str(deadline)},
            "expires_at": {"N": str(int(now) + STATUS_TTL_SECONDS)},
        }
        self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        try:
            self._registry.check(user_id, session_id, fence)
        except Erased:
            self._client.delete_item(TableName=self._table, Key=_key(user_id, session_id, turn_id))
            raise

    @translate_errors
    def get(self, user_id: str, session_id: str, turn_id: str) -> TurnStatus | None:
        """The status if its session is live and it is of that session's generation."""
        fence = POOL.submit(self._registry.fence, user_id, session_id)
        item = self._client.get_item(
            TableName=self._table, Key=_key(user_id, session_id, turn_id), ConsistentRead=True
        ).get("Item")
        live = fence.result()
        if not item or int(item["expires_at"]["N"]) <= self._clock() or not live or generation_of(item) != live.generation:
            return None
        return TurnStatus(
            turn_id=turn_id,
            status=item["status"]["S"],
            message=item["message"]["S"],
            reply=item.get("reply", {}).get("S", ""),
            deadline=int(item["deadline"]["N"]),
            generation=generation_of(item),
            worker=item.get("worker", {}).get("S"),
            answer=json.loads(item["answer"]["S"]) if "answer" in item else None,
            error=json.loads(item["error"]["S"]) if "error" in item else None,
        )

    @translate_errors
    def claim(self, user_id: str, session_id: str, turn_id: str, token: str) -> bool:
        """Whether this worker now owns the turn: it is running, before its deadline, and unclaimed or
        claimed with this same token (Lambda's retry of an invocation whose environment failed)."""
        return self._write(self._update(
            user_id, session_id, turn_id, "SET worker = :token",
            "#status = :running AND (attribute_not_exists(worker) OR worker = :token) AND deadline > :now",
            {":token": {"S": token}, ":running": {"S": RUNNING}, ":now": {"N": str(int(self._clock()))}},
        ))

    @translate_errors
    def progress(self, user_id: str, session_id: str, turn_id: str, token: str, reply: str) -> bool:
        """False when the turn is no longer this worker's to run: erased, or finished."""
        return self._write(self._update(
            user_id, session_id, turn_id, "SET reply = :reply", "worker = :token AND #status = :running",
            {":reply": {"S": reply}, ":token": {"S": token}, ":running": {"S": RUNNING}},
        ))

    def finish_item(self, user_id: str, session_id: str, turn_id: str, token: str | None, *,
                    answer: dict | None = None, error: dict | None = None) -> dict:
        """The TransactItem that ends the turn, `done` with its answer or `failed` with its error, if
        it is still running and claimed by `token` (None: by no worker, when dispatching failed)."""
        owner = "worker = :token" if token else "attribute_not_exists(worker)"
        field, status = ("answer", DONE) if answer is not None else ("error", FAILED)
        values = {":status": {"S": status}, ":value": {"S": json.dumps(answer if answer is not None else error,
                                                                     ensure_ascii=False)},
                  ":running": {"S": RUNNING}}
        if token:
            values[":token"] = {"S": token}
        return self._update(user_id, session_id, turn_id, "SET #status = :status, #outcome = :value REMOVE reply",
                            f"{owner} AND #status = :running", values, {"#outcome": field})

    @translate_errors
    def finish(self, user_id: str, session_id: str, turn_id: str, token: str | None, *,
               answer: dict | None = None, error: dict | None = None) -> bool:
        return self._write(self.finish_item(user_id, session_id, turn_id, token, answer=answer, error=error))

    def _write(self, item: dict) -> bool:
        """False if a condition failed (claimed by another worker, already finished, erased)."""
        try:
            self._client.update_item(**item["Update"])
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def _update(self, user_id: str, session_id: str, turn_id: str, expression: str, condition: str,
                values: dict, names: dict | None = None) -> dict:
        return {"Update": {
            "TableName": self._table,
            "Key": _key(user_id, session_id, turn_id),
            "UpdateExpression": expression,
            # attribute_exists: an update never recreates an item that erasure deleted.
            "ConditionExpression": f"attribute_exists(sk) AND {condition}",
            "ExpressionAttributeNames": {"#status": "status", **(names or {})},  # both are reserved words
            "ExpressionAttributeValues": values,
        }}


def _key(user_id: str, session_id: str, turn_id: str) -> dict:
    return item_key(user_id, session_id, STATUS_PREFIX + turn_id)
