"""The one DynamoDB client configuration: fail in seconds, not after botocore's default chain."""

import boto3
from botocore.config import Config

CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0
# Two attempts with standard-mode backoff (<= 1 s) bound a failing call to ~4 s: inside the 5 s a
# read may take before the handler answers 503, and far inside API Gateway's 30 s.
MAX_ATTEMPTS = 2
MAX_POOL_CONNECTIONS = 32

DYNAMODB_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


def dynamodb_client():
    """boto3 honours AWS_ENDPOINT_URL_DYNAMODB, so the same code talks to DynamoDB or DynamoDB Local."""
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG)
