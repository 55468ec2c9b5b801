"""Each adapter against its framework's own contract. None of the three frameworks publishes a
conformance suite for it (langchain-tests has none for chat histories; openai-agents and
strands-agents ship none), so these follow the documented contracts, and for the OpenAI Agents SDK
compare with its reference implementation, SQLiteSession, item for item.

Each test imports its framework: every pytest-xdist worker collects this module, and importing the
three frameworks takes seconds."""

import asyncio
import logging
import uuid

import pytest

import durable_memory
from frameworks import FRAMEWORKS, LONG_TERM_TABLE, SESSIONS_TABLE

pytestmark = pytest.mark.slow


@pytest.fixture
def memory(tables):
    return durable_memory.connect(sessions_table=SESSIONS_TABLE, long_term_table=LONG_TERM_TABLE)


@pytest.fixture
def user(memory):
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    yield user_id
    memory.erase_user(user_id)


# LangChain: BaseChatMessageHistory

def test_langchain_history_adds_reads_and_clears_through_the_async_api_too(memory, user):
    from langchain_core.messages import AIMessage, HumanMessage

    from durable_memory.adapters.langchain import DurableChatMessageHistory

    history = DurableChatMessageHistory(memory, user_id=user, session_id="s")

    async def exchange():
        await history.aadd_messages([HumanMessage("hi"), AIMessage("hello")])
        before = await history.aget_messages()
        await history.aclear()
        return before, await history.aget_messages()

    assert asyncio.run(exchange()) == ([HumanMessage("hi"), AIMessage("hello")], [])


def test_langchain_user_and_ai_messages_added_one_by_one_make_one_turn(memory, user):
    from langchain_core.messages import AIMessage, HumanMessage

    from durable_memory.adapters.langchain import DurableChatMessageHistory

    history = DurableChatMessageHistory(memory, user_id=user, session_id="s")
    history.add_user_message("hi")
    # The question is there at once for this object; it is stored with its answer
    assert history.messages == [HumanMessage("hi")]
    history.add_ai_message("hello")
    assert DurableChatMessageHistory(memory, user_id=user, session_id="s").messages == [HumanMessage("hi"),
                                                                                         AIMessage("hello")]
    assert len(memory.conversations.history(user, "s", limit=10)[0]) == 1


def test_langchain_clear_of_a_session_never_used_is_fine(memory, user):
    from durable_memory.adapters.langchain import DurableChatMessageHistory

    DurableChatMessageHistory(memory, user_id=user, session_id="never").clear()


# OpenAI Agents SDK: Session

def test_openai_session_is_the_sdks_session_protocol(memory, user):
    from agents.memory import Session

    from durable_memory.adapters.openai_agents import DurableSession

    assert isinstance(DurableSession(memory, user_id=user, session_id="s"), Session)


def test_openai_session_reads_as_sqlite_session_does_less_orphaned_tool_outputs(memory, user):
    from agents import SQLiteSession

    from durable_memory.adapters.openai_agents import DurableSession

    # Given the same three turns added to SQLiteSession (the SDK's reference) and to DurableSession
    turns = [FRAMEWORKS["openai_agents"].turn(n) for n in range(3)]
    reference = SQLiteSession("s")
    ours = DurableSession(memory, user_id=user, session_id="s")

    async def reads(session):
        for turn in turns:
            await session.add_items(turn)
        return [await session.get_items(limit) for limit in range(1, 17)] + [await session.get_items()]

    expected, got = asyncio.run(reads(reference)), asyncio.run(reads(ours))
    # Then every read is the reference's, except that none starts with a tool output whose call is cut off
    for want, have in zip(expected, got):
        while want and want[0].get("type") == "function_call_output":
            want = want[1:]
        assert have == want


def test_openai_pop_item_takes_back_the_turn_in_progress_and_leaves_stored_turns(memory, user):
    from durable_memory.adapters.openai_agents import DurableSession

    session = DurableSession(memory, user_id=user, session_id="s")
    turn = FRAMEWORKS["openai_agents"].turn(1)

    async def pops():
        empty = await session.pop_item()
        await session.add_items(turn)
        await session.add_items(turn[:2])
        taken = [await session.pop_item(), await session.pop_item()]
        with pytest.raises(NotImplementedError):
            await session.pop_item()
        return empty, taken, await session.get_items()

    assert asyncio.run(pops()) == (None, [turn[1], turn[0]], turn)


# Strands Agents: SessionManager

def test_strands_manager_takes_one_agent(memory, user):
    from strands import Agent
    from strands.types.exceptions import SessionException

    from durable_memory.adapters.strands import DurableSessionManager
    from offline.strands_model import OfflineModel

    manager = DurableSessionManager(memory, user_id=user, session_id="s")
    Agent(model=OfflineModel(), callback_handler=None, session_manager=manager, agent_id="first")
    with pytest.raises(SessionException):
        Agent(model=OfflineModel(), callback_handler=None, session_manager=manager, agent_id="second")


def test_strands_redaction_rewrites_the_turn_in_progress(memory, user):
    from strands.types.exceptions import SessionException

    from durable_memory.adapters.strands import DurableSessionManager

    manager = DurableSessionManager(memory, user_id=user, session_id="s")
    with pytest.raises(SessionException):
        manager.redact_latest_message({"role": "user", "content": [{"text": "[redacted]"}]}, agent=None)
    manager.append_message({"role": "user", "content": [{"text": "my card is 4111..."}]}, agent=None)
    manager.redact_latest_message({"role": "user", "content": [{"text": "[redacted]"}]}, agent=None)
    manager.append_message({"role": "assistant", "content": [{"text": "I cannot help with that."}]}, agent=None)
    (turn,) = memory.conversations.history(user, "s", limit=10)[0]
    assert turn.messages[0]["content"] == [{"type": "text", "text": "[redacted]"}]


def test_strands_turn_that_failed_is_not_stored_and_the_next_one_is(memory, user, caplog):
    from strands import Agent

    from durable_memory.adapters.strands import DurableSessionManager
    from offline.strands_model import OfflineModel

    class FailsOnce(OfflineModel):
        async def stream(self, *args, **kwargs):
            if not self.calls:
                self.calls += 1
                raise RuntimeError("model unavailable")
            async for event in super().stream(*args, **kwargs):
                yield event

    # Given an agent whose model fails on the first question
    agent = Agent(model=FailsOnce(), callback_handler=None,
                  session_manager=DurableSessionManager(memory, user_id=user, session_id="s"))
    with pytest.raises(RuntimeError):
        agent("first question")
    # When the user asks again
    with caplog.at_level(logging.WARNING, logger="durable_memory"):
        agent("second question")
    # Then only the answered turn is stored, and the unanswered one was logged as such
    (turn,) = memory.conversations.history(user, "s", limit=10)[0]
    assert turn.messages[0]["content"] == [{"type": "text", "text": "second question"}]
    assert [r.getMessage() for r in caplog.records] == ["memory_turn_unanswered"]
