"""Every path a notification, a request or an event takes through the stack, walked on the
synthesized template and authorised the way AWS would at run time. No hand-kept list: each test
finds its paths in the template itself, so a new alarm, route or event source is checked as it
appears, and a policy that replaces a default (an SNS topic policy) cannot silently close a path.

    alarm -> action -> SNS topic -> topic policy (sns:Publish) -> topic key policy (SNS's KMS calls)
    route -> integration -> Lambda permission on the integration's target (the alias)
    stream -> event source mapping -> function role (stream reads, on-failure destination)
"""

import pytest

from template_policy import ACCOUNT, PARTITION, REGION, Request, Resolver, allows

CLOUDWATCH = {"Service": "cloudwatch.amazonaws.com"}
# The encryption context SNS sends with its KMS calls for an encrypted topic, as a condition key.
SNS_TOPIC_CONTEXT = "kms:EncryptionContext:aws:sns:topicArn"
API_GATEWAY = {"Service": "apigateway.amazonaws.com"}
ALARM_ACTION_KINDS = ("AlarmActions", "OKActions", "InsufficientDataActions")
# What SNS needs of the publisher's key access to encrypt a message for an encrypted topic.
TOPIC_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# Lambda's poller reads a DynamoDB stream with the function's role.
STREAM_READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                       "dynamodb:ListStreams")
OTHER_ACCOUNT = "444455556666"
SYNTHS = ["synth", "variant"]


def resolver(synthesized) -> Resolver:
    return Resolver(synthesized.template, synthesized.stack.stack_name)


def by_resolved(synthesized, resource_type: str, resolve_one) -> dict[str, str]:
    return {resolve_one(logical_id): logical_id for logical_id in synthesized.resources(resource_type)}


def role_statements(synthesized, role_id: str) -> dict:
    """The identity policy of a role: its inline policies and every AWS::IAM::Policy attached to it."""
    role = synthesized.template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role, "a managed policy's content is not in the template"
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return {"Statement": statements}


# -- alarm -> SNS topic -> topic policy -> key ------------------------------------------------------


def alarm_notifications(synthesized):
    """(alarm id, action kind, topic id) for every alarm action that publishes to an SNS topic."""
    resolve = resolver(synthesized)
    topics = by_resolved(synthesized, "AWS::SNS::Topic", resolve.ref)
    for alarm_id, alarm in synthesized.resources("AWS::CloudWatch::Alarm").items():
        for kind in ALARM_ACTION_KINDS:
            for action in alarm["Properties"].get(kind, []):
                arn = resolve(action)
                if arn.startswith(f"arn:{PARTITION}:sns:"):
                    assert arn in topics, f"{alarm_id} notifies {arn}, a topic outside the stack: cannot check it"
                    yield alarm_id, kind, topics[arn]


def alarm_publish(resolve: Resolver, alarm_id: str, topic_arn: str, *, account: str = ACCOUNT) -> dict:
    """CloudWatch's sns:Publish for an alarm of `account`, over TLS: AWS documents aws:SourceAccount
    and aws:SourceArn on this request (https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html)."""
    alarm_arn = resolve.get_att(alarm_id, "Arn").replace(f":{ACCOUNT}:", f":{account}:")
    return {"resource": topic_arn, "context": {
        "aws:SourceAccount": account, "aws:SourceArn": alarm_arn, "aws:SecureTransport": "true"}}


def data_key_request(action: str, key_arn: str, topic_arn: str) -> Request:
    """The KMS call SNS makes for CloudWatch's publish to an encrypted topic: CloudWatch's principal,
    and the one key AWS documents on it, the encryption context aws:sns:topicArn. Nothing documents
    aws:SourceArn or aws:SourceAccount here, so the model carries neither: a key policy that needs
    them refuses this request, as KMS would."""
    return Request(CLOUDWATCH, action, key_arn, {SNS_TOPIC_CONTEXT: topic_arn})


def topic_key(synthesized, resolve: Resolver, topic_id: str) -> tuple[str, dict] | None:
    """(key ARN, key policy) of the topic's KMS key, if it is encrypted."""
    key = synthesized.template["Resources"][topic_id]["Properties"].get("KmsMasterKeyId")
    if key is None:
        return None
    keys = by_resolved(synthesized, "AWS::KMS::Key", lambda k: resolve.get_att(k, "Arn"))
    assert resolve(key) in keys, f"{topic_id} is encrypted with {key}: an AWS managed key refuses CloudWatch"
    return resolve(key), synthesized.template["Resources"][keys[resolve(key)]]["Properties"]["KeyPolicy"]


def topic_policies(synthesized, resolve: Resolver, topic_arn: str) -> list[dict]:
    policies = [p["Properties"]["PolicyDocument"] for p in synthesized.resources("AWS::SNS::TopicPolicy").values()
                if topic_arn in resolve(p["Properties"]["Topics"])]
    assert len(policies) <= 1, f"{topic_arn}: several topic policies overwrite each other"
    return policies


@pytest.mark.parametrize("name", SYNTHS)
def test_every_alarm_action_can_publish_to_its_topic_and_sns_can_encrypt_it(name, request):
    # Given every (alarm, ALARM/OK action, topic) of the synthesized template
    synthesized = request.getfixturevalue(name)
    resolve = resolver(synthesized)
    notifications = list(alarm_notifications(synthesized))
    assert notifications, "no alarm notifies a topic"

    for alarm_id, kind, topic_id in notifications:
        topic_arn = resolve.ref(topic_id)
        # When CloudWatch publishes for the alarm, the topic policy (if the template sets one: it
        # replaces SNS's default policy) lets it
        publish = Request(CLOUDWATCH, "sns:Publish", **alarm_publish(resolve, alarm_id, topic_arn))
        for policy in topic_policies(synthesized, resolve, topic_arn):
            assert allows(policy, publish, resolve, resource_policy=True), (
                f"{alarm_id} {kind}: the policy of {topic_id} does not let CloudWatch publish")
        # And SNS's data-key calls to the topic's key, as documented, are allowed
        key = topic_key(synthesized, resolve, topic_id)
        if key is None:
            continue
        key_arn, key_policy = key
        for action in TOPIC_KEY_ACTIONS:
            assert allows(key_policy, data_key_request(action, key_arn, topic_arn), resolve, resource_policy=True), (
                f"{alarm_id}: the key of {topic_id} refuses {action}")


@pytest.mark.parametrize("name", SYNTHS)
def test_the_topic_key_serves_its_topic_only_and_no_other_accounts_alarm_may_publish(name, request):
    synthesized = request.getfixturevalue(name)
    resolve = resolver(synthesized)
    for alarm_id, _, topic_id in alarm_notifications(synthesized):
        topic_arn = resolve.ref(topic_id)
        # Given an alarm of another account (the confused deputy): the topic policy refuses its publish,
        # so SNS never asks the key for it
        foreign = Request(CLOUDWATCH, "sns:Publish", **alarm_publish(resolve, alarm_id, topic_arn, account=OTHER_ACCOUNT))
        policies = topic_policies(synthesized, resolve, topic_arn)
        assert policies and not any(allows(p, foreign, resolve, resource_policy=True) for p in policies)
        # And the key refuses a data key for any other topic, of this account or another
        key_arn, key_policy = topic_key(synthesized, resolve, topic_id)
        for other_topic in (f"{topic_arn}-other", topic_arn.replace(f":{ACCOUNT}:", f":{OTHER_ACCOUNT}:")):
            for action in TOPIC_KEY_ACTIONS:
                use = data_key_request(action, key_arn, other_topic)
                assert not allows(key_policy, use, resolve, resource_policy=True), (other_topic, action)


def test_the_key_policy_conditions_cloudwatch_on_documented_keys_only(synth):
    # Given the statements of every key policy that name CloudWatch's principal
    for key_id, key in synth.resources("AWS::KMS::Key").items():
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            if statement.get("Principal") != CLOUDWATCH:
                continue
            # Then each condition key is one AWS documents on the KMS calls SNS makes for it
            keys = {k for entries in statement.get("Condition", {}).values() for k in entries}
            assert keys == {SNS_TOPIC_CONTEXT}, (key_id, keys)


# -- route -> integration -> Lambda permission ------------------------------------------------------


def lambda_resource_policy(synthesized, resolve: Resolver, function_arn: str) -> dict:
    """The resource policy Lambda builds from the stack's permissions on `function_arn`."""
    statements = []
    for permission in synthesized.resources("AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        if resolve.function_arn(properties["FunctionName"]) != function_arn:
            continue
        condition = {}
        if "SourceArn" in properties:
            condition["ArnLike"] = {"AWS:SourceArn": resolve(properties["SourceArn"])}
        if "SourceAccount" in properties:
            condition["StringEquals"] = {"AWS:SourceAccount": resolve(properties["SourceAccount"])}
        statements.append({"Effect": "Allow", "Principal": {"Service": properties["Principal"]},
                           "Action": properties["Action"], "Resource": function_arn, "Condition": condition})
    return {"Statement": statements}


@pytest.mark.parametrize("name", SYNTHS)
def test_every_route_may_invoke_its_integrations_target(name, request):
    # Given every route of every HTTP API, its integration and that integration's Lambda target
    synthesized = request.getfixturevalue(name)
    resolve = resolver(synthesized)
    integrations = by_resolved(synthesized, "AWS::ApiGatewayV2::Integration", lambda i: f"integrations/{resolve.ref(i)}")
    stages = synthesized.resources("AWS::ApiGatewayV2::Stage").values()
    routes = synthesized.resources("AWS::ApiGatewayV2::Route").values()
    assert routes

    for route in routes:
        properties = route["Properties"]
        integration = synthesized.template["Resources"][integrations[resolve(properties["Target"])]]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        target = resolve.function_arn(integration["IntegrationUri"])
        method, path = properties["RouteKey"].split(" ", 1)
        api = resolve(properties["ApiId"])
        api_stages = [resolve(s["Properties"]["StageName"]) for s in stages if resolve(s["Properties"]["ApiId"]) == api]
        assert api_stages, f"{properties['RouteKey']}: its API has no stage"
        # Then API Gateway, invoking from this route on each stage of this API, is allowed
        policy = lambda_resource_policy(synthesized, resolve, target)
        for stage in api_stages:
            source = f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api}/{stage}/{method}{path}"
            invoke = Request(API_GATEWAY, "lambda:InvokeFunction", target, {"AWS:SourceArn": source})
            assert allows(policy, invoke, resolve, resource_policy=True), f"{properties['RouteKey']} cannot invoke {target}"
            # And another API of the account may not
            elsewhere = Request(API_GATEWAY, "lambda:InvokeFunction", target,
                                {"AWS:SourceArn": source.replace(f":{api}/", ":another-api/")})
            assert not allows(policy, elsewhere, resolve, resource_policy=True)


# -- stream -> event source mapping -> function role -------------------------------------------------


@pytest.mark.parametrize("name", SYNTHS)
def test_every_event_source_mapping_may_read_its_stream_and_reach_its_failure_destination(name, request):
    # Given every event source mapping, the function it feeds and that function's role
    synthesized = request.getfixturevalue(name)
    resolve = resolver(synthesized)
    functions = by_resolved(synthesized, "AWS::Lambda::Function", lambda f: resolve.function_arn({"Ref": f}))
    for mapping_id, mapping in synthesized.resources("AWS::Lambda::EventSourceMapping").items():
        properties = mapping["Properties"]
        function_id = functions[resolve.function_arn(properties["FunctionName"])]
        role_id = synthesized.template["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        policy = role_statements(synthesized, role_id)

        # Then the role may read the stream
        source = resolve(properties["EventSourceArn"])
        assert ":dynamodb:" in source and "/stream/" in source, f"{mapping_id}: unknown source {source}"
        for action in STREAM_READ_ACTIONS:
            assert allows(policy, Request({}, action, source), resolve, resource_policy=False), f"{mapping_id}: {action}"

        # And send what failed to the on-failure destination
        destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination is not None:
            target = resolve(destination)
            action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish"}[target.split(":")[2]]
            assert allows(policy, Request({}, action, target), resolve, resource_policy=False), f"{mapping_id}: {action}"
