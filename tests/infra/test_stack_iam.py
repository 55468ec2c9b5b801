"""Least privilege: each function's role holds exactly what its code (or Lambda, for it) calls.

The DynamoDB actions come from one tuple per function (infra/tables.py); what the code really calls
is recorded against those same tuples in tests/integration/test_exact_grants.py."""

from infra.tables import API_TABLE_ACTIONS, COMPACTOR_TABLE_ACTIONS, WORKER_TABLE_ACTIONS
from synthesis import AGENT_HANDLER, COMPACTOR_HANDLER, as_list, role_id, statement_for, statements

WORKER_HANDLER = "agent.worker.lambda_handler"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
LOG_WRITES = ("logs:CreateLogStream", "logs:PutLogEvents")
# Active tracing: these two take no resource-level permission.
XRAY = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
# What CDK grants for an SQS on-failure destination (Lambda sends with the function's role).
DEAD_LETTER_SENDS = ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage")
STREAM_READS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")


def grants(synth, handler: str) -> dict[str, list]:
    """Action -> the resources it is granted on, over every Allow of the role's policy."""
    granted: dict[str, list] = {}
    for statement in statements(synth, handler):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for action in as_list(statement["Action"]):
            granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    return granted


def get_att(logical_id: str, attribute: str = "Arn") -> dict:
    return {"Fn::GetAtt": [logical_id, attribute]}


def logical_id(synth, resource_type: str, prefix: str) -> str:
    (found,) = [k for k in synth.resources(resource_type) if k.startswith(prefix)]
    return found


def expected(synth, handler: str, table_actions: tuple[str, ...], *, tables: list[str], extra: dict) -> dict:
    """The grants a function of this stack needs: its logs, X-Ray, its table actions, its model's key."""
    log_group = synth.function(handler)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    needed = {action: [get_att(log_group)] for action in LOG_WRITES}
    needed |= {action: ["*"] for action in XRAY}
    needed |= {action: [get_att(t) for t in tables] for action in table_actions}
    needed["secretsmanager:GetSecretValue"] = [{"Ref": synth.output_ref("AnthropicApiKeySecretArn")}]
    return needed | extra


def sorted_grants(granted: dict) -> dict:
    return {action: sorted(map(str, resources)) for action, resources in sorted(granted.items())}


def test_each_role_holds_exactly_what_its_function_calls(synth):
    # Given the template's tables, queues and the worker's alias
    sessions, long_term = synth.output_ref("SessionsTableName"), synth.output_ref("LongTermTableName")
    both = sorted([long_term, sessions])
    worker_alias = logical_id(synth, "AWS::Lambda::Alias", "Worker")
    worker_dead_letters = logical_id(synth, "AWS::SQS::Queue", "WorkerDeadLetters")
    compactor_dead_letters = logical_id(synth, "AWS::SQS::Queue", "CompactorDeadLetters")
    roles = {
        # The API invokes the worker's alias only: not $LATEST, not another version.
        AGENT_HANDLER: expected(synth, AGENT_HANDLER, API_TABLE_ACTIONS, tables=both, extra={
            "lambda:InvokeFunction": [{"Ref": worker_alias}]}),
        WORKER_HANDLER: expected(synth, WORKER_HANDLER, WORKER_TABLE_ACTIONS, tables=both, extra={
            action: [get_att(worker_dead_letters)] for action in DEAD_LETTER_SENDS}),
        COMPACTOR_HANDLER: expected(synth, COMPACTOR_HANDLER, COMPACTOR_TABLE_ACTIONS, tables=[sessions], extra={
            **{action: [get_att(compactor_dead_letters)] for action in DEAD_LETTER_SENDS},
            **{action: [get_att(sessions, "StreamArn")] for action in STREAM_READS},
            "dynamodb:ListStreams": ["*"]}),
    }
    for handler, needed in roles.items():
        # Then its role's policy grants exactly that: nothing missing, nothing more
        assert sorted_grants(grants(synth, handler)) == sorted_grants(needed), handler
        role = synth.template["Resources"][role_id(synth, handler)]["Properties"]
        assert "ManagedPolicyArns" not in role and "Policies" not in role, handler


def test_the_bedrock_variant_may_invoke_only_the_configured_model(variant):
    statement = statement_for(variant, "bedrock:InvokeModel")
    profile = f"global.{MODEL}"

    assert statement["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert statement["Resource"] == [
        # the inference profile, in this stack's region and account
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":bedrock:", {"Ref": "AWS::Region"}, ":",
                           {"Ref": "AWS::AccountId"}, f":inference-profile/{profile}"]]},
        # the one model it routes to, in whichever region the profile picks
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":bedrock:*::foundation-model/{MODEL}"]]},
    ]
    for handler in (AGENT_HANDLER, WORKER_HANDLER):
        assert not any("secretsmanager" in str(s["Action"]) for s in statements(variant, handler))


def test_only_xray_and_list_streams_have_a_wildcard_resource(synth, variant):
    for template, handler, wildcard_actions in (
        (synth, AGENT_HANDLER, list(XRAY)),
        (synth, WORKER_HANDLER, list(XRAY)),
        (synth, COMPACTOR_HANDLER, sorted(["dynamodb:ListStreams", *XRAY])),
        (variant, AGENT_HANDLER, list(XRAY)),
    ):
        wildcard = [s for s in statements(template, handler) if s["Resource"] == "*"]
        assert [sorted(s["Action"]) for s in wildcard] == [wildcard_actions]


def test_the_keep_alive_schedules_may_invoke_their_alias_only(synth):
    aliases = {k for k in synth.resources("AWS::Lambda::Alias")}
    schedules = synth.resources("AWS::Scheduler::Schedule").values()
    assert {s["Properties"]["Target"]["Arn"]["Ref"] for s in schedules} == aliases
    for schedule in schedules:
        target = schedule["Properties"]["Target"]
        role = target["RoleArn"]["Fn::GetAtt"][0]
        (policy,) = [p for p in synth.resources("AWS::IAM::Policy").values()
                     if p["Properties"]["Roles"] == [{"Ref": role}]]
        assert policy["Properties"]["PolicyDocument"]["Statement"] == [
            {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": target["Arn"]}]
