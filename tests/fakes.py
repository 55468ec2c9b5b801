"""Test doubles shared by unit and integration tests."""

import base64
import contextlib
import io
import json
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aws_lambda_powertools import Logger

from agent.providers import AnthropicModel, BedrockModel, ModelResponse
from memory.turns import Usage


class ScriptedModel:
    """Returns the given responses in order and records every call it receives."""

    def __init__(self, *responses: ModelResponse):
        self.responses = list(responses)
        self.calls: list[dict] = []

    def complete(self, *, system, messages, tools, allow_tools=True, deadline=None, on_text=None) -> ModelResponse:
        self.calls.append({"system": system, "messages": messages, "tools": tools, "allow_tools": allow_tools,
                           "deadline": deadline})
        return self.responses.pop(0)


def text(reply: str, input_tokens: int = 10, output_tokens: int = 5) -> ModelResponse:
    return ModelResponse([{"type": "text", "text": reply}], "end_turn", Usage(input_tokens, output_tokens))


def tool_use(name: str, tool_input: dict, call_id: str = "toolu_1") -> ModelResponse:
    return ModelResponse(
        [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}], "tool_use", Usage(10, 5)
    )


@contextlib.contextmanager
def captured_logs(logger: Logger):
    """The JSON lines the real logger writes, caught in memory while the block runs."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        logger.registered_handler.setStream(previous)


# A real Claude: about 1 s to the first token, then 50-80 tokens a second.
FIRST_TOKEN_SECONDS = 1.0
TOKENS_PER_SECOND = 60.0
# Every token of a fake answer is one of these four-character words: chars/4 token estimates hold.
WORDS = ("one ", "two ", "six ", "ten ")


def words(tokens: int) -> str:
    """The text of a fake answer of `tokens` tokens (what SlowModelAPI streams for Text(tokens))."""
    return "".join(WORDS[i % len(WORDS)] for i in range(tokens))


@dataclass(frozen=True)
class Text:
    """An answer of `tokens` tokens; with `stall_after`, the stream stops after that many and hangs."""

    tokens: int
    stall_after: int | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict
    call_id: str = "toolu_fake_1"


@dataclass(frozen=True)
class Failure:
    """An HTTP error answer: Anthropic's error JSON, or Bedrock's x-amzn-ErrorType."""

    status: int
    error_type: str
    headers: tuple = ()
    error_code: str | None = None  # Anthropic's error.details.error_code


class SlowModelAPI:
    """A model API on 127.0.0.1 as slow as a real one: the time to the first token and the tokens per
    second are set per instance, every token is its own stream event, `requests` counts calls and
    `open_streams` the answers being streamed now, `abandoned_streams` those whose client hung up
    before their end.

    - Anthropic's Messages API, POST /v1/messages: streamed as server-sent events (message_start,
      ping, content_block_start/delta/stop, message_delta, message_stop) when the body asks for
      "stream": true, else the whole message as JSON once the last token is "written".
    - Bedrock's InvokeModelWithResponseStream, POST /model/<id>/invoke-with-response-stream: the
      same events, each a `chunk` frame in AWS's event-stream encoding, which botocore parses.
    Answers follow `script`, one per request (an answer, or a function of the request's body that
    returns one); the last one repeats."""

    def __init__(self, *, first_token_seconds: float = FIRST_TOKEN_SECONDS, tokens_per_second: float = TOKENS_PER_SECOND):
        self.first_token_seconds = first_token_seconds
        self.tokens_per_second = tokens_per_second
        self.script: list = [Text(20)]
        self.requests = 0
        self.open_streams = 0
        self.abandoned_streams = 0
        self.bodies: list[dict] = []
        self.release = threading.Event()  # ends every stall
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # streams are sent chunked, as the real APIs send them

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with api._lock:
                    api.requests += 1
                    api.bodies.append(body)
                    answer = api.script.pop(0) if len(api.script) > 1 else api.script[0]
                if callable(answer):  # chooses the answer from the request
                    answer = answer(body)
                bedrock = self.path.startswith("/model/")
                if isinstance(answer, Failure):
                    return self._failure(answer, bedrock)
                events = api._events(answer, body)
                if bedrock or body.get("stream"):
                    content_type = "application/vnd.amazon.eventstream" if bedrock else "text/event-stream"
                    self._send(200, {"content-type": content_type, "transfer-encoding": "chunked",
                                     "x-amzn-bedrock-content-type": "application/json"})
                    encode = chunk_frame if bedrock else sse
                    with api._streaming():
                        whole = api._pace(answer, events, lambda event: self.wfile.write(http_chunk(encode(event))))
                    if whole:
                        self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.close_connection = True
                else:
                    api._pace(answer, events, lambda event: None)
                    raw = json.dumps(whole_message(events)).encode()
                    self._send(200, {"content-type": "application/json", "content-length": str(len(raw))})
                    self.wfile.write(raw)

            def _failure(self, failure: Failure, bedrock: bool):
                if bedrock:
                    body = {"message": "injected"}
                    headers = {"x-amzn-errortype": failure.error_type}
                else:
                    body = {"type": "error", "error": {"type": failure.error_type, "message": "injected"}}
                    if failure.error_code:
                        body["error"]["details"] = {"error_code": failure.error_code}
                    headers = {}
                raw = json.dumps(body).encode()
                self._send(failure.status, {"content-type": "application/json", "content-length": str(len(raw)),
                                            **headers, **dict(failure.headers)})
                self.wfile.write(raw)

            def _send(self, status: int, headers: dict):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "SlowModelAPI":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @contextlib.contextmanager
    def _streaming(self):
        with self._lock:
            self.open_streams += 1
        try:
            yield
        finally:
            with self._lock:
                self.open_streams -= 1

    def _events(self, answer, request: dict) -> list[dict]:
        usage = {"input_tokens": len(json.dumps(request)) // 4, "output_tokens": 1}
        message = {"id": f"msg_fake_{self.requests}", "type": "message", "role": "assistant", "model": "claude-fake",
                   "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
        events = [{"type": "message_start", "message": message}, {"type": "ping"}]
        if isinstance(answer, ToolCall):
            arguments = json.dumps(answer.input)
            events += [
                {"type": "content_block_start", "index": 0,
                 "content_block": {"type": "tool_use", "id": answer.call_id, "name": answer.name, "input": {}}},
                *({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "input_json_delta", "partial_json": arguments[i:i + 8]}}
                  for i in range(0, len(arguments), 8)),
                {"type": "content_block_stop", "index": 0},
            ]
            stop, tokens = "tool_use", len(arguments) // 4
        else:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)]}}
                  for i in range(answer.tokens)),
                {"type": "content_block_stop", "index": 0},
            ]
            stop, tokens = "end_turn", answer.tokens
        return events + [
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": tokens}},
            {"type": "message_stop"},
        ]

    def _pace(self, answer, events: list[dict], write) -> bool:
        """Writes the events on a real model's schedule: the first token after first_token_seconds,
        then one per 1/tokens_per_second (against the clock, so a slow reader does not slow it).
        Whether the answer was written whole."""
        started = time.monotonic()
        written = 0
        for event in events:
            if event["type"] == "content_block_delta":
                if isinstance(answer, Text) and answer.stall_after is not None and written == answer.stall_after:
                    self.release.wait()
                    return False
                due = started + self.first_token_seconds + written / self.tokens_per_second
                time.sleep(max(0.0, due - time.monotonic()))
                written += 1
            try:
                write(event)  # wfile is unbuffered: each event leaves now
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: so does the model
                with self._lock:
                    self.abandoned_streams += 1
                return False
        return True


def sse(event: dict) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def whole_message(events: list[dict]) -> dict:
    """The non-streaming form: the message of message_start with its content and stop filled in."""
    message = dict(events[0]["message"])
    blocks: list[dict] = []
    for event in events:
        if event["type"] == "content_block_start":
            blocks.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            blocks[event["index"]]["text"] += event["delta"]["text"]
        elif event["type"] == "content_block_delta":
            blocks[event["index"]]["_json"] = blocks[event["index"]].get("_json", "") + event["delta"]["partial_json"]
        elif event["type"] == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **event["usage"]}
    for block in blocks:
        if "_json" in block:
            block["input"] = json.loads(block.pop("_json"))
    return {**message, "content": blocks}


def chunk_frame(event: dict) -> bytes:
    """One Bedrock stream event as an AWS event-stream message: prelude (total and header lengths,
    CRC32), string headers, the JSON payload {"bytes": base64 of the event}, CRC32 of it all."""
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    raw_headers = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        for name, value in headers.items()
    )
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def provider_model(monkeypatch, api: SlowModelAPI, provider: str):
    """A real provider, the anthropic SDK's or botocore's, that talks to `api`."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", api.url)
    return (AnthropicModel(api_key="test-key", model_id="claude-test") if provider == "anthropic"
            else BedrockModel(model_id="anthropic.claude-test"))
