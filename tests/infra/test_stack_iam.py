"""Least privilege: the agent touches its own two tables, its own secret or model."""

import re
from pathlib import Path

from infra.tables import COMPACTION_ACTIONS, TABLE_DATA_ACTIONS
from synthesis import AGENT_HANDLER, COMPACTOR_HANDLER, as_list, role_id, statement_for, statements

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"

# The IAM actions each DynamoDB API call of the memory library needs.
OPERATION_ACTIONS = {
    "get_item": {"dynamodb:GetItem"},
    "put_item": {"dynamodb:PutItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "query": {"dynamodb:Query"},
    "batch_get_item": {"dynamodb:BatchGetItem"},
    "batch_write_item": {"dynamodb:BatchWriteItem"},
    # A transaction is authorised item by item, by the actions of the items it holds.
    "transact_write_items": {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    },
    "transact_get_items": {"dynamodb:GetItem"},
}


def test_table_actions_are_scoped_to_the_two_table_arns(synth):
    statement = statement_for(synth, "dynamodb:PutItem")

    assert sorted(as_list(statement["Action"])) == sorted(TABLE_DATA_ACTIONS)
    assert sorted(r["Fn::GetAtt"][0] for r in statement["Resource"]) == sorted(
        [synth.output_ref("SessionsTableName"), synth.output_ref("LongTermTableName")]
    )
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in statement["Resource"])


def test_no_index_is_granted_every_read_is_keyed_on_the_tables(synth):
    assert not any("/index/" in str(s["Resource"]) for s in statements(synth))


def test_the_secret_is_read_only_and_only_the_stacks_own(synth):
    statement = statement_for(synth, "secretsmanager:GetSecretValue")

    assert sorted(statement["Action"]) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    assert statement["Resource"] == {"Ref": synth.output_ref("AnthropicApiKeySecretArn")}
    assert not any("bedrock:InvokeModel" in as_list(s["Action"]) for s in statements(synth))


def test_bedrock_variant_may_invoke_only_the_configured_model(variant):
    statement = statement_for(variant, "bedrock:InvokeModel")
    profile = f"global.{MODEL}"

    assert statement["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert statement["Resource"] == [
        # the inference profile, in this stack's region and account
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":bedrock:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    f":inference-profile/{profile}",
                ],
            ]
        },
        # the one model it routes to, in whichever region the profile picks
        {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, f":bedrock:*::foundation-model/{MODEL}"],
            ]
        },
    ]
    assert not any(s for s in statements(variant) if "secretsmanager:GetSecretValue" in as_list(s["Action"]))


def test_only_xray_and_list_streams_have_a_wildcard_resource_and_no_managed_policy_is_attached(synth, variant):
    xray = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    for template, handler, wildcard_actions in (
        (synth, AGENT_HANDLER, xray),
        (synth, COMPACTOR_HANDLER, sorted(["dynamodb:ListStreams", *xray])),
        (variant, AGENT_HANDLER, xray),
    ):
        wildcard = [s for s in statements(template, handler) if s["Resource"] == "*"]
        assert [sorted(s["Action"]) for s in wildcard] == [wildcard_actions]
        role = template.template["Resources"][role_id(template, handler)]
        assert "ManagedPolicyArns" not in role["Properties"]


def test_the_compactor_reads_the_sessions_stream_and_writes_summaries_to_that_table_only(synth):
    sessions = synth.output_ref("SessionsTableName")
    data = statement_for(synth, "dynamodb:PutItem", COMPACTOR_HANDLER)
    stream = statement_for(synth, "dynamodb:GetRecords", COMPACTOR_HANDLER)

    assert sorted(as_list(data["Action"])) == sorted(COMPACTION_ACTIONS)
    assert data["Resource"] == {"Fn::GetAtt": [sessions, "Arn"]}
    assert stream["Resource"] == {"Fn::GetAtt": [sessions, "StreamArn"]}
    assert not any("dynamodb" in str(s["Action"]) and "LongTerm" in str(s["Resource"])
                   for s in statements(synth, COMPACTOR_HANDLER))


def test_every_dynamodb_call_of_the_code_is_granted():
    # Given every DynamoDB client call in the Lambdas' code (memory library, idempotency records); not
    # memory/tables.py, the control-plane helper that creates tables for laptops and tests (no function
    # calls it: the stack creates the tables)
    calls = set()
    memory = [source for source in (FUNCTIONS_DIR / "memory").rglob("*.py") if source.name != "tables.py"]
    for source in [*memory, FUNCTIONS_DIR / "agent" / "idempotency.py"]:
        calls |= set(re.findall(r"client\.(\w+)\(", source.read_text()))
    assert calls, "no DynamoDB call found: has the memory library moved?"

    # Then the stack grants on the tables exactly the actions those calls need: none missing, none unused
    unknown = calls - set(OPERATION_ACTIONS)
    assert not unknown, f"add the IAM actions of {unknown} to OPERATION_ACTIONS and the grant"
    needed = set().union(*(OPERATION_ACTIONS[c] for c in calls))
    assert needed <= set(TABLE_DATA_ACTIONS), f"not granted: {needed - set(TABLE_DATA_ACTIONS)}"
    assert set(TABLE_DATA_ACTIONS) <= needed, f"granted but never called: {set(TABLE_DATA_ACTIONS) - needed}"
