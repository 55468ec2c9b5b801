import pytest

from memory.conversation import SECONDS_PER_DAY, registry_key, session_key
from memory.errors import SessionNotFound, WriteRejected
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
    with pytest.raises(WriteRejected):
        conversations.append(turn)
    history, _ = conversations.history("u1", "s1", limit=10)
    assert len(history) == 1


def test_delete_user_removes_all_their_sessions_only(conversations, clock):
    for session in ("a", "b"):
        conversations.append(make_turn(clock, 0, session=session))
    conversations.append(make_turn(clock, 0, user="u2", session="a"))
    assert conversations.delete_user("u1") == 2
    assert conversations.sessions("u1") == []
    assert [s.session_id for s in conversations.sessions("u2")] == ["a"]


def test_a_fenced_write_that_may_not_start_a_session_is_refused_once_it_is_gone(conversations, dynamodb, clock):
    # Given a session that was deleted
    conversations.append(make_turn(clock, 0))
    conversations.delete("u1", "s1")
    record = {"Put": {"TableName": "sessions", "Item": {"pk": {"S": session_key("u1", "s1")}, "sk": {"S": "STATUS#t"},
                                                        "expires_at": {"N": str(int(clock.now) + 60)}}}}
    # When a write that may not start a session comes late
    with pytest.raises(WriteRejected) as rejected:
        conversations.write_in_session("u1", "s1", [record], create_session=False)
    # Then it is refused as such, and nothing was stored
    assert rejected.value.session_gone
    assert dynamodb.scan(TableName="sessions")["Items"] == []


def test_every_fenced_write_moves_the_version_a_delete_checks(conversations, dynamodb, clock):
    conversations.append(make_turn(clock, 0))
    record = {"Put": {"TableName": "sessions", "Item": {"pk": {"S": session_key("u1", "s1")}, "sk": {"S": "STATUS#t"},
                                                        "expires_at": {"N": str(int(clock.now) + 60)}}}}
    conversations.write_in_session("u1", "s1", [record], create_session=False)
    entry = dynamodb.get_item(TableName="sessions", Key=registry_key("u1", "s1"))["Item"]
    assert entry["version"] == {"N": "2"} and entry["turn_count"] == {"N": "1"}
    # The entry outlives every item of its session, whatever order TTL deletes them in
    assert int(entry["expires_at"]["N"]) > int(clock.now) + 30 * SECONDS_PER_DAY
