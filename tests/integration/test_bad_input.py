import pytest

from client import as_user

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
