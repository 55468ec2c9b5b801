"""One agent turn: plain Python, given its memory and its model."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from agent.budget import SYNC_MODEL_SECONDS
from agent.prompt import facts_room, facts_tokens, fit_facts, system_prompt
from agent.providers import DeadlineReached, Model
from memory.errors import Erased
from memory.long_term import FACT_KEY, FACT_KEY_MAX_CHARS, FACT_KEY_RULE, FactsLimitReached, InvalidFact, valid_key
from memory.outcomes import WriteOutcome
from memory.registry import Fence
from memory.resilient import ResilientMemory
from memory.turns import Turn, Usage, iso, new_turn_id
from memory.window import estimate_tokens, message_tokens

# Each round is one model call; the last one is made with tools off, so the turn always ends in text.
MAX_TOOL_ROUNDS = 4
# Tool calls run per model answer; the rest get a tool error. An answer of MODEL_MAX_OUTPUT_TOKENS has
# room for hundreds of short calls: a prompt-injected model must not rewrite a user's memory wholesale.
MAX_TOOL_CALLS_PER_ANSWER = 5

# The store's own key rule (memory.long_term), anchored: JSON Schema patterns search.
KEY_SCHEMA = {"type": "string", "pattern": f"^{FACT_KEY}$", "maxLength": FACT_KEY_MAX_CHARS,
              "description": "short snake_case name, e.g. favourite_colour"}
TOOLS = [
    {
        "name": "remember",
        "description": "Store a lasting fact about the user, kept across all their conversations.",
        "input_schema": {
            "type": "object",
            "properties": {"key": KEY_SCHEMA, "value": {"type": "string", "description": "one line of visible text"}},
            "required": ["key", "value"],
        },
    },
    {
        "name": "forget",
        "description": "Remove a stored fact about the user.",
        "input_schema": {
            "type": "object",
            "properties": {"key": KEY_SCHEMA},
            "required": ["key"],
        },
    },
]
TOOLS_TOKENS = estimate_tokens(json.dumps(TOOLS))
# Every later round of the tool loop adds the answer that called a tool and our tool results for it;
# twice TOOL_ROUND_TOKENS per round is kept free in the budget. An answer that calls a tool is short
# (a sentence and the call); a longer one eats into the other half of the context window, which the
# prompt budget (half of it) leaves free. The final answer (up to MODEL_MAX_OUTPUT_TOKENS) is in no
# prompt of its own turn.
TOOL_ROUND_TOKENS = 1024
TOOL_LOOP_RESERVE_TOKENS = (MAX_TOOL_ROUNDS - 1) * 2 * TOOL_ROUND_TOKENS
# The last answer of a turn whose deadline came between tool rounds, after tokens were spent: the
# turn is stored (well formed, ending in text) and answered as truncated, never as a 503.
CUT_OFF_TEXT = "[The answer was cut off: the turn ran out of time.]"


@dataclass(frozen=True)
class TurnResult:
    turn: Turn
    reply: str
    context_turns: int
    context_facts: int
    write: WriteOutcome
    context_summary: bool = False
    context_facts_omitted: int = 0
    truncated: bool = False

    def answer(self) -> dict:
        """The turn's HTTP answer (besides session_id), the same on the synchronous and async paths."""
        return {
            "reply": self.reply,
            "turn_id": self.turn.turn_id,
            "context": {"turns": self.context_turns, "summary": self.context_summary, "facts": self.context_facts,
                        "facts_omitted": self.context_facts_omitted},
            "memory": {"write": self.write},
            "truncated": self.truncated,
        }


class Record(Protocol):
    """An item stored in the same transaction as the turn (an idempotency or async-turn record)."""

    def record(self, result: TurnResult) -> dict: ...


def fixed_tokens(message: dict) -> int:
    """What every prompt of the turn holds besides the window and the facts: system prompt, tools,
    the new message, and the room kept for the tool loop."""
    return estimate_tokens(system_prompt([])) + TOOLS_TOKENS + message_tokens(message) + TOOL_LOOP_RESERVE_TOKENS


def run_turn(
    *,
    memory: ResilientMemory,
    model: Model,
    user_id: str,
    session_id: str,
    message: str,
    records: tuple[Record, ...] = (),
    deadline: float | None = None,
    on_text: Callable[[str], None] | None = None,
    turn_id: str | None = None,
    generation: str | None = None,
    clock=time.time,
) -> TurnResult:
    """Load memory (fails fast), run the tool loop, store the turn (best effort).

    `deadline` (time.monotonic()) ends the model's part of the turn, SYNC_MODEL_SECONDS after its
    start by default; an answer it cuts short is the reply, `truncated`. A ModelError propagates
    before anything of the turn is stored. `records` are stored in the same transaction as the turn.
    `turn_id` and `generation` are the id an asynchronous turn was given when it was accepted and
    the session's generation then. Raises Erased, nothing stored and no tool run, when the session or
    its user was erased after the turn began (or, asynchronous, after it was accepted)."""
    started = clock()
    deadline = time.monotonic() + SYNC_MODEL_SECONDS if deadline is None else deadline
    context = memory.load(user_id, session_id)
    try:
        return _answer(memory, model, context, user_id=user_id, session_id=session_id, message=message,
                       records=records, deadline=deadline, on_text=on_text, turn_id=turn_id, generation=generation,
                       started=started)
    except Erased:
        memory.registry.release(user_id, session_id, context.fence)  # a session it registered stays empty
        raise


def _answer(memory: ResilientMemory, model: Model, context, *, user_id: str, session_id: str, message: str,
            records: tuple[Record, ...], deadline: float, on_text, turn_id: str | None, generation: str | None,
            started: float) -> TurnResult:
    if generation is not None and context.fence.generation != generation:
        raise Erased()
    new_messages: list[dict] = [{"role": "user", "content": message}]
    fixed = fixed_tokens(new_messages[0])
    facts = fit_facts(context.facts, facts_room(memory.window, context.turns, fixed))
    window = memory.window.fit(context.turns, context.summary, fixed_tokens=fixed + facts_tokens(facts))
    system, history = system_prompt(facts, window.summary), window.messages
    facts_omitted = len(context.facts) - len(facts)
    usage, truncated = Usage(), False
    for round_number in range(1, MAX_TOOL_ROUNDS + 1):
        try:
            response = model.complete(
                system=system,
                messages=history + new_messages,
                tools=TOOLS,
                allow_tools=round_number < MAX_TOOL_ROUNDS,
                deadline=deadline,
                on_text=on_text,
            )
        except DeadlineReached:
            if round_number == 1:  # nothing was spent: the turn failed
                raise
            new_messages.append({"role": "assistant", "content": [{"type": "text", "text": CUT_OFF_TEXT}]})
            truncated = True
            break
        usage += response.usage
        new_messages.append({"role": "assistant", "content": response.content})
        truncated = response.truncated
        tool_calls = [block for block in response.content if block["type"] == "tool_use"]
        if response.stop_reason != "tool_use" or not tool_calls:
            break
        new_messages.append({"role": "user", "content": [
            _run_tool(memory, user_id, session_id, call, context.fence) if number < MAX_TOOL_CALLS_PER_ANSWER
            else _tool_result(call, f"error: at most {MAX_TOOL_CALLS_PER_ANSWER} tool calls per answer; "
                                    "this one was not run", error=True)
            for number, call in enumerate(tool_calls)
        ]})
    turn = Turn(
        user_id=user_id,
        session_id=session_id,
        turn_id=turn_id or new_turn_id(started),
        created_at=iso(started),
        messages=new_messages,
        usage=usage,
    )
    result = TurnResult(
        turn=turn,
        reply=reply_text(new_messages[-1]),
        context_turns=len(window.turns),
        context_facts=len(facts),
        write="ok",  # what the records say: they are stored only if the turn is
        context_summary=window.summary is not None,
        truncated=truncated,
        context_facts_omitted=facts_omitted,
    )
    return replace(result, write=memory.append(turn, context.fence, tuple(r.record(result) for r in records)))


def reply_text(message: dict) -> str:
    return "".join(block.get("text", "") for block in message["content"] if block["type"] == "text")


def _run_tool(memory: ResilientMemory, user_id: str, session_id: str, call: dict, fence: Fence) -> dict:
    """The tools act for the caller only: user_id comes from the identity, never from the model."""
    tool_input = call.get("input") if isinstance(call.get("input"), dict) else {}
    key, value = tool_input.get("key"), tool_input.get("value")
    if call["name"] == "remember":
        try:
            outcome = memory.remember(user_id, session_id, key, value, fence)
        except (InvalidFact, FactsLimitReached) as refusal:
            return _tool_result(call, f"error: {refusal}; nothing was stored", error=True)
        text = f"remembered {key}"
    elif call["name"] == "forget":
        if not valid_key(key):
            return _tool_result(call, f"error: key must be {FACT_KEY_RULE}", error=True)
        outcome = memory.forget(user_id, session_id, key, fence)
        text = f"forgot {key}"
    else:
        return _tool_result(call, f"error: unknown tool {call['name']}", error=True)
    if outcome != "ok":
        return _tool_result(call, "error: memory is unavailable, nothing was changed", error=True)
    return _tool_result(call, text)


def _tool_result(call: dict, text: str, *, error: bool = False) -> dict:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": text, "is_error": error}
