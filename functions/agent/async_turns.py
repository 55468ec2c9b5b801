"""Asynchronous turns, for work longer than a synchronous request can carry (agent.budget).

`POST /sessions/{id}/messages` with `Prefer: respond-async` records the turn as running (a status item
in the session's partition, memory.turn_status) and hands it to a worker, then answers 202 at once;
`GET /sessions/{id}/turns/{turn_id}` reads the status: the reply so far, then the turn's answer or
its failure, told as the synchronous path would tell it (agent.failures).

Deployed, the worker is its own Lambda function (agent.worker), invoked asynchronously, not fed by
an SQS queue: the invocation is one call from the API Lambda and Lambda keeps its own queue, with
retries, a maximum event age and an on-failure destination (the dead-letter queue the alarm
watches). SQS would add a queue to poll, batches of one and a visibility timeout to keep above the
worker's five minutes, for nothing this needs: turns are not batched, and their rate is already
capped by the API's throttle. `make dev` runs the worker function behind a local Invoke API
(local/lambda_service.py); without WORKER_FUNCTION_NAME (a test's handler in its own process), a
thread of the process that accepted the turn runs the same code.

Exactly once, whatever the delivery: the worker claims the status with a conditional write before
it calls the model, and a second delivery finds it claimed and does nothing. The `done` status is
written in the same transaction as the turn (agent.idempotency's design), so a stored turn and a
done status exist together or not at all. A worker whose environment dies fails its invocation:
Lambda retries it with the same request id, and the retry takes the claim back and runs the turn
again. A worker that never comes back leaves its claim running past the status's deadline, which
GET then reports as failed: never running for ever.

Erasure stops a running turn: the status is erased with its session, so the worker's next progress
write fails its condition, the stream is closed (AnswerStopped) and nothing is stored; a worker
that starts after the erasure finds no status. Either is logged `turn_erased`, never as a
suppressed write: nothing failed.
"""

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from agent import observation
from agent.budget import (ASYNC_TURN_SECONDS, MEMORY_WRITE_SECONDS, OVERHEAD_SECONDS, PROGRESS_GROWTH,
                          PROGRESS_INTERVAL_SECONDS, PROGRESS_SMALL_CHARS)
from agent.providers import AnswerStopped, Model
from agent.turn import TurnResult, run_turn
from memory.errors import Erased
from memory.outcomes import WRITE_SUPPRESSED_EVENT
from memory.resilient import ResilientMemory
from memory.turn_status import DONE, FAILED, RUNNING, TurnStatus, TurnStatusStore
from memory.turns import new_turn_id

RESPOND_ASYNC = "respond-async"
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"?')  # RFC 9110 quoted-string (an unclosed one runs to the end)
TIMED_OUT = {"error": "turn_timed_out", "message": "the turn did not finish in time; send it again"}
WORKER_UNAVAILABLE = {"error": "worker_unavailable", "message": "the turn could not be started; retry later"}
# `make dev` and tests: turns running at once in one local process (a Lambda worker runs one each).
LOCAL_WORKERS = 8


class WorkerUnavailable(Exception):
    """The turn was recorded but could not be handed to a worker."""


@dataclass(frozen=True)
class Job:
    """What the worker is sent: keys only. The message stays in the status item, so no user text
    travels through Lambda's event queue or lands in the dead-letter queue."""

    user_id: str
    session_id: str
    turn_id: str


def wants_async(prefer: str | None) -> bool:
    """RFC 7240: `Prefer: respond-async`, possibly among other preferences, which are ignored
    whatever they are and however long (section 2: a server MUST ignore a preference it does not
    support). A quoted value is a value: no comma or semicolon in it starts a preference."""
    if not prefer:
        return False
    unquoted = _QUOTED.sub('""', prefer)
    return any(p.split(";")[0].split("=")[0].strip().lower() == RESPOND_ASYNC for p in unquoted.split(","))


def accept(*, memory: ResilientMemory, statuses: TurnStatusStore, dispatch: Callable[[Job], None], user_id: str,
           session_id: str, message: str, clock=time.time) -> str:
    """Records the turn as running and dispatches it; returns its id. Raises MemoryUnavailable when the
    status cannot be written (no turn is started), Erased when DELETE /me ran meanwhile,
    WorkerUnavailable when no worker could be asked."""
    now = clock()
    job = Job(user_id, session_id, new_turn_id(now))
    fence = memory.registry.open(user_id, session_id)
    try:
        statuses.start(user_id, session_id, job.turn_id, message, deadline=int(now + ASYNC_TURN_SECONDS), fence=fence)
    except Erased:
        memory.registry.release(user_id, session_id, fence)
        raise
    try:
        dispatch(job)
    except Exception as error:
        try:  # tell it now rather than at the deadline; if this fails too, the deadline tells it
            statuses.finish(user_id, session_id, job.turn_id, None, error=WORKER_UNAVAILABLE)
        except Exception:
            pass
        raise WorkerUnavailable(type(error).__name__) from error
    return job.turn_id


def view(session_id: str, status: TurnStatus, *, now: float) -> dict:
    """GET /sessions/{id}/turns/{turn_id}: a running turn past its deadline is a failed one."""
    answer = {"session_id": session_id, "turn_id": status.turn_id}
    if status.status == DONE:
        return {**answer, "status": DONE, **status.answer}
    if status.status == RUNNING and now < status.deadline:
        return {**answer, "status": RUNNING, "reply": status.reply}
    return {**answer, "status": FAILED, "reply": status.reply, **(status.error or TIMED_OUT)}


@dataclass(frozen=True)
class _Finish:
    """The `done` status, stored in the same transaction as the turn (agent.turn.Record)."""

    statuses: TurnStatusStore
    job: Job
    token: str

    def record(self, result: TurnResult) -> dict:
        return self.statuses.finish_item(*asdict(self.job).values(), self.token, answer=result.answer())


class _Progress:
    """on_text for the model: writes the reply so far back to the status, at most once per interval,
    and less often as it grows (each write costs a write unit per KB of the whole reply: writing a
    long reply every second would cost quadratically). Best effort: a failed write costs the
    client a fresher view, never the turn. A write refused because the turn is no longer this
    worker's (erased) stops the answer."""

    def __init__(self, statuses: TurnStatusStore, job: Job, token: str, logger):
        self._statuses, self._job, self._token, self._logger = statuses, job, token, logger
        self._text: list[str] = []
        self._length = self._written = 0
        self._written_at = float("-inf")  # the first text is written at once

    def __call__(self, delta: str) -> None:
        self._text.append(delta)
        self._length += len(delta)
        if not progress_due(self._length, self._written, time.monotonic() - self._written_at):
            return
        self._written_at, self._written = time.monotonic(), self._length
        try:
            mine = self._statuses.progress(*asdict(self._job).values(), self._token, "".join(self._text))
        except Exception as error:
            self._logger.warning("turn_progress_suppressed", extra={"turn_id": self._job.turn_id,
                                                                     "error": type(error).__name__})
            return
        if not mine:
            raise AnswerStopped()


def progress_due(length: int, written: int, since_write: float) -> bool:
    """Once per interval while the reply is small; past PROGRESS_SMALL_CHARS only when it grew by
    PROGRESS_GROWTH since the last write: the writes' total size stays a small multiple of the reply."""
    if since_write < PROGRESS_INTERVAL_SECONDS:
        return False
    return length <= PROGRESS_SMALL_CHARS or length >= written * PROGRESS_GROWTH


def work(job: Job, *, memory: ResilientMemory, model: Model, statuses: TurnStatusStore, logger,
         metrics=observation.metrics, clock=time.time, invocation: str | None = None) -> None:
    """Runs one accepted turn, once. The memory rules are the synchronous path's: the read fails fast
    (the turn fails, memory_unavailable), the turn's append is best effort (memory_write_suppressed).
    It is observed as a synchronous turn is (agent.observation), into `metrics`.
    `invocation`: the Lambda request id, which Lambda's retries of a failed invocation keep (AWS:
    https://repost.aws/knowledge-center/lambda-function-duplicate-invocations): a retry after the
    worker's environment died takes the turn over, instead of leaving it running to its deadline; a
    duplicate delivery (another request id) finds it claimed."""
    keys = asdict(job).values()
    status = statuses.get(*keys)
    token = invocation or secrets.token_hex(16)
    if status is None or not statuses.claim(*keys, token):
        # Already claimed (a second delivery), finished, past its deadline, or erased.
        logger.info("async_turn_skipped", extra={"turn_id": job.turn_id})
        return
    # Stop in time to store the turn and the status before the status's deadline.
    deadline = time.monotonic() + (status.deadline - clock()) - MEMORY_WRITE_SECONDS - OVERHEAD_SECONDS
    started = time.perf_counter()
    try:
        result = run_turn(memory=memory, model=model, user_id=job.user_id, session_id=job.session_id,
                          message=status.message, records=(_Finish(statuses, job, token),), deadline=deadline,
                          on_text=_Progress(statuses, job, token, logger), turn_id=job.turn_id,
                          generation=status.generation)
    except (Erased, AnswerStopped):
        logger.info("turn_erased", extra={"turn_id": job.turn_id})
        return
    except Exception as error:
        failure = observation.turn_failed(error, logger=logger, turn_id=job.turn_id)
        _finish_best_effort(statuses, job, token, logger, error=failure.body())
        return
    observation.turn_finished(result, started=started, metrics=metrics)
    if result.write != "ok":  # the transaction that held the done status failed with the turn
        _finish_best_effort(statuses, job, token, logger, answer=result.answer())


def _finish_best_effort(statuses: TurnStatusStore, job: Job, token: str, logger, **outcome) -> None:
    """If even this fails, the status's deadline reports the turn as failed."""
    try:
        statuses.finish(*asdict(job).values(), token, **outcome)
    except Exception as error:
        logger.warning(WRITE_SUPPRESSED_EVENT, extra={"session_id": job.session_id, "record": "turn_status",
                                                         "error": type(error).__name__})


def dispatcher(invoke_worker: Callable[[dict], None] | None, *, run: Callable[[Job], None],
               logger) -> Callable[[Job], None]:
    """How accepted turns reach a worker: the worker Lambda (`invoke_worker`, agent.wiring), or
    (locally, none) `run` on a thread of this process."""
    if invoke_worker:
        return lambda job: invoke_worker(asdict(job))
    pool = ThreadPoolExecutor(max_workers=LOCAL_WORKERS, thread_name_prefix="async-turn")

    def in_thread(job: Job) -> None:
        def guarded() -> None:
            try:
                run(job)
            except Exception:  # as Lambda would log a failed invocation
                logger.exception("async_turn_crashed", extra={"turn_id": job.turn_id})

        pool.submit(guarded)

    return in_thread
