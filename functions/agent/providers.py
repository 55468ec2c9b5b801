"""Model providers behind one interface: complete(system, messages, tools) -> ModelResponse.

The SDKs are imported inside the provider that needs them: a cold start pays only for its own."""

import functools
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent.prompt import read_facts
from memory.turns import Usage

MAX_OUTPUT_TOKENS = 1024
# Every model call of one turn, tool loop and retries included, ends within this many seconds of
# the memory read: infra/agent_function.py MODEL_BUDGET (4 s read + 16 s model + 4 s write + 1 s
# = the 25 s function timeout, inside API Gateway's 29 s). Past it the turn answers 503, not a timeout.
MODEL_BUDGET_SECONDS = 16.0
# One attempt never waits longer than this, nor longer than what is left of the budget.
MODEL_TIMEOUT_SECONDS = 10.0
# Our retries, not the SDK's: the SDK sleeps whatever retry-after says, however far past the budget.
# A retry waits retry-after (when the API sends one) or 0.5 s then 1 s, and is made only if the wait
# plus MIN_ATTEMPT_SECONDS still fits before the deadline; otherwise the failure is answered now.
MODEL_MAX_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
MIN_ATTEMPT_SECONDS = 2.0
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
# A 429 that no retry fixes: the organisation's monthly spend cap (error.details.error_code).
SPEND_LIMIT_REACHED = "enforced_spend_limit_reached"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Powertools parameters' cache of the API key secret: a rotated key is picked up within 5 minutes.
SECRET_CACHE_SECONDS = 300


@dataclass(frozen=True)
class ModelResponse:
    content: list[dict]
    stop_reason: str
    usage: Usage


class ModelError(Exception):
    """The model failed after its retries. `transient` failures are worth a retry by the client."""

    def __init__(self, message: str, *, transient: bool, retry_after: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Model(Protocol):
    def complete(
        self,
        *,
        system: str,
        messages: list[dict],
        tools: list[dict],
        allow_tools: bool = True,
        deadline: float | None = None,
    ) -> ModelResponse:
        """`deadline` is a time.monotonic() value; None gives the call MODEL_BUDGET_SECONDS."""
        ...


def with_retries(attempt: Callable[[float], ModelResponse], deadline: float | None) -> ModelResponse:
    """Calls attempt(timeout) until it answers, a ModelError is not transient, or the budget is spent."""
    if deadline is None:
        deadline = time.monotonic() + MODEL_BUDGET_SECONDS
    for number in itertools.count(1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ModelError("the turn's model budget is spent", transient=True)
        try:
            return attempt(min(MODEL_TIMEOUT_SECONDS, remaining))
        except ModelError as failure:
            wait = failure.retry_after if failure.retry_after is not None else RETRY_BACKOFF_SECONDS * 2 ** (number - 1)
            if not failure.transient or number == MODEL_MAX_ATTEMPTS or (
                time.monotonic() + wait + MIN_ATTEMPT_SECONDS > deadline
            ):
                raise
            time.sleep(wait)


class AnthropicModel:
    """Claude through the Messages API of the anthropic SDK."""

    def __init__(self, *, api_key: str, model_id: str):
        import anthropic

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(api_key=api_key, timeout=MODEL_TIMEOUT_SECONDS, max_retries=0)
        self._model_id = model_id

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None) -> ModelResponse:
        def attempt(timeout: float) -> ModelResponse:
            try:
                response = self._client.messages.create(
                    model=self._model_id,
                    max_tokens=MAX_OUTPUT_TOKENS,
                    system=system,
                    messages=messages,
                    tools=tools,
                    tool_choice={"type": "auto" if allow_tools else "none"},
                    timeout=timeout,
                )
            except self._anthropic.APIError as error:
                raise _anthropic_failure(self._anthropic, error) from error
            return ModelResponse(
                content=[block.model_dump(exclude_none=True) for block in response.content],
                stop_reason=response.stop_reason,
                usage=Usage(response.usage.input_tokens, response.usage.output_tokens),
            )

        return with_retries(attempt, deadline)


def _anthropic_failure(anthropic, error) -> ModelError:
    if isinstance(error, anthropic.APIConnectionError):  # timeouts and resets included
        return ModelError(type(error).__name__, transient=True)
    if not isinstance(error, anthropic.APIStatusError):  # an answer the SDK could not read
        return ModelError(type(error).__name__, transient=False)
    hint = error.response.headers.get("x-should-retry")
    if error.error_code == SPEND_LIMIT_REACHED:
        transient = False
    elif hint in ("true", "false"):
        transient = hint == "true"
    else:
        transient = error.status_code in RETRYABLE_STATUSES
    return ModelError(
        f"anthropic returned {error.status_code} {error.error_code or error.type or ''}".strip(),
        transient=transient,
        retry_after=_retry_after(error.response.headers),
    )


class BedrockModel:
    """Claude on Amazon Bedrock: the same Messages body, through bedrock-runtime InvokeModel."""

    def __init__(self, *, model_id: str):
        from botocore.config import Config

        from memory.client import session

        self._client = session().create_client(
            "bedrock-runtime",
            config=Config(
                read_timeout=MODEL_TIMEOUT_SECONDS,
                connect_timeout=2,
                retries={"mode": "standard", "total_max_attempts": 1},  # with_retries retries
            ),
        )
        self._model_id = model_id

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None) -> ModelResponse:
        from botocore.exceptions import BotoCoreError, ClientError

        body = {
            "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "system": system,
            "messages": messages,
            "tools": tools,
            "tool_choice": {"type": "auto" if allow_tools else "none"},
        }

        def attempt(_timeout: float) -> ModelResponse:
            # botocore has no per-call timeout: the client's read timeout bounds each attempt.
            try:
                raw = self._client.invoke_model(modelId=self._model_id, body=json.dumps(body))
            except ClientError as error:
                code = error.response["Error"]["Code"]
                raise ModelError(
                    f"bedrock returned {code}",
                    transient=code in ("ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException", "InternalServerException"),
                ) from error
            except BotoCoreError as error:
                raise ModelError(type(error).__name__, transient=True) from error
            response = json.loads(raw["body"].read())
            return ModelResponse(
                content=response["content"],
                stop_reason=response["stop_reason"],
                usage=Usage(response["usage"]["input_tokens"], response["usage"]["output_tokens"]),
            )

        return with_retries(attempt, deadline)


REMEMBER = re.compile(r"remember (?:that )?my (?P<key>[\w ]+?) is (?P<value>.+?)[.!]?$", re.IGNORECASE)
FORGET = re.compile(r"forget my (?P<key>[\w ]+?)[.!]?$", re.IGNORECASE)
RECALL = re.compile(r"what(?:'s| is) my (?P<key>[\w ]+?)\??$", re.IGNORECASE)
FIRST = re.compile(r"what did i (?:say|tell you) first\??$", re.IGNORECASE)
CHARS_PER_TOKEN = 4


def fact_key(phrase: str) -> str:
    return re.sub(r"\W+", "_", phrase.strip().lower())


class OfflineModel:
    """Deterministic and network-free, for running the whole memory path without an API key.

    It reads what the prompt holds (earlier turns in the messages, facts in the system prompt's
    facts block), turns "remember (that) my X is Y" / "forget my X" into real tool calls, and answers
    "what is my X?" from the facts and "what did I say first?" from the history."""

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None) -> ModelResponse:
        last = messages[-1]["content"]
        usage = Usage(
            input_tokens=(len(system) + len(json.dumps(messages))) // CHARS_PER_TOKEN,
            output_tokens=0,
        )
        if isinstance(last, list) and last[0].get("type") == "tool_result":
            return _offline_text("done: " + "; ".join(block["content"] for block in last), usage)
        facts = read_facts(system)
        call = _offline_tool_call(last.strip(), len(messages)) if allow_tools else None
        if call:
            return ModelResponse(content=[call], stop_reason="tool_use", usage=usage)
        said = [m["content"] for m in messages[:-1] if m["role"] == "user" and isinstance(m["content"], str)]
        if recall := RECALL.match(last.strip()):
            answer = f"your {recall['key']} is {facts.get(fact_key(recall['key']), 'something I do not know yet')}."
        elif FIRST.match(last.strip()):
            answer = f"you first said: {said[0][:200]}" if said else "this is the first thing you said here."
        else:
            answer = f"you said: {last[:200]}"
        earlier = len(said)
        return _offline_text(f"I see {earlier} earlier turns and {len(facts)} facts; {answer}", usage)


def _offline_tool_call(text: str, position: int) -> dict | None:
    if match := REMEMBER.match(text):
        name, tool_input = "remember", {"key": fact_key(match["key"]), "value": match["value"]}
    elif match := FORGET.match(text):
        name, tool_input = "forget", {"key": fact_key(match["key"])}
    else:
        return None
    return {"type": "tool_use", "id": f"toolu_offline_{position}", "name": name, "input": tool_input}


def _offline_text(text: str, usage: Usage) -> ModelResponse:
    text = f"[offline model] {text}"
    return ModelResponse(
        content=[{"type": "text", "text": text}],
        stop_reason="end_turn",
        usage=Usage(usage.input_tokens, len(text) // CHARS_PER_TOKEN),
    )


def _retry_after(headers) -> int | None:
    value = headers.get("retry-after")
    return int(float(value)) if value and value.replace(".", "", 1).isdigit() else None


def configured_model(settings) -> Model:
    """The model of agent.config.Settings, built on first use: a process imports only its provider's
    SDK, keeps one client, and reads the API key secret through Powertools' cache."""
    if settings.provider == "offline":
        return OfflineModel()
    if settings.provider == "bedrock":
        return _bedrock_model(settings.model_id)
    return _anthropic_model(settings.anthropic_api_key or _anthropic_key_from_secret(settings.anthropic_secret_arn),
                            settings.model_id)


@functools.cache
def _bedrock_model(model_id: str) -> Model:
    return BedrockModel(model_id=model_id)


@functools.lru_cache(maxsize=1)  # a rotated key replaces the client
def _anthropic_model(api_key: str, model_id: str) -> Model:
    return AnthropicModel(api_key=api_key, model_id=model_id)


def _anthropic_key_from_secret(secret_arn: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    try:
        return parameters.get_secret(secret_arn, max_age=SECRET_CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise ModelError("the model's API key could not be read", transient=True) from error
