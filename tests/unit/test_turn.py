import pytest

from agent.providers import ModelError, OfflineModel
from agent.turn import MAX_TOOL_ROUNDS, TOOLS, run_turn, system_prompt
from fakes import ScriptedModel, text, tool_use


def turn(memory, model, message="hello", user="u1", session="s1"):
    return run_turn(memory=memory, model=model, user_id=user, session_id=session, message=message)


def test_a_turn_sees_its_window_and_facts_and_is_stored(memory, facts):
    # Given a fact and an earlier turn
    facts.put("u1", "name", "Ada")
    turn(memory, ScriptedModel(text("first")))
    model = ScriptedModel(text("second"))
    # When the next turn runs
    result = turn(memory, model, "again")
    # Then the model saw the earlier turn and the fact, and the turn was stored
    [call] = model.calls
    assert [m["content"] for m in call["messages"] if m["role"] == "user"] == ["hello", "again"]
    assert "- name: Ada" in call["system"]
    assert (result.reply, result.context_turns, result.context_facts, result.write) == ("second", 1, 1, "ok")
    assert len(memory.conversations.load("u1", "s1", limit=10)) == 2


def test_the_tool_loop_stores_every_block_and_the_usage(memory, facts):
    model = ScriptedModel(tool_use("remember", {"key": "colour", "value": "teal"}), text("noted"))
    result = turn(memory, model, "remember that my colour is teal")
    assert facts.all("u1") == {"colour": "teal"}
    roles = [m["role"] for m in result.turn.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert result.turn.messages[2]["content"][0]["type"] == "tool_result"
    assert result.turn.usage.input_tokens == 20 and result.reply == "noted"


def test_tools_act_only_for_the_caller(memory, facts):
    # A model cannot name a user: the tool input has no user field that is honoured.
    model = ScriptedModel(tool_use("remember", {"key": "name", "value": "Eve", "user_id": "u2"}), text("ok"))
    turn(memory, model, user="u1")
    assert facts.all("u2") == {} and facts.all("u1") == {"name": "Eve"}


def test_bad_tool_input_is_a_tool_error_not_a_failed_turn(memory, facts):
    model = ScriptedModel(tool_use("remember", {"key": "Not A Key!", "value": "x"}), text("sorry"))
    result = turn(memory, model)
    assert result.turn.messages[2]["content"][0]["is_error"] is True
    assert facts.all("u1") == {} and result.reply == "sorry"


def test_the_tool_loop_is_bounded_and_ends_in_text(memory):
    model = ScriptedModel(*[tool_use("forget", {"key": "x"}, f"t{n}") for n in range(MAX_TOOL_ROUNDS - 1)], text("done"))
    result = turn(memory, model)
    assert len(model.calls) == MAX_TOOL_ROUNDS
    assert model.calls[-1]["allow_tools"] is False
    assert result.turn.messages[-1]["role"] == "assistant"


def test_a_model_failure_stores_nothing(memory):
    class Broken:
        def complete(self, **_):
            raise ModelError("overloaded", transient=True)

    with pytest.raises(ModelError):
        turn(memory, Broken())
    assert memory.conversations.load("u1", "s1", limit=10) == []


def test_the_offline_model_uses_memory_and_calls_remember(memory, facts):
    offline = OfflineModel()
    first = turn(memory, offline, "remember that my favourite colour is teal")
    assert facts.all("u1") == {"favourite_colour": "teal"}
    assert first.reply.startswith("[offline model]")
    later = turn(memory, offline, "what is my favourite colour?", session="s2")
    assert "0 earlier turns and 1 facts" in later.reply and "teal" in later.reply
    third = turn(memory, offline, "and now?", session="s2")
    assert "1 earlier turns" in third.reply


def test_the_system_prompt_lists_facts_sorted():
    assert system_prompt({"b": "2", "a": "1"}).endswith("- a: 1\n- b: 2")
    assert {t["name"] for t in TOOLS} == {"remember", "forget"}
