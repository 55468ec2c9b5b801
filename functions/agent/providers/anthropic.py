"""Claude through Anthropic's API (the anthropic SDK, imported on first use), and its API key read
from Secrets Manager."""

import functools
import time

from agent.budget import CONNECT_SECONDS, STALL_SECONDS
from agent.providers.contract import DEFAULT_MAX_OUTPUT_TOKENS, ModelError, ModelResponse
from agent.providers.messages_api import read_stream, tool_fields
from agent.providers.retries import with_retries

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
# A 429 that no retry fixes: the organisation's monthly spend cap (error.details.error_code).
SPEND_LIMIT_REACHED = "enforced_spend_limit_reached"
# The API key secret is read once per 5 minutes per environment: a rotated key is picked up within 5 minutes.
SECRET_CACHE_SECONDS = 300
# The read happens inside the turn's budget (agent.budget), so it fails in seconds like a memory call
# (memory.client): 0.5 s connect, 1 s read, 2 attempts in standard retry mode. botocore's defaults
# would wait 60 s per read, in legacy mode's 5 attempts: https://docs.aws.amazon.com/boto3/latest/guide/retries.html
SECRET_CONNECT_SECONDS, SECRET_READ_SECONDS, SECRET_ATTEMPTS = 0.5, 1.0, 2


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

    def complete(self, *, system, messages, tools, deadline, allow_tools=True, on_text=None) -> ModelResponse:
        def open_stream():
            stream = self._client.messages.create(
                model=self._model_id,
                max_tokens=self._max_output_tokens,
                system=system,
                messages=messages,
                stream=True,
                **tool_fields(tools, allow_tools),
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


def _retry_after(headers) -> int | None:
    value = headers.get("retry-after")
    return int(float(value)) if value and value.replace(".", "", 1).isdigit() else None


_secrets: dict[str, tuple[float, str]] = {}  # secret ARN -> (read at, monotonic; value)


def key_from_secret(secret_arn: str) -> str:
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
