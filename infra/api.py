"""The HTTP API: JWT-protected routes to the agent, access logs and stage throttling."""

import json

import jsii
from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.agent import routes
from infra.agent_function import API_INTEGRATION_TIMEOUT

ACCESS_LOG_RETENTION = logs.RetentionDays.ONE_MONTH  # as the function's own logs
# One JSON line per request; no identity or body, so the access log holds no personal data.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    # jsii reads the interface's members from class properties, not instance attributes.
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._log_group = log_group

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return apigwv2.LogGroupLogDestination(self._log_group)

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT))


class AgentApi(Construct):
    """Exposes `url` and the default `stage` (for metrics)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        jwt_issuer: str,
        jwt_audience: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.http_api = apigwv2.HttpApi(self, "Api", create_default_stage=False)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=ACCESS_LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(access_logs),
            throttle=apigwv2.ThrottleSettings(
                rate_limit=routes.THROTTLE_RATE_PER_SECOND, burst_limit=routes.THROTTLE_BURST
            ),
        )

        integration = integrations.HttpLambdaIntegration(
            "Agent", handler, timeout=API_INTEGRATION_TIMEOUT
        )
        authorizer = authorizers.HttpJwtAuthorizer("Jwt", jwt_issuer, jwt_audience=jwt_audience)
        for key in routes.PROTECTED:
            self._add_route(key, integration, authorizer=authorizer)
        for key in routes.PUBLIC:
            route = self._add_route(key, integration)
            Validations.of(route).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-APIG4",
                    reason="Health check and the OpenAPI document are public by design: "
                    "they hold no user data and call no model.",
                )
            )
        self.url = self.stage.url

    def _add_route(self, key: str, integration: apigwv2.HttpRouteIntegration, **options) -> apigwv2.HttpRoute:
        """One route from its route key ("GET /sessions")."""
        method, path = key.split(" ")
        (route,) = self.http_api.add_routes(path=path, methods=[apigwv2.HttpMethod(method)],
                                            integration=integration, **options)
        return route
