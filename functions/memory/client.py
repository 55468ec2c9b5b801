"""The one configuration of the agent's AWS clients: fail in seconds, not after botocore's default chain."""

import functools

import botocore.session
from botocore.config import Config

CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0
# Two attempts with standard-mode backoff (<= 1 s) bound a failing call to about 4 s
# (2 x (0.5 s connect + 1 s read) + 1 s), far inside API Gateway's 30 s.
MAX_ATTEMPTS = 2
MAX_POOL_CONNECTIONS = 32

DYNAMODB_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


@functools.cache
def session() -> botocore.session.Session:
    """botocore's, not boto3's: a client needs nothing boto3 adds, and importing boto3 (s3transfer
    with it) adds ~15 ms to every cold start (benchmarks/cold_start.py). One per process, so that a
    second client (Bedrock) reuses the service catalogue the first one loaded (a new session
    reloads it: 50 ms or more). Built on first use, so that moto is in place before it is."""
    return botocore.session.get_session()


def dynamodb_client():
    """botocore honours AWS_ENDPOINT_URL_DYNAMODB, so the same code talks to DynamoDB or DynamoDB Local."""
    return session().create_client("dynamodb", config=DYNAMODB_CONFIG)
