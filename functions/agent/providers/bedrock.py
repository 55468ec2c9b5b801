"""Claude on Amazon Bedrock: the same Messages body and stream events, through bedrock-runtime
InvokeModelWithResponseStream."""

import json

from agent.budget import CONNECT_SECONDS, STALL_SECONDS
from agent.providers.contract import DEFAULT_MAX_OUTPUT_TOKENS, ModelError, ModelResponse
from agent.providers.messages_api import read_stream, tool_fields
from agent.providers.retries import with_retries

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Bedrock error codes worth a retry, as HTTP errors (ThrottlingException) or stream events (throttlingException).
BEDROCK_TRANSIENT = frozenset({"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException",
                               "InternalServerException", "ModelStreamErrorException", "ModelTimeoutException"})


class BedrockModel:
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

    def complete(self, *, system, messages, tools, deadline, allow_tools=True, on_text=None) -> ModelResponse:
        from botocore.exceptions import ClientError

        body = json.dumps({
            "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
            "max_tokens": self._max_output_tokens,
            "system": system,
            "messages": messages,
            **tool_fields(tools, allow_tools),
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
