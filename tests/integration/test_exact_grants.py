"""Each function's role is granted the DynamoDB actions of one tuple in infra/tables.py; these tests
record every DynamoDB call the function's own code makes on its routes and compare: an action the
code needs and the role lacks fails the deploy's first request, one the role holds and the code never
calls is a grant too many. (The compactor's: tests/unit/test_compactor.py.)"""

from dataclasses import asdict

from client import as_user
from dynamodb_actions import recorded_actions
from infra.tables import API_TABLE_ACTIONS, WORKER_TABLE_ACTIONS

ASYNC = {"Prefer": "respond-async"}


class LambdaContext:
    function_name, memory_limit_in_mb, aws_request_id = "worker", 512, "test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:worker:live"


def test_the_api_calls_exactly_its_grant(api, user, handler, monkeypatch):
    # Given an API whose asynchronous turns are only accepted (the worker's calls are the worker's)
    monkeypatch.setattr(handler, "dispatch", lambda job: None)
    me = as_user(user)
    with recorded_actions(handler.dynamodb) as actions:
        # When every route runs, the tools and idempotent replays included
        for message in ("hello", "remember that my colour is teal", "forget my colour"):
            assert api.post("/sessions/s/messages", json={"message": message}, headers=me).status_code == 200
        for _ in range(2):
            keyed = api.post("/sessions/s/messages", json={"message": "once"}, headers=me | {"Idempotency-Key": "k1"})
            assert keyed.status_code == 200
        accepted = api.post("/sessions/s/messages", json={"message": "later"}, headers=me | ASYNC)
        assert api.get(accepted.headers["Location"], headers=me).status_code == 200
        assert api.get("/sessions/s/messages", headers=me).status_code == 200
        assert api.get("/sessions", headers=me).status_code == 200
        assert api.put("/memory/name", json={"value": "Alice"}, headers=me).status_code == 200
        assert api.get("/memory", headers=me).status_code == 200
        assert api.delete("/memory/name", headers=me).status_code == 204
        assert api.delete("/sessions/s", headers=me).status_code == 204
        api.post("/sessions/t/messages", json={"message": "hello"}, headers=me)
        assert api.delete("/me", headers=me).status_code == 204
    # Then they need exactly the API function's grant
    assert actions == set(API_TABLE_ACTIONS)


def test_the_worker_calls_exactly_its_grant(api, user, handler, monkeypatch):
    # Given asynchronous turns accepted by the API, one that remembers a fact and one that forgets it
    jobs = []
    monkeypatch.setattr(handler, "dispatch", jobs.append)
    for message in ("remember that my colour is teal", "forget my colour"):
        api.post("/sessions/s/messages", json={"message": message}, headers=as_user(user) | ASYNC)
    from agent import worker

    with recorded_actions(worker.dynamodb) as actions:
        # When the worker Lambda runs them
        for job in jobs:
            worker.lambda_handler(asdict(job), LambdaContext())
    # Then they are done, and needed exactly the worker's grant
    for job in jobs:
        assert api.get(f"/sessions/s/turns/{job.turn_id}", headers=as_user(user)).json()["status"] == "done"
    assert actions == set(WORKER_TABLE_ACTIONS)
