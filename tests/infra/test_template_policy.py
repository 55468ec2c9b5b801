"""The template reader and policy evaluator the delivery-path tests rely on: AWS's semantics for the
subset the stack uses, and a refusal, never a pass, for anything else."""

import pytest

from template_policy import ACCOUNT, Request, Resolver, allows

TEMPLATE = {"Resources": {
    "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
    "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "Stack-high"}},
    "Unnamed": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
}}
resolve = Resolver(TEMPLATE, "Stack")
TOPIC = resolve.ref("Topic")
CLOUDWATCH = {"Service": "cloudwatch.amazonaws.com"}
OWN_ALARMS = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
                                {"Ref": "AWS::AccountId"}, ":alarm:", {"Ref": "AWS::StackName"}, "-*"]]}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def publish(alarm_id: str, account: str = ACCOUNT, tls: str = "true") -> Request:
    alarm = resolve.get_att(alarm_id, "Arn").replace(ACCOUNT, account)
    return Request(CLOUDWATCH, "sns:Publish", TOPIC,
                   {"aws:SourceAccount": account, "aws:SourceArn": alarm, "aws:SecureTransport": tls})


ALLOW_OWN_ALARMS = {"Effect": "Allow", "Principal": CLOUDWATCH, "Action": "sns:Publish", "Resource": {"Ref": "Topic"},
                    "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                                  "ArnLike": {"aws:SourceArn": OWN_ALARMS}}}
DENY_WITHOUT_TLS = {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": {"Ref": "Topic"},
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_nothing_is_allowed_without_an_allow():
    assert not allows(policy(DENY_WITHOUT_TLS), publish("Alarm"), resolve, resource_policy=True)


def test_an_allow_for_this_stacks_alarms_lets_them_publish_over_tls_only():
    document = policy(DENY_WITHOUT_TLS, ALLOW_OWN_ALARMS)

    assert allows(document, publish("Alarm"), resolve, resource_policy=True)
    assert not allows(document, publish("Alarm", tls="false"), resolve, resource_policy=True)
    assert not allows(document, publish("Alarm", account="444455556666"), resolve, resource_policy=True)
    # an alarm without a name gets one from CloudFormation, which no name pattern can promise to match
    assert not allows(document, publish("Unnamed"), resolve, resource_policy=True)


def test_principal_action_and_resource_must_all_match():
    document = policy(ALLOW_OWN_ALARMS)
    request = publish("Alarm")

    assert not allows(document, Request({"Service": "events.amazonaws.com"}, request.action, request.resource,
                                        request.context), resolve, resource_policy=True)
    assert not allows(document, Request(CLOUDWATCH, "sns:Subscribe", request.resource, request.context), resolve,
                      resource_policy=True)
    assert not allows(document, Request(CLOUDWATCH, request.action, f"{TOPIC}-other", request.context), resolve,
                      resource_policy=True)
    # actions match case-insensitively and with wildcards; condition keys ignore case
    wildcard = ALLOW_OWN_ALARMS | {"Action": "SNS:Pub*"}
    assert allows(policy(wildcard), request, resolve, resource_policy=True)


@pytest.mark.parametrize("statement", [
    ALLOW_OWN_ALARMS | {"Condition": {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}},
    ALLOW_OWN_ALARMS | {"Condition": {"ForAnyValue:StringLike": {"aws:SourceArn": "*"}}},
    {k: v for k, v in ALLOW_OWN_ALARMS.items() if k != "Action"} | {"NotAction": "sns:Subscribe"},
    ALLOW_OWN_ALARMS | {"Resource": {"Fn::Sub": "${Topic}"}},
])
def test_what_the_evaluator_cannot_judge_is_refused(statement):
    with pytest.raises(ValueError):
        allows(policy(statement), publish("Alarm"), resolve, resource_policy=True)
