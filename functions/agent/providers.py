"""Model providers behind one interface: complete(system, messages, tools) -> ModelResponse.

The SDKs are imported inside the provider that needs them: a cold start pays only for its own."""

import functools
import itertools
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from agent.budget import CONNECT_SECONDS, STALL_SECONDS, SYNC_MODEL_SECONDS
from agent.prompt import read_facts
from memory.turns import Usage

# The longest answer a model call may write (MODEL_MAX_OUTPUT_TOKENS): an asynchronous turn has
# minutes for it (agent.budget); a synchronous one is cut by its deadline first, never by this.
DEFAULT_MAX_OUTPUT_TOKENS = 8192
# Our retries, not the SDK's: the SDK sleeps whatever retry-after says, however far past the budget.
# A retry waits retry-after (when the API sends one) or 0.5 s then 1 s, and is made only if the wait
# plus MIN_ATTEMPT_SECONDS still fits before the deadline; otherwise the failure is answered now.
# Only an attempt that wrote nothing is retried: once text has streamed, the tokens are spent and the
# answer ends with what was written (`truncated`), never with a second, billed, call.
MODEL_MAX_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.5
MIN_ATTEMPT_SECONDS = 2.0
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
# A 429 that no retry fixes: the organisation's monthly spend cap (error.details.error_code).
SPEND_LIMIT_REACHED = "enforced_spend_limit_reached"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock error codes worth a retry, as HTTP errors (ThrottlingException) or stream events (throttlingException).
BEDROCK_TRANSIENT = frozenset({"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException",
                               "InternalServerException", "ModelStreamErrorException", "ModelTimeoutException"})
# The API key secret is read once per 5 minutes per environment: a rotated key is picked up within 5 minutes.
SECRET_CACHE_SECONDS = 300
# The read happens inside the turn's budget (agent.budget), so it fails in seconds like a memory call
# (memory.client): 0.5 s connect, 1 s read, 2 attempts in standard retry mode. botocore's defaults
# would wait 60 s per read, in legacy mode's 5 attempts: https://docs.aws.amazon.com/boto3/latest/guide/retries.html
SECRET_CONNECT_SECONDS, SECRET_READ_SECONDS, SECRET_ATTEMPTS = 0.5, 1.0, 2
# stop_reason of an answer cut short: by the turn's deadline, or by a stream that failed after text.
CUT_BY_DEADLINE, CUT_BY_STREAM_FAILURE = "deadline", "stream_failure"


@dataclass(frozen=True)
class ModelResponse:
    content: list[dict]
    stop_reason: str
    usage: Usage
    truncated: bool = False


class ModelError(Exception):
    """The model failed after its retries. `transient` failures are worth a retry by the client."""

    def __init__(self, message: str, *, transient: bool, retry_after: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class DeadlineReached(ModelError):
    """The turn's deadline came before the model wrote any text."""

    def __init__(self):
        super().__init__("the turn's model budget is spent", transient=True)


class AnswerStopped(ModelError):
    """`on_text` stopped the answer: nobody will read it (its turn was erased). Never retried."""

    def __init__(self):
        super().__init__("the answer was stopped by its reader", transient=False)


class Model(Protocol):
    def complete(
        self,
        *,
        system: str,
        messages: list[dict],
        tools: list[dict],
        allow_tools: bool = True,
        deadline: float | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ModelResponse:
        """`deadline` is a time.monotonic() value; None gives the call SYNC_MODEL_SECONDS.
        `on_text(delta)` sees the answer's text as it is written."""
        ...


def with_retries(attempt: Callable[[], ModelResponse], deadline: float) -> ModelResponse:
    """Calls attempt() until it answers, a ModelError is not transient, or the budget is spent."""
    for number in itertools.count(1):
        if deadline - time.monotonic() <= 0:
            raise DeadlineReached()
        try:
            return attempt()
        except ModelError as failure:
            wait = failure.retry_after if failure.retry_after is not None else RETRY_BACKOFF_SECONDS * 2 ** (number - 1)
            if not failure.transient or number == MODEL_MAX_ATTEMPTS or (
                time.monotonic() + wait + MIN_ATTEMPT_SECONDS > deadline
            ):
                raise
            time.sleep(wait)


@dataclass
class StreamedAnswer:
    """The Messages API's stream events (the same JSON from Anthropic and from Bedrock) folded into
    one answer: message_start, content_block_start/delta/stop, message_delta, message_stop."""

    on_text: Callable[[str], None] | None = None
    blocks: list[dict] = field(default_factory=list)
    complete: list[bool] = field(default_factory=list)
    tool_json: dict[int, list[str]] = field(default_factory=dict)
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    written: bool = False  # any text yet: from here on, the tokens are spent

    def feed(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "message_start":
            usage = event["message"].get("usage") or {}
            self.input_tokens = usage.get("input_tokens", 0)
            self.output_tokens = usage.get("output_tokens", 0)
        elif kind == "content_block_start":
            self.blocks.append(dict(event["content_block"]))
            self.complete.append(False)
            if self.blocks[-1]["type"] == "tool_use":
                self.tool_json[len(self.blocks) - 1] = []
        elif kind == "content_block_delta":
            index, delta = event["index"], event["delta"]
            if delta["type"] == "text_delta" and delta["text"]:
                self.blocks[index]["text"] += delta["text"]
                self.written = True
                if self.on_text:
                    self.on_text(delta["text"])
            elif delta["type"] == "input_json_delta":
                self.tool_json[index].append(delta["partial_json"])
        elif kind == "content_block_stop":
            index = event["index"]
            if index in self.tool_json:
                self.blocks[index]["input"] = json.loads("".join(self.tool_json[index]) or "{}")
            self.complete[index] = True
        elif kind == "message_delta":
            self.stop_reason = event["delta"].get("stop_reason") or self.stop_reason
            self.output_tokens = (event.get("usage") or {}).get("output_tokens", self.output_tokens)

    def response(self, *, cut: str | None = None) -> ModelResponse:
        """The answer; `cut` (why it ended early) keeps only its text: a tool call that was cut off,
        or that would never get its result, has no place in a stored turn."""
        keep = [b for b in self.blocks if b["type"] != "text" or b["text"]]
        if cut:
            keep = [b for b in keep if b["type"] == "text"]
        # A cut answer never saw message_delta's count: estimate its output from its text.
        written = sum(len(b.get("text", "")) for b in keep) // CHARS_PER_TOKEN
        return ModelResponse(
            content=keep,
            stop_reason=cut or self.stop_reason or "end_turn",
            usage=Usage(self.input_tokens, max(self.output_tokens, written) if cut else self.output_tokens),
            truncated=cut is not None,
        )


_END = object()


def read_stream(
    open_stream: Callable[[], tuple[Iterator[dict], Callable[[], None]]],
    *,
    deadline: float,
    on_text: Callable[[str], None] | None,
) -> ModelResponse:
    """Opens and reads one streamed answer on a helper thread, so that the turn's deadline holds
    even while a read blocks (the client's read timeout bounds each gap, STALL_SECONDS, not the
    whole). Past the deadline, or when the stream fails after text was written, the answer ends
    with what was written. Before any text, the failure is raised for with_retries to judge."""
    events: queue.Queue = queue.Queue()
    closers: list[Callable[[], None]] = []
    abandoned = threading.Event()

    def pump() -> None:
        try:
            stream, close = open_stream()
            closers.append(close)
            for event in stream:
                if abandoned.is_set():
                    break
                events.put(event)
            events.put(_END)
        except Exception as error:  # handed to the reading thread, which decides
            events.put(error)

    threading.Thread(target=pump, name="model-stream", daemon=True).start()
    answer = StreamedAnswer(on_text=on_text)
    try:
        while True:
            try:
                item = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                if answer.written:
                    return answer.response(cut=CUT_BY_DEADLINE)
                raise DeadlineReached() from None
            if item is _END:
                return answer.response()
            if isinstance(item, Exception):
                if answer.written:
                    return answer.response(cut=CUT_BY_STREAM_FAILURE)
                raise item
            answer.feed(item)
    finally:
        abandoned.set()
        # Closing stops the generation (and its bill) now. On its own thread: closing a connection
        # that another thread is reading must never hold up the answer.
        for close in closers:
            threading.Thread(target=close, name="model-stream-close", daemon=True).start()


class AnthropicModel:
    """Claude through the streaming Messages API of the anthropic SDK."""

    def __init__(self, *, api_key: str, model_id: str, max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS):
        import anthropic

        self._anthropic = anthropic
        # A read timeout bounds each gap between stream events, not the answer's length.
        self._client = anthropic.Anthropic(
            api_key=api_key, timeout=anthropic.Timeout(STALL_SECONDS, connect=CONNECT_SECONDS), max_retries=0
        )
        self._model_id = model_id
        self._max_output_tokens = max_output_tokens

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None, on_text=None) -> ModelResponse:
        deadline = time.monotonic() + SYNC_MODEL_SECONDS if deadline is None else deadline

        def open_stream():
            stream = self._client.messages.create(
                model=self._model_id,
                max_tokens=self._max_output_tokens,
                system=system,
                messages=messages,
                tools=tools,
                tool_choice={"type": "auto" if allow_tools else "none"},
                stream=True,
            )
            return (event.model_dump(exclude_none=True) for event in stream), stream.close

        def attempt() -> ModelResponse:
            try:
                return read_stream(open_stream, deadline=deadline, on_text=on_text)
            except self._anthropic.APIError as error:
                raise _anthropic_failure(self._anthropic, error) from error
            except ModelError:
                raise
            except Exception as error:  # the stream's own transport errors (read timeout, reset)
                raise ModelError(type(error).__name__, transient=True) from error

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
    """Claude on Amazon Bedrock: the same Messages body and stream events, through bedrock-runtime
    InvokeModelWithResponseStream."""

    def __init__(self, *, model_id: str, max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS):
        from botocore.config import Config

        from memory.client import session

        self._client = session().create_client(
            "bedrock-runtime",
            config=Config(
                read_timeout=STALL_SECONDS,  # each read of the stream: the gaps, not the answer
                connect_timeout=CONNECT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": 1},  # with_retries retries
            ),
        )
        self._model_id = model_id
        self._max_output_tokens = max_output_tokens

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None, on_text=None) -> ModelResponse:
        from botocore.exceptions import ClientError

        deadline = time.monotonic() + SYNC_MODEL_SECONDS if deadline is None else deadline
        body = json.dumps({
            "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
            "max_tokens": self._max_output_tokens,
            "system": system,
            "messages": messages,
            "tools": tools,
            "tool_choice": {"type": "auto" if allow_tools else "none"},
        })

        def open_stream():
            stream = self._client.invoke_model_with_response_stream(modelId=self._model_id, body=body)["body"]
            return (json.loads(part["chunk"]["bytes"]) for part in stream if "chunk" in part), stream.close

        def attempt() -> ModelResponse:
            try:
                return read_stream(open_stream, deadline=deadline, on_text=on_text)
            except ClientError as error:  # an HTTP error, or an exception event in the stream
                code = error.response["Error"]["Code"]
                code = code[:1].upper() + code[1:]
                raise ModelError(f"bedrock returned {code}", transient=code in BEDROCK_TRANSIENT) from error
            except ModelError:
                raise
            except Exception as error:  # timeouts, resets: botocore's and urllib3's
                raise ModelError(type(error).__name__, transient=True) from error

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

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None, on_text=None) -> ModelResponse:
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
        return _bedrock_model(settings.model_id, settings.max_output_tokens)
    return _anthropic_model(settings.anthropic_api_key or _anthropic_key_from_secret(settings.anthropic_secret_arn),
                            settings.model_id, settings.max_output_tokens)


@functools.cache
def _bedrock_model(model_id: str, max_output_tokens: int) -> Model:
    return BedrockModel(model_id=model_id, max_output_tokens=max_output_tokens)


@functools.lru_cache(maxsize=1)  # a rotated key replaces the client
def _anthropic_model(api_key: str, model_id: str, max_output_tokens: int) -> Model:
    return AnthropicModel(api_key=api_key, model_id=model_id, max_output_tokens=max_output_tokens)


_secrets: dict[str, tuple[float, str]] = {}  # secret ARN -> (read at, monotonic; value)


def _anthropic_key_from_secret(secret_arn: str) -> str:
    read_at, value = _secrets.get(secret_arn, (float("-inf"), ""))
    if time.monotonic() - read_at < SECRET_CACHE_SECONDS:
        return value
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = secrets_client().get_secret_value(SecretId=secret_arn)["SecretString"]
    except (BotoCoreError, ClientError) as error:
        raise ModelError("the model's API key could not be read", transient=True) from error
    _secrets[secret_arn] = (time.monotonic(), value)
    return value


@functools.cache
def secrets_client():
    """Secrets Manager, from the one botocore session (memory.client), with the turn's bounds."""
    from botocore.config import Config

    from memory.client import session

    return session().create_client("secretsmanager", config=Config(
        connect_timeout=SECRET_CONNECT_SECONDS, read_timeout=SECRET_READ_SECONDS,
        retries={"mode": "standard", "total_max_attempts": SECRET_ATTEMPTS},
    ))


def preload(settings) -> None:
    """What a SnapStart init puts into its snapshot: the provider's SDK and clients, never the key (a
    key read before the snapshot would outlive its rotation in every restored environment)."""
    if settings.provider == "anthropic":
        import anthropic  # noqa: F401  (~1 s of imports, paid once per version instead of per environment)

        if settings.anthropic_secret_arn:
            secrets_client()
    elif settings.provider == "bedrock":
        _bedrock_model(settings.model_id, settings.max_output_tokens)
