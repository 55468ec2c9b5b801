"""Claude's Messages API as Anthropic and Bedrock both speak it: the tool fields of a request, and
the stream of events folded into one answer, read under the turn's deadline."""

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agent.providers.contract import CUT_BY_DEADLINE, CUT_BY_STREAM_FAILURE, DeadlineReached, ModelResponse
from memory.turns import Usage
from memory.window import CHARS_PER_TOKEN


def tool_fields(tools: list[dict], allow_tools: bool) -> dict:
    """`tools` and `tool_choice` of a request; a call with no tools (the compactor's) has no tool to
    choose, and sends neither."""
    if not tools:
        return {}
    return {"tools": tools, "tool_choice": {"type": "auto" if allow_tools else "none"}}


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
