"""The API Lambda: routing, validation and identity only; the turn itself lives in agent.turn."""

import base64
import binascii
import json
import re
import time
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.shared.json_encoder import Encoder

from agent import async_turns, observation, snapstart, wiring
from agent.api import (HISTORY_PAGE_MAX, MAX_BODY_BYTES, SESSION_ID_PATTERN, SESSIONS_PAGE_DEFAULT, SESSIONS_PAGE_MAX,
                       TURN_ID_PATTERN, ErrorBody, FactRequest, TurnAccepted, TurnAnswer, TurnRequest, TurnState,
                       json_object)
from agent.budget import SYNC_MODEL_SECONDS
from agent.failures import TurnFailure
from agent.idempotency import IDEMPOTENCY_KEY_PATTERN, Idempotency, KeyReused, TurnInProgress
from agent.observability import logger, metrics, thread_metrics
from agent.providers import Model, configured_model
from agent.tracing import tracer
from agent.turn import run_turn
from memory.errors import Erased, InvalidToken, SessionNotFound
from memory.long_term import FACT_KEY, FACT_KEY_MAX_CHARS, FACT_KEY_RULE, VALUE_RULE, FactsLimitReached, InvalidFact

# OpenID Connect's `sub`: at most 255 ASCII characters. Anything else could not key the tables
# (DynamoDB partition keys stop at 2 KB), so it is no identity at all.
USER_ID = re.compile(r"[\x20-\x7e]{1,255}")
ENTERED = "entered"  # app.context: time.monotonic() when the request entered the handler

services = wiring.services(logger=logger)
settings, dynamodb, memory, statuses = services.settings, services.dynamodb, services.memory, services.statuses
idempotency = Idempotency(client=dynamodb, table_name=settings.sessions_table, logger=logger)


def work_here(job: async_turns.Job) -> None:
    """An asynchronous turn on a thread of this process, when there is no worker Lambda."""
    turn_metrics = thread_metrics()
    async_turns.work(job, memory=memory, model=model(), statuses=statuses, logger=logger, metrics=turn_metrics)
    turn_metrics.flush_metrics()


dispatch = async_turns.dispatcher(services.worker_invoker(), run=work_here, logger=logger)


def _json(body) -> str:
    """UTF-8 JSON: a reply in any language reads as itself in curl, not as \\uXXXX escapes."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), cls=Encoder)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate (sent as "\\ud800") has no UTF-8: escape that body
        return json.dumps(body, separators=(",", ":"), cls=Encoder)
    return text


app = APIGatewayHttpResolver(enable_validation=True, serializer=_json, json_body_deserializer=json_object)
# The document says what API Gateway enforces: every route but /health (and this document) needs
# the Cognito JWT. The stack deploys agent/routes.py, which a test holds to this document.
app.configure_openapi(
    title="Agent with durable memory",
    version="1.0.0",
    # A plain dict, validated into Powertools' OpenAPI models only when the document is built: importing
    # those models costs every cold start ~100 ms (benchmarks/cold_start.py) for the one route that needs them.
    security_schemes={"jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                              "description": "a Cognito id token; claim sub is the user"}},
)
JWT = [{"jwt": []}]


S = HTTPStatus
# API Gateway answers these itself, on any route: stage throttling, then its size quotas.
GATEWAY = (S.TOO_MANY_REQUESTS, S.REQUEST_ENTITY_TOO_LARGE, S.REQUEST_HEADER_FIELDS_TOO_LARGE)


def _answers(*statuses: HTTPStatus, success: HTTPStatus = S.OK) -> dict:
    """The OpenAPI responses of a route: its success, and every error it can answer (ErrorBody)."""
    error = {"application/json": {"model": ErrorBody}}
    documented = {int(success): {"description": success.phrase} | ({"content": {}} if success == S.NO_CONTENT else {})}
    return documented | {int(s): {"description": s.phrase, "content": error} for s in (*GATEWAY, *statuses)}

# Every protected route: no or a bad token (401), a validation error (422), a memory read failure (503).
PROTECTED = (S.UNAUTHORIZED, S.UNPROCESSABLE_ENTITY, S.SERVICE_UNAVAILABLE)

SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]
FactKey = Annotated[str, Path(pattern=f"^{FACT_KEY}$", max_length=FACT_KEY_MAX_CHARS,  # the fact store's own rule
                              description=f"the fact's name: {FACT_KEY_RULE}")]
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key", pattern=IDEMPOTENCY_KEY_PATTERN)]
# No length cap: preferences the API does not implement are ignored, however long (agent.async_turns).
Prefer = Annotated[str | None, Header(alias="prefer", description=(
    "`respond-async`: answer 202 at once, run the turn in a worker; any other preference is ignored"))]
TurnId = Annotated[str, Path(pattern=TURN_ID_PATTERN)]


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def model() -> Model:
    """Built on first use, so routes without a turn never import a model SDK."""
    return configured_model(settings)


def caller() -> str:
    """The authorizer's JWT claim `sub`: identity never comes from the body."""
    claims = app.current_event.request_context.authorizer.jwt_claim or {}
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID.fullmatch(sub):
        raise ApiError(HTTPStatus.UNAUTHORIZED, "unauthorized", "no identity on the request")
    return sub


# Powertools documents a 422 on every operation when validation is on: here it is the ErrorBody too.
@app.get("/health", responses=_answers(S.UNPROCESSABLE_ENTITY))
def health() -> dict:
    return {"status": "ok"}


@app.get("/openapi.json", include_in_schema=False)
def openapi():
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(),
    )


@app.post("/sessions/<session_id>/messages", security=JWT, responses=_answers(
    *PROTECTED, S.BAD_REQUEST, S.CONFLICT, S.REQUEST_ENTITY_TOO_LARGE, S.BAD_GATEWAY) | {
    200: {"description": "the turn's answer", "content": {"application/json": {"model": TurnAnswer}}},
    202: {"description": "with `Prefer: respond-async`: the turn runs in a worker; poll `Location`",
          "content": {"application/json": {"model": TurnAccepted}},
          "headers": {"Location": {"description": "/sessions/{session_id}/turns/{turn_id}", "schema": {"type": "string"}}}},
})
@tracer.capture_method
def post_message(session_id: SessionId, request: TurnRequest, idempotency_key: IdempotencyKey = None,
                 prefer: Prefer = None) -> dict:
    user_id = caller()
    if async_turns.wants_async(prefer):
        return _accept_async(user_id, session_id, request.message, idempotency_key)
    started = time.perf_counter()
    # From the request's entry, so the idempotency claim and the API key's read are inside the budget.
    deadline = app.context[ENTERED] + SYNC_MODEL_SECONDS

    def turn(claim=None):
        return run_turn(memory=memory, model=model(), user_id=user_id, session_id=session_id,
                        message=request.message, records=(claim,) if claim else (), deadline=deadline)

    result = idempotency.turn(user_id, session_id, idempotency_key, request.message, turn) if idempotency_key else turn()
    observation.turn_finished(result, started=started)
    return {"session_id": session_id, **result.answer()}


def _accept_async(user_id: str, session_id: str, message: str, idempotency_key: str | None) -> Response:
    def start() -> str:
        return async_turns.accept(memory=memory, statuses=statuses, dispatch=dispatch, user_id=user_id,
                                  session_id=session_id, message=message)

    turn_id = idempotency.accept(user_id, session_id, idempotency_key, message, start) if idempotency_key else start()
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body={"session_id": session_id, "turn_id": turn_id, "status": "running"},
        headers={"Location": f"/sessions/{session_id}/turns/{turn_id}", "Preference-Applied": "respond-async"},
    )


@app.get("/sessions/<session_id>/turns/<turn_id>", security=JWT, responses=_answers(*PROTECTED, S.NOT_FOUND) | {
    200: {"description": "running (the reply so far), done (the turn's answer) or failed (error, message)",
          "content": {"application/json": {"model": TurnState}}},
})
def get_turn(session_id: SessionId, turn_id: TurnId) -> dict:
    status = statuses.get(caller(), session_id, turn_id)
    if status is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such turn")
    return async_turns.view(session_id, status, now=time.time())


@app.get("/sessions/<session_id>/messages", security=JWT, responses=_answers(*PROTECTED, S.BAD_REQUEST, S.NOT_FOUND))
def get_messages(
    session_id: SessionId,
    limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE_MAX)] = HISTORY_PAGE_MAX,
    next_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> dict:
    turns, token = memory.conversations.history(caller(), session_id, limit=limit, next_token=next_token)
    return {
        "session_id": session_id,
        "messages": [
            {"role": m["role"], "content": m["content"], "created_at": turn.created_at}
            for turn in turns
            for m in turn.messages
        ],
        "next_token": token,
    }


@app.delete("/sessions/<session_id>", security=JWT, responses=_answers(*PROTECTED, S.NOT_FOUND, success=S.NO_CONTENT))
def delete_session(session_id: SessionId):
    memory.conversations.delete(caller(), session_id)
    return _no_content()


@app.get("/sessions", security=JWT, responses=_answers(*PROTECTED, S.BAD_REQUEST))
def list_sessions(
    limit: Annotated[int, Query(ge=1, le=SESSIONS_PAGE_MAX)] = SESSIONS_PAGE_DEFAULT,
    next_token: Annotated[str | None, Query(max_length=1024)] = None,
) -> dict:
    """The caller's sessions, most recently used first, a page at a time: `next_token` while more follow."""
    sessions, token = memory.conversations.sessions_page(caller(), limit=limit, next_token=next_token)
    return {"sessions": [vars(s) for s in sessions], **({"next_token": token} if token else {})}


@app.get("/memory", security=JWT, responses=_answers(*PROTECTED))
def get_facts() -> dict:
    return {"facts": {fact.key: fact.value for fact in memory.facts_of(caller())}}


@app.put("/memory/<key>", security=JWT, responses=_answers(*PROTECTED, S.BAD_REQUEST, S.CONFLICT, S.REQUEST_ENTITY_TOO_LARGE),
         description=(f"Stores the fact, for the caller only. The key: {FACT_KEY_RULE}. The value: {VALUE_RULE}; at "
                      f"most {settings.max_fact_value_chars} characters. Either refused: 422. At most "
                      f"{settings.max_facts} facts and {settings.max_fact_bytes} bytes (UTF-8, keys and values) per "
                      "user: a write past them is refused with 409 facts_limit_reached (overwriting with a value "
                      "no longer always works)."))
def put_fact(key: FactKey, request: FactRequest) -> dict:
    memory.put_fact(caller(), key, request.value)
    return {"facts": {key: request.value}}


@app.delete("/memory/<key>", security=JWT, responses=_answers(*PROTECTED, S.NOT_FOUND, success=S.NO_CONTENT))
def delete_fact(key: FactKey):
    if not memory.facts.delete(caller(), key):
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such fact")
    return _no_content()


@app.delete("/me", security=JWT, responses=_answers(*PROTECTED, success=S.NO_CONTENT))
def erase_me():
    memory.erase_user(caller())
    return _no_content()


# Domain errors become HTTP errors here and nowhere else. These have a fixed answer: status, code,
# message (`{error}` is the exception's own text) and, for some, headers.
RETRY_SOON = {"Retry-After": "1"}
PLAIN_ERRORS = {
    SessionNotFound: (S.NOT_FOUND, "not_found", "no such session"),
    InvalidToken: (S.BAD_REQUEST, "bad_request", "{error}"),
    TurnInProgress: (S.CONFLICT, "turn_in_progress",
                     "a request with this Idempotency-Key is still running; retry shortly", RETRY_SOON),
    KeyReused: (S.UNPROCESSABLE_ENTITY, "idempotency_key_reused",
                "this Idempotency-Key was used with another message on this session"),
    InvalidFact: (S.UNPROCESSABLE_ENTITY, "validation_error", "{error}"),
    FactsLimitReached: (S.CONFLICT, "facts_limit_reached", "{error}: delete a fact to make room"),
    # json.loads gives up on a body nested ~1,000 levels deep (a few KB of "["): bad input, not our fault.
    RecursionError: (S.BAD_REQUEST, "malformed_json", "the body is nested too deeply"),
}


def _plain_error(status: HTTPStatus, code: str, message: str, headers: dict | None = None):
    return lambda error: _error(status, code, message.format(error=error), headers)


for _exception, _answer in PLAIN_ERRORS.items():
    app.exception_handler(_exception)(_plain_error(*_answer))


@app.exception_handler(ApiError)
def api_error(error: ApiError) -> Response:
    return _error(error.status, error.code, str(error), error.headers)


@app.exception_handler(Erased)
def erased(_: Erased) -> Response:
    logger.info("turn_erased")
    return _error(HTTPStatus.CONFLICT, "session_erased",
                  "the session or its user was erased while this request ran; nothing of it was stored")


@app.exception_handler(async_turns.WorkerUnavailable)
def worker_unavailable(error: async_turns.WorkerUnavailable) -> Response:
    logger.error("worker_unavailable", extra={"error": str(error)})
    return _error(HTTPStatus.SERVICE_UNAVAILABLE, "worker_unavailable", "the turn could not be started; retry later",
                  RETRY_SOON)


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response:
    problems = error.errors()
    if any(p["type"] == "json_invalid" for p in problems):
        return _error(HTTPStatus.BAD_REQUEST, "malformed_json", "the body is not valid JSON")
    if any(p["type"] == "string_too_long" and p["loc"][-1] == "message" for p in problems):
        return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "the message is too long")
    # Field names only, cut short: an error message never echoes what the user sent.
    detail = "; ".join(f"{'.'.join(str(part)[:40] for part in p['loc'])}: {p['msg']}" for p in problems)
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", detail)


@app.not_found
def not_found(_) -> Response:
    return _error(HTTPStatus.NOT_FOUND, "not_found", "no such route")


# A memory read that failed (503), the model's failure (502/503), anything else (500): logged and
# answered as the worker tells a failed asynchronous turn (agent.observation).
@app.exception_handler(Exception)
def failed(error: Exception) -> Response:
    return _failure(observation.turn_failed(error))


def lambda_handler(event: dict, context) -> dict:
    if snapstart.is_keep_alive(event):  # the schedule that keeps the SnapStart version Active
        return snapstart.KEPT_ALIVE
    return _handle(event, context)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
def _handle(event: dict, context) -> dict:
    app.append_context(**{ENTERED: time.monotonic()})  # where every time budget of the request starts
    if rejection := _reject_body(event):
        return rejection
    # The API speaks JSON only: a body sent as a form (curl -d) is still read as JSON.
    event["headers"] = {**(event.get("headers") or {}), "content-type": content_types.APPLICATION_JSON}
    return app.resolve(event, context)


def _reject_body(event: dict) -> dict | None:
    """Refuse oversized or undecodable bodies before anything parses them."""
    body = event.get("body") or ""
    if len(body) > (MAX_BODY_BYTES * 4 // 3 + 4 if event.get("isBase64Encoded") else MAX_BODY_BYTES):
        return _raw_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "the body is too large")
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        raw.decode("utf-8")
    except (binascii.Error, UnicodeError):
        return _raw_error(HTTPStatus.BAD_REQUEST, "malformed_body", "the body is not UTF-8 text")
    if len(raw) > MAX_BODY_BYTES:
        return _raw_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "the body is too large")
    return None


def _no_content() -> Response:
    return Response(status_code=HTTPStatus.NO_CONTENT, content_type=None, body="")


def _failure(failure: TurnFailure) -> Response:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
    return _error(failure.status, failure.code, failure.message, headers)


def _error(status: HTTPStatus, code: str, message: str, headers: dict | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": code, "message": message},
        headers=headers,
    )


def _raw_error(status: HTTPStatus, code: str, message: str) -> dict:
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": code, "message": message}),
    }
