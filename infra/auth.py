"""Who may call the API: a Cognito user pool and an app client a CLI user can sign in with."""

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cognito as cognito
from constructs import Construct

PASSWORD_MIN_LENGTH = 12
TOKEN_VALIDITY = Duration.hours(1)
REFRESH_TOKEN_VALIDITY = Duration.days(30)


class UserPoolAuth(Construct):
    """Exposes the JWT `issuer` and `audience` the API's authorizer checks. With `existing_pool_id`
    (the pool a destroyed deployment retained) it adds its client to that pool instead of creating one:
    CloudFormation cannot import a user pool by its name (its identifier is the generated id)."""

    def __init__(self, scope: Construct, construct_id: str, *, existing_pool_id: str | None = None) -> None:
        super().__init__(scope, construct_id)
        if existing_pool_id:
            self.user_pool = cognito.UserPool.from_user_pool_id(self, "Users", existing_pool_id)
            # A user pool's tokens name it as `iss`: https://cognito-idp.<region>.amazonaws.com/<pool id>
            # (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-id-token.html).
            self.issuer = f"https://cognito-idp.{Stack.of(self).region}.amazonaws.com/{existing_pool_id}"
        else:
            self.user_pool = self._new_pool()
            self.issuer = self.user_pool.user_pool_provider_url
        self.client = self.user_pool.add_client(
            "CliClient",
            # USER_PASSWORD_AUTH lets `aws cognito-idp initiate-auth` sign in; SRP for SDKs.
            auth_flows=cognito.AuthFlow(user_password=True, user_srp=True),
            generate_secret=False,
            # Sign-in is by API (initiate-auth): no hosted UI, no redirect flows, no callback URL.
            disable_o_auth=True,
            prevent_user_existence_errors=True,
            access_token_validity=TOKEN_VALIDITY,
            id_token_validity=TOKEN_VALIDITY,
            refresh_token_validity=REFRESH_TOKEN_VALIDITY,
        )
        self.audience = [self.client.user_pool_client_id]

    def _new_pool(self) -> cognito.UserPool:
        user_pool = cognito.UserPool(
            self,
            "Users",
            # Users are created by an administrator (docs/DEPLOY.md): every one costs model calls.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=PASSWORD_MIN_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            # The JWT `sub` is the key of every user's long-term memory, which outlives the stack:
            # a recreated pool would issue new subs and orphan those facts.
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(user_pool).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG2",
                reason="MFA is optional (TOTP) so a new user can sign in from the CLI with "
                "initiate-auth; require it for production user bases.",
            )
        )
        Validations.of(user_pool).acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG8",
                reason="Threat protection needs the Plus plan, billed per monthly active user; "
                "Essentials keeps an idle deployment free. Users are admin-created only.",
            )
        )
        return user_pool
