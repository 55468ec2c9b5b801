import pytest

from client import as_user, raw

# 300 characters of preferences this API does not implement (RFC 7240 section 2: ignored).
UNKNOWN_PREFERENCES = "handling=lenient, wait=10, return=minimal; note=" + "x" * 252

BAD_TURNS = [
    ("malformed json", "/sessions/s1/messages", b'{"message": ', 400),
    ("missing message", "/sessions/s1/messages", b"{}", 422),
    ("empty message", "/sessions/s1/messages", b'{"message": ""}', 422),
    ("blank message", "/sessions/s1/messages", b'{"message": "   "}', 422),
    ("non-string message", "/sessions/s1/messages", b'{"message": 42}', 422),
    ("list body", "/sessions/s1/messages", b'["hello"]', 422),
    ("extra field", "/sessions/s1/messages", b'{"message": "hi", "user_id": "someone"}', 422),
    ("1 MB message", "/sessions/s1/messages", b'{"message": "' + b"x" * 1_000_000 + b'"}', 413),
    ("just over the cap", "/sessions/s1/messages", b'{"message": "' + b"x" * 16_001 + b'"}', 413),
    ("session id with /", "/sessions/a%2Fb/messages", b'{"message": "hi"}', 422),
    ("200-character session id", "/sessions/" + "a" * 200 + "/messages", b'{"message": "hi"}', 422),
    ("invalid utf-8", "/sessions/s1/messages", b'{"message": "\xff\xfe"}', 400),
    ("lone surrogate", "/sessions/s1/messages", b'{"message": "\\ud800"}', None),
]


@pytest.mark.parametrize("name,path,body,status", BAD_TURNS, ids=[b[0] for b in BAD_TURNS])
def test_bad_input_gets_a_json_4xx_and_stores_nothing(api, user, name, path, body, status):
    response = api.post(path, content=body, headers=as_user(user) | {"Content-Type": "application/json"})
    if status is None:  # accepted or refused, but never a server error
        assert response.status_code < 500
    else:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error", "message"}
    if response.status_code >= 400:
        assert api.get("/sessions", headers=as_user(user)).json() == {"sessions": []}


def test_no_identity_is_api_gateways_401(api):
    # No token on a protected route: the JWT authorizer answers, the Lambda is never invoked.
    response = api.post("/sessions/s1/messages", json={"message": "hi"})
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


def test_an_identity_the_handler_refuses_is_its_own_401(api):
    response = api.get("/memory", headers=as_user("a\tb"))
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_unknown_route_is_api_gateways_json_404(api, user):
    response = api.get("/nope", headers=as_user(user))
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}


@pytest.mark.parametrize("key", [".", "..", "..."])
def test_a_fact_key_of_dots_only_is_refused(server_url, api, user, key):
    # Sent as it is: HTTP clients resolve "." and ".." away, so no client could delete such a fact later
    body = b'{"value": "v"}'
    request = (b"PUT /memory/%s HTTP/1.1\r\nHost: x\r\nX-Local-User: %s\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (key.encode(), user.encode(), len(body), body))
    status, answer = raw(server_url, request)
    assert status == 422, answer
    assert api.get("/memory", headers=as_user(user)).json() == {"facts": {}}


def test_a_fact_key_past_its_length_is_refused(api, user):
    assert api.put("/memory/" + "k" * 65, json={"value": "v"}, headers=as_user(user)).status_code == 422
    assert api.put("/memory/" + "k" * 64, json={"value": "v"}, headers=as_user(user)).status_code == 200


def test_a_long_unknown_preference_is_ignored(api, user):
    # Given a Prefer header of 300 characters, none of them a preference this API implements
    assert len(UNKNOWN_PREFERENCES) == 300
    response = api.post("/sessions/s1/messages", json={"message": "hi"},
                        headers=as_user(user) | {"Prefer": UNKNOWN_PREFERENCES})
    # Then the turn is answered as if it had none
    assert response.status_code == 200, response.text
    assert "preference-applied" not in response.headers and response.json()["reply"]


def test_respond_async_among_long_preferences_still_applies(api, user):
    response = api.post("/sessions/s1/messages", json={"message": "hi"},
                        headers=as_user(user) | {"Prefer": f"{UNKNOWN_PREFERENCES}, respond-async"})
    assert response.status_code == 202 and response.headers["preference-applied"] == "respond-async"


def test_respond_async_inside_a_quoted_value_is_no_preference(api, user):
    response = api.post("/sessions/s1/messages", json={"message": "hi"},
                        headers=as_user(user) | {"Prefer": 'note="see, respond-async; now"'})
    assert response.status_code == 200, response.text
