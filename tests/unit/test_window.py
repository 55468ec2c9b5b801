"""Context-window policies: property tests over random histories with tool blocks, for every policy."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.prompt import FACTS_SHARE_PERCENT, facts_room, facts_tokens, read_facts, system_prompt
from agent.turn import TOOLS, fixed_tokens, run_turn
from fakes import ScriptedModel, text, tool_use
from memory.long_term import FACT_KEY, Fact, valid_key
from memory.registry import Fence
from memory.resilient import MemoryContext
from memory.turns import Turn, Usage
from memory.window import (
    STRATEGIES, SUMMARY_HEADING, Summary, WindowPolicy, estimate_tokens, summary_tokens, tool_safe, turn_tokens,
    well_formed,
)
from prompt_rules import api_problems

FACTS = [Fact("name", "Ada", "2026-01-02"), Fact("city", "Zürich", "2026-01-01")]
DAMAGES = ("no_answer", "lost_tool_use", "lost_tool_result", "no_user_message", "empty_content")
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=400)


@st.composite
def turn_messages(draw, index: int) -> list[dict]:
    """A turn as the tool loop writes it (user, [assistant tool_use, user tool_result]*, assistant),
    sometimes damaged the ways a stored history can be."""
    messages = [{"role": "user", "content": draw(words)}]
    for round_number in range(draw(st.integers(0, 3))):
        calls = [
            {"type": "tool_use", "id": f"toolu_{index}_{round_number}_{n}", "name": "remember",
             "input": {"key": "k", "value": draw(words)}}
            for n in range(draw(st.integers(1, 2)))
        ]
        preamble = [{"type": "text", "text": draw(words)}] if draw(st.booleans()) else []
        messages.append({"role": "assistant", "content": preamble + calls})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "ok"} for call in calls
        ]})
    messages.append({"role": "assistant", "content": [{"type": "text", "text": draw(words)}]})
    damage = draw(st.sampled_from((None,) * 6 + DAMAGES))
    tool_rounds = [i for i in range(1, len(messages) - 1, 2)]
    if damage == "no_answer":
        messages.pop()
    elif damage == "lost_tool_use" and tool_rounds:
        messages[draw(st.sampled_from(tool_rounds))]["content"] = [{"type": "text", "text": "gone"}]
    elif damage == "lost_tool_result" and tool_rounds:
        del messages[draw(st.sampled_from(tool_rounds)) + 1]
    elif damage == "no_user_message":
        messages.pop(0)
    elif damage == "empty_content":
        messages[-1]["content"] = []
    return messages


@st.composite
def histories(draw) -> list[Turn]:
    return [
        Turn(user_id="u", session_id="s", turn_id=f"{index + 1:013d}-0000", created_at="t",
             messages=draw(turn_messages(index)), usage=Usage(draw(st.integers(0, 5000)), draw(st.integers(0, 2000))))
        for index in range(draw(st.integers(0, 25)))
    ]


summaries = st.none() | st.builds(
    lambda body: Summary(text=body, covered_through="0000000000000-0000", covered_turns=7, tokens=estimate_tokens(body)),
    words,
)
policies = st.builds(WindowPolicy, strategy=st.sampled_from(STRATEGIES), max_prompt_tokens=st.integers(0, 40_000))


@pytest.mark.slow
@given(history=histories(), summary=summaries, policy=policies, fixed=st.integers(0, 40_000))
@settings(max_examples=400)
def test_every_policy_keeps_the_prompt_valid_for_the_model_api(history, summary, policy, fixed):
    # Given any stored history, damaged or not, and any policy
    # When the window is cut for a new user message
    window = policy.fit(history, summary, fixed_tokens=fixed)
    prompt = window.messages + [{"role": "user", "content": "the new message"}]
    # Then the prompt obeys the API's rules and is the newest run of whole turns
    assert api_problems(prompt) == []
    assert window.turns == history[len(history) - len(window.turns):]


def near_a_cut(data, history: list[Turn], already: int) -> int:
    """A budget within a few tokens of where some turn would stop fitting: off-by-ones show there."""
    candidates = tool_safe(history)
    cut = data.draw(st.integers(0, len(candidates)))
    return max(0, already + sum(map(turn_tokens, candidates[cut:])) + data.draw(st.integers(-2, 2)))


@pytest.mark.slow
@given(history=histories(), summary=summaries, strategy=st.sampled_from(STRATEGIES[1:]),
       fixed=st.integers(0, 20_000), data=st.data())
@settings(max_examples=400)
def test_budgeted_policies_fill_the_budget_and_never_pass_it(history, summary, strategy, fixed, data):
    # Given a budget (often right at a turn boundary) and what the rest of the prompt already takes
    with_summary = summary_tokens(summary) if summary and strategy == "compaction" else 0
    budget = data.draw(st.integers(0, 40_000) | st.just(near_a_cut(data, history, fixed + with_summary)))
    policy = WindowPolicy(strategy=strategy, max_prompt_tokens=budget)
    # When the window is cut
    window = policy.fit(history, summary, fixed_tokens=fixed)
    used = fixed + sum(map(turn_tokens, window.turns)) + (summary_tokens(window.summary) if window.summary else 0)
    # Then it never passes the budget (when the fixed part fits at all)
    if fixed <= budget:
        assert used <= budget
    else:
        assert window.turns == [] and window.summary is None
    # And it stops only where the next older well-formed turn would not fit
    candidates = tool_safe(history)
    if len(window.turns) < len(candidates):
        assert used + turn_tokens(candidates[-len(window.turns) - 1]) > budget
    # And only compaction sends the summary: whenever it fits first
    fits = summary is not None and fixed + summary_tokens(summary) <= budget
    assert (window.summary is not None) == (strategy == "compaction" and fits)


@given(history=histories())
def test_last_k_cuts_only_after_the_newest_damaged_turn(history):
    # Given a history the read already cut to K turns, damaged here and there
    # When last_k cuts the window (it has no budget)
    window = WindowPolicy(strategy="last_k").fit(history, None, fixed_tokens=10**9)
    # Then it keeps every turn after the newest damaged one, and only those
    damaged = [index for index, turn in enumerate(history) if not well_formed(turn.messages)]
    assert window.turns == history[damaged[-1] + 1 if damaged else 0:]


class InMemory:
    """ResilientMemory's surface as run_turn uses it, over a fixed history."""

    def __init__(self, turns, summary, window, facts=FACTS):
        self.context = MemoryContext(turns=turns, facts=facts, summary=summary, fence=Fence("g", 0))
        self.window = window

    def load(self, user_id, session_id):
        return self.context

    def append(self, turn, fence=None, also=()):
        return "ok"

    def remember(self, *args):
        return "ok"

    forget = remember


def prompt_tokens(call: dict) -> int:
    """chars/4 of everything sent, measured on the request as a whole."""
    sent = json.dumps(call["messages"], ensure_ascii=False)
    return estimate_tokens(call["system"]) + estimate_tokens(json.dumps(TOOLS)) + estimate_tokens(sent)


@given(history=histories(), summary=summaries, strategy=st.sampled_from(STRATEGIES[1:]),
       message=st.text(min_size=1, max_size=16_000), rounds=st.integers(0, 3), data=st.data())
@settings(max_examples=150)
def test_every_model_call_of_a_turn_is_valid_and_within_the_budget(history, summary, strategy, message, rounds, data):
    # Given a stored history, a budget it nearly fills, and a model that runs the tool loop a few rounds
    fixed = fixed_tokens({"role": "user", "content": message})
    with_summary = summary_tokens(summary) if summary and strategy == "compaction" else 0
    budget = max(fixed, near_a_cut(data, history, fixed + with_summary))
    memory = InMemory(history, summary, WindowPolicy(strategy=strategy, max_prompt_tokens=budget))
    calls = [tool_use("remember", {"key": "colour", "value": "teal " * 99}, call_id=f"toolu_new_{n}") for n in range(rounds)]
    model = ScriptedModel(*calls, text("done"))
    # When the turn runs
    result = run_turn(memory=memory, model=model, user_id="u", session_id="s", message=message)
    # Then every prompt the model received is valid and within the budget, the tool loop included
    for call in model.calls:
        assert api_problems(call["messages"]) == []
        assert prompt_tokens(call) <= budget
    # And the response says whether a summary was in it
    assert result.context_summary == (SUMMARY_HEADING in model.calls[0]["system"])


@st.composite
def fact_lists(draw) -> list[Fact]:
    """Up to the default cap of facts, newest first as the store reads them: a few drawn whole, and
    many of one drawn size (in two-byte characters), so that they often overflow their share."""
    drawn = draw(st.lists(
        st.builds(Fact, key=st.from_regex(FACT_KEY, fullmatch=True).filter(valid_key), value=words,
                  updated_at=st.integers(0, 10**6).map(lambda n: f"{n:07d}")),
        max_size=10, unique_by=lambda fact: fact.key,
    ))
    many, size = draw(st.integers(0, 190)), draw(st.integers(1, 500))
    filler = [Fact(f"filler-{n}", "é" * size, f"{n * 5000:07d}") for n in range(many)]
    return sorted(drawn + filler, key=lambda fact: fact.updated_at, reverse=True)


@pytest.mark.slow
@given(history=histories(), facts=fact_lists(), strategy=st.sampled_from(STRATEGIES[1:]),
       message=st.text(min_size=1, max_size=2_000), data=st.data())
@settings(max_examples=200)
def test_facts_keep_to_their_share_and_never_push_the_conversation_out(history, facts, strategy, message, data):
    # Given any number of facts of any size (newest first, as the store reads them), any history, and
    # a budget (often right where some turn would stop fitting without the facts)
    fixed = fixed_tokens({"role": "user", "content": message})
    budget = data.draw(st.integers(2_000, 60_000) | st.just(near_a_cut(data, history, fixed)))
    memory = InMemory(history, None, WindowPolicy(strategy=strategy, max_prompt_tokens=budget), facts)
    model = ScriptedModel(text("done"))
    # When a turn runs
    result = run_turn(memory=memory, model=model, user_id="u", session_id="s", message=message)
    [call] = model.calls
    sent = read_facts(call["system"])
    # Then the prompt is within the budget (whenever the rest of it fits at all)
    if fixed <= budget:
        assert prompt_tokens(call) <= budget
    # And the facts take at most their share, and are the newest ones that fit
    assert estimate_tokens(call["system"]) - estimate_tokens(system_prompt([])) <= budget * FACTS_SHARE_PERCENT // 100
    assert (result.context_facts, result.context_facts_omitted) == (len(sent), len(facts) - len(sent))
    assert sent == {fact.key: fact.value for fact in facts if fact.key in sent}
    # And none is left out when all of them fit
    if facts_tokens(facts) <= facts_room(memory.window, history, fixed) - 2:  # 2: one entry separator's slack
        assert len(sent) == len(facts)
    # And the newest turn is in the prompt whenever it would be without any facts
    without_facts = WindowPolicy(strategy=strategy, max_prompt_tokens=budget).fit(history, None, fixed_tokens=fixed)
    if without_facts.turns:
        assert result.context_turns >= 1
