import pytest
from botocore.exceptions import ClientError

from agent.observability import logger
from fakes import captured_logs
from memory.errors import MemoryUnavailable
from memory.resilient import ResilientMemory
from test_conversation_store import make_turn


class FailingStore:
    """Fails every call the way botocore does when DynamoDB throttles."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            error = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, name)
            raise MemoryUnavailable("ClientError") from error

        return fail


def test_facts_are_per_user_and_permanent(facts):
    facts.put("u1", "name", "Ada")
    facts.put("u1", "city", "Paris")
    facts.put("u2", "name", "Grace")
    assert facts.all("u1") == {"name": "Ada", "city": "Paris"}
    assert facts.delete("u1", "city") is True
    assert facts.delete("u1", "city") is False
    assert facts.all("u1") == {"name": "Ada"}
    assert facts.delete_user("u1") == 1
    assert facts.all("u1") == {} and facts.all("u2") == {"name": "Grace"}


def test_load_reads_window_and_facts(memory, conversations, facts, clock):
    for n in range(5):
        conversations.append(make_turn(clock, n))
    facts.put("u1", "name", "Ada")
    context = memory.load("u1", "s1")
    assert len(context.turns) == 3 and context.facts == {"name": "Ada"}


def test_a_failed_append_is_suppressed_and_logged_once_without_user_text(facts, clock):
    # Given memory whose conversation store fails
    memory = ResilientMemory(conversations=FailingStore(), facts=facts, logger=logger, max_turns=3)
    turn = make_turn(clock, 0)
    # When a turn is appended
    with captured_logs(logger) as lines:
        outcome = memory.append(turn)
    # Then the caller learns it, and exactly one WARNING line says why, with no user text in it
    assert outcome == "suppressed"
    [line] = lines()
    assert line["level"] == "WARNING" and line["message"] == "memory_write_suppressed"
    assert line["session_id"] == "s1" and line["error"] == "ClientError"
    assert "message 0" not in str(line)


def test_a_failed_read_propagates(facts):
    memory = ResilientMemory(conversations=FailingStore(), facts=facts, logger=logger, max_turns=3)
    with pytest.raises(MemoryUnavailable):
        memory.load("u1", "s1")


def test_the_alarm_drill_suppresses_writes_until_it_ends(conversations, facts, clock):
    memory = ResilientMemory(
        conversations=conversations, facts=facts, logger=logger, max_turns=3,
        write_drill_until=clock.now + 60, clock=clock,
    )
    with captured_logs(logger) as lines:
        assert memory.append(make_turn(clock, 0)) == "suppressed"
        assert memory.remember("u1", "s1", "name", "Ada") == "suppressed"
    assert [l["error"] for l in lines()] == ["WriteDrillFault", "WriteDrillFault"]
    clock.now += 120
    assert memory.append(make_turn(clock, 1)) == "ok"
    assert [t.messages[0]["content"] for t in conversations.load("u1", "s1", limit=5)] == ["message 1"]
