"""Creates the two memory tables from the one key schema (memory.schema), as the CDK tables are.

For a laptop, a test or a first try: on-demand tables with TTL on. A deployed stack gets its tables
from infra/tables.py instead, which adds what production wants (point-in-time recovery and retention
for long-term memory, the stream the compactor reads)."""

from botocore.config import Config

from .client import session
from .schema import LONG_TERM, SESSIONS, TableSchema

# Creating a table is control plane, not the request path: the data path's 1 s read timeout and
# 2 attempts made CreateTable time out on a busy machine, and its retry met ResourceInUseException.
CONTROL_PLANE_CONFIG = Config(
    connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 10}
)
TABLE_WAIT = {"Delay": 0.5, "MaxAttempts": 120}  # up to a minute for ACTIVE


def control_plane_client():
    return session().create_client("dynamodb", config=CONTROL_PLANE_CONFIG)


def create_table_request(name: str, schema: TableSchema) -> dict:
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in schema.key_attributes()],
        "KeySchema": [
            {"AttributeName": schema.partition_key, "KeyType": "HASH"},
            {"AttributeName": schema.sort_key, "KeyType": "RANGE"},
        ],
    }


def ensure_tables(client=None, *, sessions_table: str, long_term_table: str) -> None:
    """Creates whichever of the two tables is missing, and turns TTL on for the sessions table.
    Idempotent: a table that exists, or that a retried or concurrent call created, is fine.
    `client`: a DynamoDB client for control-plane calls (default: control_plane_client())."""
    client = client or control_plane_client()
    existing = set(client.list_tables()["TableNames"])
    for name, schema in ((sessions_table, SESSIONS), (long_term_table, LONG_TERM)):
        if name in existing:
            continue
        try:
            client.create_table(**create_table_request(name, schema))
        except client.exceptions.ResourceInUseException:
            pass
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig=TABLE_WAIT)
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"]
        if schema.ttl_attribute and ttl in ("DISABLED", "DISABLING"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.ttl_attribute},
            )
