import pytest

from memory.errors import Erased, MemoryUnavailable, SessionNotFound
from memory.keys import mark_key, registry_key, session_key
from memory.registry import SECONDS_PER_DAY
from memory.turns import Usage
from stores import make_turn


def test_load_returns_the_last_k_turns_oldest_first(conversations, clock):
    # Given a session with five turns
    for n in range(5):
        conversations.append(make_turn(clock, n))
    # When the window of three is loaded
    turns = conversations.load("u1", "s1", limit=3)
    # Then it holds the three newest, in conversation order, with their usage
    assert [t.messages[0]["content"] for t in turns] == ["message 2", "message 3", "message 4"]
    assert turns[-1].usage == Usage(104, 10)


def test_each_turn_is_its_own_item_with_a_ttl(conversations, dynamodb, clock):
    turn = make_turn(clock, 0)
    conversations.append(turn)
    items = dynamodb.query(
        TableName="sessions",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": session_key("u1", "s1")}},
    )["Items"]
    turn_item = next(i for i in items if i["sk"]["S"].startswith("TURN#"))
    assert int(turn_item["expires_at"]["N"]) == int(clock.now) + 30 * SECONDS_PER_DAY
    assert {i["sk"]["S"] for i in items} == {"TURN#" + turn.turn_id}


def test_expired_turns_are_never_returned(conversations, clock):
    # Given two turns, the first written more than 30 days before the second
    conversations.append(make_turn(clock, 0))
    clock.now += 31 * SECONDS_PER_DAY
    conversations.append(make_turn(clock, 1))
    # When they are read after the first expired, before DynamoDB deleted it
    window = conversations.load("u1", "s1", limit=10)
    history, _ = conversations.history("u1", "s1", limit=10)
    # Then only the live turn is returned
    assert [t.messages[0]["content"] for t in window] == ["message 1"]
    assert [t.messages[0]["content"] for t in history] == ["message 1"]


def test_history_pages_through_every_turn_in_order(conversations, clock):
    for n in range(7):
        conversations.append(make_turn(clock, n))
    seen, token = [], None
    while True:
        page, token = conversations.history("u1", "s1", limit=3, next_token=token)
        seen += [t.messages[0]["content"] for t in page]
        if not token:
            break
    assert seen == [f"message {n}" for n in range(7)]


def test_a_token_cannot_address_another_partition(conversations):
    with pytest.raises(ValueError):
        conversations.history("u1", "s1", limit=3, next_token="not-a-token")


def test_sessions_are_listed_newest_first_and_only_the_callers(conversations, clock):
    conversations.append(make_turn(clock, 0, session="old"))
    conversations.append(make_turn(clock, 1, session="new"))
    conversations.append(make_turn(clock, 2, user="u2", session="theirs"))
    listed = conversations.sessions("u1")
    assert [s.session_id for s in listed] == ["new", "old"]
    assert listed[0].turns == 1


def test_unknown_and_foreign_sessions_are_not_found(conversations, clock):
    conversations.append(make_turn(clock, 0, user="u1", session="mine"))
    with pytest.raises(SessionNotFound):
        conversations.history("u2", "mine", limit=10)
    with pytest.raises(SessionNotFound):
        conversations.delete("u2", "mine")
    assert conversations.load("u2", "mine", limit=10) == []


def test_delete_removes_every_item_of_the_session(conversations, clock):
    for n in range(30):  # more than one BatchWriteItem
        conversations.append(make_turn(clock, n))
    conversations.append(make_turn(clock, 0, session="other"))
    conversations.delete("u1", "s1")
    with pytest.raises(SessionNotFound):
        conversations.history("u1", "s1", limit=10)
    assert [s.session_id for s in conversations.sessions("u1")] == ["other"]


def test_the_same_turn_is_never_stored_twice(conversations, clock):
    turn = make_turn(clock, 0)
    conversations.append(turn)
    with pytest.raises(MemoryUnavailable):
        conversations.append(turn)
    history, _ = conversations.history("u1", "s1", limit=10)
    assert len(history) == 1


def test_delete_user_removes_all_their_sessions_only(conversations, clock):
    for session in ("a", "b"):
        conversations.append(make_turn(clock, 0, session=session))
    conversations.append(make_turn(clock, 0, user="u2", session="a"))
    assert conversations.erase_user("u1", conversations.registry.advance("u1")) == 2
    assert conversations.sessions("u1") == []
    assert [s.session_id for s in conversations.sessions("u2")] == ["a"]


def test_a_turn_of_a_session_deleted_after_it_began_is_not_stored(conversations, dynamodb, clock):
    # Given a turn that read its session's fence, then the session was deleted
    conversations.append(make_turn(clock, 0))
    fence = conversations.registry.open("u1", "s1")
    conversations.delete("u1", "s1")
    # When the turn stores its answer
    with pytest.raises(Erased):
        conversations.append(make_turn(clock, 1), fence)
    # Then it is refused and removed: nothing of the session is left
    assert dynamodb.scan(TableName="sessions")["Items"] == []


def test_a_turn_that_began_before_the_users_erasure_is_not_stored(conversations, dynamodb, clock):
    # Given a turn that read its fence before DELETE /me moved the user's mark and erased the session
    conversations.append(make_turn(clock, 0))
    fence = conversations.registry.open("u1", "s1")
    conversations.erase_user("u1", conversations.registry.advance("u1"))
    # When it stores its answer, even into a session of the same name that a new turn started
    conversations.append(make_turn(clock, 2))
    with pytest.raises(Erased):
        conversations.append(make_turn(clock, 1), fence)
    # Then only the new turn is left, beside the mark (which names nobody)
    assert [t.messages[0]["content"] for t in conversations.load("u1", "s1", limit=10)] == ["message 2"]
    keys = {item["sk"]["S"] for item in dynamodb.scan(TableName="sessions")["Items"]}
    assert len(keys) == 3 and mark_key("u1")["sk"]["S"] in keys
    assert all("u1" not in item["pk"]["S"] for item in dynamodb.scan(TableName="sessions")["Items"]
               if item["sk"]["S"] == mark_key("u1")["sk"]["S"])


def test_the_entry_counts_turns_and_outlives_every_item_of_its_session(conversations, dynamodb, clock):
    conversations.append(make_turn(clock, 0))
    conversations.append(make_turn(clock, 1))
    entry = dynamodb.get_item(TableName="sessions", Key=registry_key("u1", "s1"))["Item"]
    assert entry["turn_count"] == {"N": "2"}
    # The entry outlives every item of its session, whatever order TTL deletes them in
    assert int(entry["expires_at"]["N"]) > int(clock.now) + 30 * SECONDS_PER_DAY
