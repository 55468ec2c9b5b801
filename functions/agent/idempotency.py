"""Idempotent turns: a retried POST with the same Idempotency-Key gets the first answer back.

Our own conditional writes in the sessions table, not Powertools idempotency, because:
- the record lives in the session's own partition (sk IDEMPOTENCY#<sha256 of the key>), so deleting
  the session or the user (DELETE /me) erases the stored reply with the turns, one user's key can
  never meet another's, and there is no extra table, grant or TTL to deploy;
- the finished record is written in the same TransactWriteItems as the turn: a stored turn and its
  replay record exist together or not at all, so a retry can never store a second turn;
- a failure of the record must never fail the turn (it is a memory write like any other), while
  Powertools fails the request with IdempotencyPersistenceLayerError when its table fails.
A request without the header costs nothing: none of this runs.

The record has two states. `running`: claimed with a conditional PutItem before the turn starts;
a retry meanwhile gets 409. Requests with the same key are the only writers that ever meet on it:
a PutItem that finds the record held by the first request's finishing transaction fails with
TransactionConflict, which is also a 409. It expires after RUNNING_SECONDS, longer than the function
may run, so an expired claim means the first attempt died. `done`: stored with the turn, in its
transaction, on the condition that the claim is still this request's: erasure deletes the claim,
and the turn cannot land after it. Kept REPLAY_SECONDS; a retry gets the stored reply and the model
is not called. When the turn fails (memory read, model) or its append is suppressed, the claim is
released, so the client's retry runs the turn again. If the claim cannot be written for any other
reason, the turn runs anyway (logged as memory_write_suppressed): idempotency degrades to
at-least-once, the turn never fails for it.
"""

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from botocore.exceptions import BotoCoreError, ClientError

from agent.turn import TurnResult
from memory.dynamo import condition_failed
from memory.keys import IDEMPOTENCY_PREFIX, session_key
from memory.outcomes import WRITE_SUPPRESSED_EVENT
from memory.turns import Turn

# Printable ASCII without spaces: UUIDs, ULIDs, base64 tokens.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# The function times out after 25 s (infra/agent_function.py): a claim older than this is dead.
RUNNING_SECONDS = 60
REPLAY_SECONDS = 24 * 3600
RUNNING, DONE, ACCEPTED = "running", "done", "accepted"
# An asynchronous request is another request than a synchronous one with the same message: the same
# key may not stand for both.
ASYNC_REQUEST = "respond-async:"


class TurnInProgress(Exception):
    """The first request with this key is still running."""


class KeyReused(Exception):
    """The key was already used with another message on this session."""


@dataclass(frozen=True)
class Claim:
    table: str
    pk: str
    sk: str
    request: str  # sha256 of the request (its message, and whether async): the same key must come with the same
    token: str | None  # proves the running record is ours; None when it could not be written
    done_expires_at: int

    def record(self, result: TurnResult) -> dict:
        """The finished record, as a TransactItem to store with the turn."""
        item = {
            "pk": {"S": self.pk},
            "sk": {"S": self.sk},
            "state": {"S": DONE},
            "request": {"S": self.request},
            "turn_id": {"S": result.turn.turn_id},
            "created_at": {"S": result.turn.created_at},
            "reply": {"S": result.reply},
            "context_turns": {"N": str(result.context_turns)},
            "context_facts": {"N": str(result.context_facts)},
            "context_summary": {"BOOL": result.context_summary},
            "truncated": {"BOOL": result.truncated},
            "context_facts_omitted": {"N": str(result.context_facts_omitted)},
            "expires_at": {"N": str(self.done_expires_at)},
        }
        return self._put(item)

    def accepted(self, turn_id: str) -> dict:
        """The record of an accepted asynchronous turn: a retry gets the same turn id."""
        return self._put({"pk": {"S": self.pk}, "sk": {"S": self.sk}, "state": {"S": ACCEPTED},
                          "request": {"S": self.request}, "turn_id": {"S": turn_id},
                          "expires_at": {"N": str(self.done_expires_at)}})

    def _put(self, item: dict) -> dict:
        """A Put of the finished record over the claim, if the claim is still ours: erasure deletes
        it, and nothing of the request may land after that."""
        if not self.token:  # no claim was written: nothing to hold on to
            return {"Put": {"TableName": self.table, "Item": item}}
        return {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "#token = :token",
                        "ExpressionAttributeNames": {"#token": "token"},
                        "ExpressionAttributeValues": {":token": {"S": self.token}}}}


class Idempotency:
    def __init__(self, *, client, table_name: str, logger, clock=time.time):
        self._client = client
        self._table = table_name
        self._logger = logger
        self._clock = clock

    def turn(
        self, user_id: str, session_id: str, key: str, message: str, run: Callable[[Claim], TurnResult]
    ) -> TurnResult:
        """The stored result of the first turn with `key`, or run(claim) if there is none.

        Raises TurnInProgress (409) or KeyReused (422)."""
        claim = self._claim(user_id, session_id, key, message)
        if isinstance(claim, dict):
            return _replay(user_id, session_id, claim)
        result = None
        try:
            result = run(claim)
            return result
        finally:
            if result is None or result.write != "ok":
                self._release(claim, session_id)

    def accept(self, user_id: str, session_id: str, key: str, message: str, start: Callable[[], str]) -> str:
        """The id of the first asynchronous turn sent with `key`, or of the one start() accepts now:
        a retried asynchronous POST gets the same turn, never a second one. Raises TurnInProgress
        or KeyReused."""
        claim = self._claim(user_id, session_id, key, ASYNC_REQUEST + message)
        if isinstance(claim, dict):
            return claim["turn_id"]["S"]
        turn_id = None
        try:
            turn_id = start()
        finally:
            if turn_id is None:
                self._release(claim, session_id)
        try:
            self._client.put_item(**claim.accepted(turn_id)["Put"])
        except (ClientError, BotoCoreError) as error:  # a retry then starts another turn: at-least-once
            self._suppressed(session_id, error)
        return turn_id

    def _claim(self, user_id: str, session_id: str, key: str, request: str) -> Claim | dict:
        """Our claim on `key`, or the record of the request that holds it if that is finished."""
        now = int(self._clock())
        claim = Claim(
            table=self._table,
            pk=session_key(user_id, session_id),
            sk=IDEMPOTENCY_PREFIX + _sha256(key),
            request=_sha256(request),
            token=secrets.token_hex(16),
            done_expires_at=now + REPLAY_SECONDS,
        )
        put = {
            "TableName": self._table,
            "Item": {
                "pk": {"S": claim.pk},
                "sk": {"S": claim.sk},
                "state": {"S": RUNNING},
                "request": {"S": claim.request},
                "token": {"S": claim.token},
                "expires_at": {"N": str(now + RUNNING_SECONDS)},
            },
            # Expired records are absent, whether or not TTL has deleted them yet.
            "ConditionExpression": "attribute_not_exists(sk) OR expires_at <= :now",
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            self._client.put_item(**put)
        except ClientError as error:
            if condition_failed(error):
                return _finished(claim, error.response["Item"])
            if error.response["Error"]["Code"] == "TransactionConflictException":
                raise TurnInProgress() from None  # the first request is storing its turn right now
            self._suppressed(session_id, error)
            return replace(claim, token=None)
        except BotoCoreError as error:
            self._suppressed(session_id, error)
            return replace(claim, token=None)
        return claim

    def _release(self, claim: Claim, session_id: str) -> None:
        """Deletes the running record if it is still ours (not replaced by the turn's done record)."""
        if not claim.token:
            return
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": claim.pk}, "sk": {"S": claim.sk}},
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":token": {"S": claim.token}},
            )
        except (ClientError, BotoCoreError) as error:
            if not condition_failed(error):
                self._suppressed(session_id, error)

    def _suppressed(self, session_id: str, error: Exception) -> None:
        self._logger.warning(
            WRITE_SUPPRESSED_EVENT,
            extra={"session_id": session_id, "error": type(error).__name__, "record": "idempotency"},
        )


def _finished(claim: Claim, item: dict) -> dict:
    if item["request"]["S"] != claim.request:
        raise KeyReused()
    if item["state"]["S"] == RUNNING:
        raise TurnInProgress()
    return item


def _replay(user_id: str, session_id: str, item: dict) -> TurnResult:
    # A replay used no tokens: its usage stays zero, and its messages are in the stored turn.
    turn = Turn(user_id=user_id, session_id=session_id, turn_id=item["turn_id"]["S"], created_at=item["created_at"]["S"])
    return TurnResult(
        turn=turn,
        reply=item["reply"]["S"],
        context_turns=int(item["context_turns"]["N"]),
        context_facts=int(item["context_facts"]["N"]),
        context_summary=item["context_summary"]["BOOL"],
        # Records stored before facts were budgeted have none: every fact was sent then.
        context_facts_omitted=int(item.get("context_facts_omitted", {"N": "0"})["N"]),
        truncated=item.get("truncated", {}).get("BOOL", False),
        write="ok",
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
