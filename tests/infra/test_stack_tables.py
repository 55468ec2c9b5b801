"""The two memory tables: same keys as the code's schema module, and each its own lifecycle."""

from memory import schema


def key_schema(table_schema: schema.TableSchema) -> list[dict]:
    return [
        {"AttributeName": table_schema.partition_key, "KeyType": "HASH"},
        {"AttributeName": table_schema.sort_key, "KeyType": "RANGE"},
    ]


def test_sessions_table_has_the_schema_modules_keys_no_index_and_ttl(synth):
    # Given the sessions table of the template and the schema the code and local bootstrap use
    table = synth.template["Resources"][synth.output_ref("SessionsTableName")]["Properties"]

    # Then keys and TTL attribute are exactly the schema's, every key a string
    assert table["KeySchema"] == key_schema(schema.SESSIONS)
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (name, "S") for name in schema.SESSIONS.key_attributes()
    }
    # no index: erasure and listing read the base table consistently (memory.conversation)
    assert "GlobalSecondaryIndexes" not in table
    ttl = {"AttributeName": schema.SESSIONS.ttl_attribute, "Enabled": True}
    assert table["TimeToLiveSpecification"] == ttl


def test_sessions_table_is_on_demand_encrypted_streamed_and_destroyed_with_the_stack(synth):
    resource = synth.template["Resources"][synth.output_ref("SessionsTableName")]
    table = resource["Properties"]

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}  # KMS, the AWS managed key
    # for the compactor, which needs only keys: no conversation text flows through the stream
    assert table["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}
    assert resource["DeletionPolicy"] == "Delete"


def test_long_term_table_has_the_schema_modules_keys_and_no_ttl(synth):
    table = synth.template["Resources"][synth.output_ref("LongTermTableName")]["Properties"]

    assert table["KeySchema"] == key_schema(schema.LONG_TERM)
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (name, "S") for name in schema.LONG_TERM.key_attributes()
    }
    assert schema.LONG_TERM.ttl_attribute is None
    assert "TimeToLiveSpecification" not in table
    assert "GlobalSecondaryIndexes" not in table


def test_long_term_table_survives_deletion_and_keeps_point_in_time_recovery(synth):
    resource = synth.template["Resources"][synth.output_ref("LongTermTableName")]
    table = resource["Properties"]

    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    assert table["DeletionProtectionEnabled"] is True
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
