"""One agent turn: plain Python, given its memory and its model."""

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.prompt import facts_room, facts_tokens, fit_facts, system_prompt
from agent.providers import MAX_OUTPUT_TOKENS, MODEL_BUDGET_SECONDS, Model
from memory.long_term import FACT_KEY, FactsLimitReached, InvalidFact, valid_key
from memory.resilient import ResilientMemory
from memory.turns import Turn, Usage, iso, new_turn_id
from memory.window import estimate_tokens, message_tokens

if TYPE_CHECKING:
    from agent.idempotency import Claim

# Each round is one model call; the last one is made with tools off, so the turn always ends in text.
MAX_TOOL_ROUNDS = 4
# Tool calls run per model answer; the rest get a tool error. An answer is at most 1,024 tokens, room
# for ~40 short calls: a prompt-injected model must not rewrite a user's memory wholesale in one go.
MAX_TOOL_CALLS_PER_ANSWER = 5

TOOLS = [
    {
        "name": "remember",
        "description": "Store a lasting fact about the user, kept across all their conversations.",
        "input_schema": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "description": "short snake_case name, e.g. favourite_colour"},
                "value": {"type": "string"},
            },
            "required": ["key", "value"],
        },
    },
    {
        "name": "forget",
        "description": "Remove a stored fact about the user.",
        "input_schema": {
            "type": "object",
            "properties": {"key": {"type": "string"}},
            "required": ["key"],
        },
    },
]
TOOLS_TOKENS = estimate_tokens(json.dumps(TOOLS))
# Every later round of the tool loop adds one model answer (at most MAX_OUTPUT_TOKENS) and our tool
# results for it; twice the answer per round is kept free in the budget, so no round goes over it.
TOOL_LOOP_RESERVE_TOKENS = (MAX_TOOL_ROUNDS - 1) * 2 * MAX_OUTPUT_TOKENS


@dataclass(frozen=True)
class TurnResult:
    turn: Turn
    reply: str
    context_turns: int
    context_facts: int
    write: str
    context_summary: bool = False
    context_facts_omitted: int = 0


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
    idempotency: "Claim | None" = None,
    clock=time.time,
) -> TurnResult:
    """Load memory (fails fast), run the tool loop, store the turn (best effort).

    A ModelError propagates before anything of the turn is stored. With an idempotency claim, its
    record is stored in the same transaction as the turn."""
    started = clock()
    context = memory.load(user_id, session_id)
    deadline = time.monotonic() + MODEL_BUDGET_SECONDS
    new_messages: list[dict] = [{"role": "user", "content": message}]
    fixed = fixed_tokens(new_messages[0])
    facts = fit_facts(context.facts, facts_room(memory.window, context.turns, fixed))
    window = memory.window.fit(context.turns, context.summary, fixed_tokens=fixed + facts_tokens(facts))
    system, history = system_prompt(facts, window.summary), window.messages
    facts_omitted = len(context.facts) - len(facts)
    usage = Usage()
    for round_number in range(1, MAX_TOOL_ROUNDS + 1):
        response = model.complete(
            system=system,
            messages=history + new_messages,
            tools=TOOLS,
            allow_tools=round_number < MAX_TOOL_ROUNDS,
            deadline=deadline,
        )
        usage += response.usage
        new_messages.append({"role": "assistant", "content": response.content})
        tool_calls = [block for block in response.content if block["type"] == "tool_use"]
        if response.stop_reason != "tool_use" or not tool_calls:
            break
        new_messages.append({"role": "user", "content": [
            _run_tool(memory, user_id, session_id, call) if number < MAX_TOOL_CALLS_PER_ANSWER
            else _tool_result(call, f"error: at most {MAX_TOOL_CALLS_PER_ANSWER} tool calls per answer; "
                                    "this one was not run", error=True)
            for number, call in enumerate(tool_calls)
        ]})
    turn = Turn(
        user_id=user_id,
        session_id=session_id,
        turn_id=new_turn_id(started),
        created_at=iso(started),
        messages=new_messages,
        usage=usage,
    )
    reply = reply_text(new_messages[-1])
    also = ()
    if idempotency:  # stored with the turn, in the same transaction
        also = (idempotency.record(turn, reply, len(window.turns), len(facts), window.summary is not None,
                                   facts_omitted),)
    return TurnResult(
        turn=turn,
        reply=reply,
        context_turns=len(window.turns),
        context_facts=len(facts),
        write=memory.append(turn, also),
        context_summary=window.summary is not None,
        context_facts_omitted=facts_omitted,
    )


def reply_text(message: dict) -> str:
    return "".join(block.get("text", "") for block in message["content"] if block["type"] == "text")


def _run_tool(memory: ResilientMemory, user_id: str, session_id: str, call: dict) -> dict:
    """The tools act for the caller only: user_id comes from the identity, never from the model."""
    tool_input = call.get("input") if isinstance(call.get("input"), dict) else {}
    key, value = tool_input.get("key"), tool_input.get("value")
    if call["name"] == "remember":
        try:
            outcome = memory.remember(user_id, session_id, key, value)
        except (InvalidFact, FactsLimitReached) as refusal:
            return _tool_result(call, f"error: {refusal}; nothing was stored", error=True)
        text = f"remembered {key}"
    elif call["name"] == "forget":
        if not valid_key(key):
            return _tool_result(call, f"error: key must match {FACT_KEY}", error=True)
        outcome = memory.forget(user_id, session_id, key)
        text = f"forgot {key}"
    else:
        return _tool_result(call, f"error: unknown tool {call['name']}", error=True)
    if outcome != "ok":
        return _tool_result(call, "error: memory is unavailable, nothing was changed", error=True)
    return _tool_result(call, text)


def _tool_result(call: dict, text: str, *, error: bool = False) -> dict:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": text, "is_error": error}
