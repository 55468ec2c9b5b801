import pytest

from client import as_user, say


def test_two_users_two_sessions_five_turns_each(api, user, handler):
    # Given two users
    other = user + "-b"
    try:
        for who in (user, other):
            for session in ("alpha", "beta"):
                for n in range(5):
                    # When each turn is sent
                    response = say(api, who, session, f"{who} {session} turn {n}")
                    # Then every reply arrives and the window grows to min(turns so far, K)
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body["context"]["turns"] == min(n, handler.settings.max_turns)
                    assert body["memory"] == {"write": "ok"}
                # And the whole history comes back in order
                history = api.get(f"/sessions/{session}/messages", headers=as_user(who)).json()
                users_said = [m["content"] for m in history["messages"] if m["role"] == "user"]
                assert users_said == [f"{who} {session} turn {n}" for n in range(5)]
        # And user B cannot see user A's session
        assert api.get("/sessions/alpha/messages", headers=as_user("stranger")).status_code == 404
        assert api.get("/sessions/alpha/messages", headers=as_user(other)).json()["messages"][0]["content"].startswith(other)
        assert [s["session_id"] for s in api.get("/sessions", headers=as_user(user)).json()["sessions"]] == ["beta", "alpha"]
    finally:
        api.delete("/me", headers=as_user(other))


def test_a_fact_put_by_the_api_reaches_a_turn_in_a_new_session(api, user):
    assert api.put("/memory/name", json={"value": "Ada"}, headers=as_user(user)).status_code == 200
    body = say(api, user, "fresh", "hi").json()
    assert body["context"]["facts"] == 1
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {"name": "Ada"}}


def test_the_offline_model_remembers_through_a_real_tool_call(api, user):
    say(api, user, "one", "remember that my favourite colour is teal")
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {"favourite_colour": "teal"}}
    body = say(api, user, "two", "what is my favourite colour?").json()
    assert body["context"]["facts"] == 1 and "teal" in body["reply"]


def test_the_offline_model_remembers_without_that_and_recalls_the_first_message(api, user):
    say(api, user, "one", "remember my city is Lyon")
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {"city": "Lyon"}}
    assert "your city is Lyon" in say(api, user, "one", "what is my city?").json()["reply"]
    assert "you first said: remember my city is Lyon" in say(api, user, "one", "What did I say first?").json()["reply"]


def test_deleting_a_session_and_a_fact(api, user):
    say(api, user, "gone", "hello")
    api.put("/memory/city", json={"value": "Paris"}, headers=as_user(user))
    assert api.delete("/sessions/gone", headers=as_user(user)).status_code == 204
    assert api.get("/sessions/gone/messages", headers=as_user(user)).status_code == 404
    assert api.delete("/sessions/gone", headers=as_user(user)).status_code == 404
    assert api.delete("/memory/city", headers=as_user(user)).status_code == 204
    assert api.delete("/memory/city", headers=as_user(user)).status_code == 404


def test_erasure_removes_every_session_and_fact(api, user):
    say(api, user, "a", "remember that my name is Ada")
    say(api, user, "b", "hello")
    assert api.delete("/me", headers=as_user(user)).status_code == 204
    assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {}}
    assert api.get("/sessions/a/messages", headers=as_user(user)).status_code == 404


def test_history_is_paginated(api, user):
    for n in range(5):
        say(api, user, "paged", f"m{n}")
    seen, token = [], None
    while True:
        params = {"limit": 2} | ({"next_token": token} if token else {})
        page = api.get("/sessions/paged/messages", params=params, headers=as_user(user)).json()
        seen += [m["content"] for m in page["messages"] if m["role"] == "user"]
        token = page["next_token"]
        if not token:
            break
    assert seen == [f"m{n}" for n in range(5)]


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
def test_public_routes_need_no_identity(api, path):
    response = api.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
