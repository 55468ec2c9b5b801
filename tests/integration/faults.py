"""Faults injected at the wire: botocore's before-send hook answers instead of DynamoDB."""

import contextlib
import json

from botocore.awsrequest import AWSResponse


class _Body:
    def __init__(self, payload: bytes):
        self.payload = payload

    def stream(self, **_):
        yield self.payload


def dynamodb_error(status: int, error_type: str) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": "injected"})
    return AWSResponse("https://dynamodb.local", status, {"x-amzn-requestid": "injected"}, _Body(body.encode()))


THROTTLED = dynamodb_error(400, "ProvisionedThroughputExceededException")
SERVER_ERROR = dynamodb_error(500, "InternalServerError")


@contextlib.contextmanager
def failing(client, operation: str, response: AWSResponse):
    """Every `operation` call of `client` gets `response`; returns the list of attempts made."""
    attempts = []

    def answer(**kwargs):
        attempts.append(kwargs.get("request"))
        return response

    event = f"before-send.dynamodb.{operation}"
    client.meta.events.register(event, answer)
    try:
        yield attempts
    finally:
        client.meta.events.unregister(event, answer)
