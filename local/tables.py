"""Creates the memory tables locally from the same schema the CDK tables are built from."""

from memory.schema import LONG_TERM, SESSIONS, TableSchema


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


def ensure_tables(client, *, sessions_table: str, long_term_table: str) -> None:
    existing = set(client.list_tables()["TableNames"])
    for name, schema in ((sessions_table, SESSIONS), (long_term_table, LONG_TERM)):
        if name in existing:
            continue
        client.create_table(**create_table_request(name, schema))
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
        if schema.ttl_attribute:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.ttl_attribute},
            )
