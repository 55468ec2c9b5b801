"""local.gateway as a WSGI application in front of a stand-in handler: what API Gateway answers when
the Lambda's result cannot be returned. (The HTTP behaviour through the multi-process server:
tests/integration/test_local_limits.py.)"""

import io
import json

from local.gateway import MAX_INVOCATION_PAYLOAD_BYTES, Gateway, Limits, routes_of


def call(handler, path="/health") -> tuple[str, bytes]:
    gateway = Gateway(handler, routes_of([], ["GET /health"]), limits=Limits(throttling=None))
    answered = {}
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO(b"")}
    body = b"".join(gateway(environ, lambda status, headers: answered.update(status=status)))
    return answered["status"], body


def result(body: str) -> dict:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": body}


def test_a_result_under_lambdas_quota_is_returned():
    status, body = call(lambda event, context: result(json.dumps({"status": "ok"})))
    assert (status, body) == ("200 OK", b'{"status": "ok"}')


def test_a_result_over_lambdas_quota_is_api_gateways_500():
    # Non-ASCII is escaped in the result's JSON: 12 bytes per emoji, so 6 MB / 12 of them is too many
    too_big = "😀" * (MAX_INVOCATION_PAYLOAD_BYTES // 12 + 1)
    status, body = call(lambda event, context: result(too_big))
    assert (status, json.loads(body)) == ("500 Internal Server Error", {"message": "Internal Server Error"})


def test_an_unhandled_exception_is_api_gateways_500():
    def failing(event, context):
        raise RuntimeError("boom")

    status, body = call(failing)
    assert (status, json.loads(body)) == ("500 Internal Server Error", {"message": "Internal Server Error"})
