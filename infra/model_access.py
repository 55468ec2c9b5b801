"""What the agent needs to reach its model: the Anthropic key secret or a Bedrock grant."""

from aws_cdk import Acknowledgment, Aws, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

# Bedrock ids with a region-group prefix ("global.", "us.", "eu.", ...) name inference profiles;
# plain ids ("anthropic.claude-...") name a foundation model in the stack's region.
FOUNDATION_MODEL_VENDOR = "anthropic."
# Answers are streamed (InvokeModelWithResponseStream); InvokeModel stays for a non-streamed call.
BEDROCK_ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
# The code reads the key with GetSecretValue and nothing else (grant_read would add DescribeSecret).
# The secret is encrypted with Secrets Manager's AWS managed key, for which GetSecretValue needs no
# kms:Decrypt of its own: https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html
SECRET_ACTIONS = ["secretsmanager:GetSecretValue"]


def bedrock_model_arns(model_id: str) -> list[str]:
    """The ARNs `bedrock:InvokeModel` must allow for one configured model id, and no others."""
    if "." not in model_id:
        raise ValueError(f"not a Bedrock model or inference profile id: {model_id!r}")
    if model_id.startswith(FOUNDATION_MODEL_VENDOR):
        return [f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}::foundation-model/{model_id}"]
    base_model = model_id.split(".", 1)[1]
    return [
        f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:inference-profile/{model_id}",
        # A profile routes each request to one of its regions: this one model, in any region.
        f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/{base_model}",
    ]


class ModelAccess(Construct):
    """Creates the provider's credentials and grants the agent exactly what its provider uses."""

    def __init__(self, scope: Construct, construct_id: str, *, provider: str, model_id: str) -> None:
        super().__init__(scope, construct_id)
        self.provider = provider
        self.model_id = model_id
        self.secret: secretsmanager.Secret | None = None
        if provider == "anthropic":
            # Created with a random placeholder; the deployer puts the real key in (docs/DEPLOY.md).
            self.secret = secretsmanager.Secret(
                self,
                "AnthropicApiKey",
                description="Anthropic API key of the agent (put-secret-value after deploy)",
                removal_policy=RemovalPolicy.DESTROY,
            )
            Validations.of(self.secret).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SMG4",
                    reason="A third-party API key: it is issued and revoked in the Anthropic console, "
                    "which no rotation Lambda can call. Rotate by putting a new value.",
                )
            )

    @property
    def environment(self) -> dict[str, str]:
        env = {"AGENT_MODEL_PROVIDER": self.provider, "AGENT_MODEL_ID": self.model_id}
        if self.secret is not None:
            env["ANTHROPIC_API_KEY_SECRET_ARN"] = self.secret.secret_arn
        return env

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        if self.secret is not None:
            iam.Grant.add_to_principal(grantee=grantee, actions=SECRET_ACTIONS, resource_arns=[self.secret.secret_arn])
        if self.provider == "bedrock":
            arns = bedrock_model_arns(self.model_id)
            iam.Grant.add_to_principal(grantee=grantee, actions=BEDROCK_ACTIONS, resource_arns=arns)
            if len(arns) > 1:
                # cdk-nag names the finding by the ARN with the partition token spelled out.
                any_region_model = arns[1].replace(Aws.PARTITION, "<AWS::Partition>")
                Validations.of(grantee.grant_principal).acknowledge(
                    Acknowledgment(
                        id=f"AwsSolutions-IAM5[Resource::{any_region_model}]",
                        reason="Cross-region inference: the profile picks the region per request, so "
                        "the grant names the one configured model in every region.",
                    )
                )
