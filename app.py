"""CDK entry point: the agent's stack, checked by cdk-nag's AWS Solutions rules on every synth."""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.deployment import STACK_NAME
from infra.settings import Settings
from infra.stack import AgentStack


def build(app: cdk.App) -> AgentStack:
    stack = AgentStack(
        app,
        STACK_NAME,
        settings=Settings.from_context(app.node),
        description="Stateless Claude agent with two-tier DynamoDB memory",
    )
    # Any unacknowledged finding fails the synth; acknowledgements sit beside their constructs.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    app = cdk.App()
    build(app)
    app.synth()
