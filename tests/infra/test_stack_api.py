"""The HTTP API: every route but the public two needs the JWT authorizer; logs and throttling."""

import json

from functions.agent import routes

PROTECTED, PUBLIC = set(routes.PROTECTED), set(routes.PUBLIC)


def deployed_routes(synth) -> dict[str, dict]:
    found = synth.resources("AWS::ApiGatewayV2::Route").values()
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in found}


def test_exactly_the_contracts_routes_exist(synth):
    assert set(deployed_routes(synth)) == PROTECTED | PUBLIC


def test_every_route_except_health_and_openapi_needs_the_jwt_authorizer(synth):
    authorizer_id = next(iter(synth.resources("AWS::ApiGatewayV2::Authorizer")))

    for key, route in deployed_routes(synth).items():
        if key in PROTECTED:
            assert route["AuthorizationType"] == "JWT", key
            assert route["AuthorizerId"] == {"Ref": authorizer_id}, key
        else:
            assert route.get("AuthorizationType", "NONE") == "NONE", key
            assert "AuthorizerId" not in route, key


def test_authorizer_trusts_the_stacks_user_pool_and_its_cli_client(synth):
    authorizer = synth.one("AWS::ApiGatewayV2::Authorizer")["Properties"]
    pool_id = synth.output_ref("UserPoolId")
    client_id = synth.output_ref("UserPoolClientId")
    client = synth.template["Resources"][client_id]["Properties"]

    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {
        "Issuer": {"Fn::GetAtt": [pool_id, "ProviderURL"]},
        "Audience": [{"Ref": client_id}],
    }
    # `aws cognito-idp initiate-auth --auth-flow USER_PASSWORD_AUTH` works without a client secret
    assert "ALLOW_USER_PASSWORD_AUTH" in client["ExplicitAuthFlows"]
    assert "ALLOW_USER_SRP_AUTH" in client["ExplicitAuthFlows"]
    assert client["GenerateSecret"] is False
    # No OAuth: no hosted-UI flows, no scopes, no callback URL anyone could be redirected to
    assert client.get("AllowedOAuthFlowsUserPoolClient", False) is False
    assert not {"AllowedOAuthFlows", "AllowedOAuthScopes", "CallbackURLs", "LogoutURLs"} & set(client)


def test_user_pool_is_admin_only_with_a_strong_password_policy_and_survives_teardown(synth):
    pool = synth.template["Resources"][synth.output_ref("UserPoolId")]
    policy = pool["Properties"]["Policies"]["PasswordPolicy"]

    assert pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert policy["MinimumLength"] >= 12
    for rule in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"):
        assert policy[rule] is True, rule
    assert pool["DeletionPolicy"] == "Retain"  # JWT subs key the long-term memory, which is retained


def test_an_existing_issuer_from_context_replaces_the_user_pool(variant):
    authorizer = variant.one("AWS::ApiGatewayV2::Authorizer")["Properties"]

    assert authorizer["JwtConfiguration"] == {
        "Issuer": "https://issuer.example.com/tenant",
        "Audience": ["agent-api", "agent-cli"],
    }
    assert not variant.resources("AWS::Cognito::UserPool")
    assert "UserPoolId" not in variant.template["Outputs"]


def test_default_stage_writes_json_access_logs_and_is_throttled(synth):
    stage = synth.one("AWS::ApiGatewayV2::Stage")["Properties"]
    log_group_id = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    log_format = json.loads(stage["AccessLogSettings"]["Format"])

    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert synth.template["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 30
    assert log_format["requestId"] == "$context.requestId"
    assert {"routeKey", "status", "integrationError", "authorizerError"} <= set(log_format)
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 10}


def test_outputs_tell_a_user_everything_needed_to_call_the_api(synth):
    assert {
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "AlarmTopicArn",
        "SessionsTableName",
        "LongTermTableName",
        "AnthropicApiKeySecretArn",
    } <= set(synth.template["Outputs"])
