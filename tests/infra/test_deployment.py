"""The deployment verbs: settings remembered between deploys (a deploy without ALARM_EMAIL keeps the
subscription; a drill keeps the provider, issuer and strategy), and the outputs, token, secret and
drill-turn helpers against moto's Cognito and Secrets Manager."""

import json
import os
import re
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from functions.agent.shared import SUPPRESSED_WRITES_ALARM_THRESHOLD as ALARM_THRESHOLD
from synthesis import REPO_ROOT, synthesize
from infra import deployment
from infra.deployment import ONE_SHOT, REMEMBERED, UsageError, remember
from infra.settings import Settings


class Context:
    """What the CDK CLI hands the app: cdk.context.json's keys plus the command line's -c values."""

    def __init__(self, context: dict):
        self.context = context

    def try_get_context(self, key):
        return self.context.get(key)


@pytest.fixture
def context_file(tmp_path):
    return tmp_path / "cdk.context.json"


def test_a_deploy_without_alarm_email_keeps_the_remembered_subscription(context_file):
    # Given a first deploy with an e-mail and a provider
    remember(["alarmEmail=oncall@example.com", "modelProvider=bedrock"], context_file)

    # When a later deploy names neither
    settings = remember([], context_file)

    # Then the stack is synthesized with both again: the e-mail subscription stays
    assert settings == {"alarmEmail": "oncall@example.com", "modelProvider": "bedrock"}
    deployed = Settings.from_context(Context(json.loads(context_file.read_text())))
    assert (deployed.alarm_email, deployed.model_provider) == ("oncall@example.com", "bedrock")


def test_an_empty_value_forgets_a_setting_and_a_new_one_replaces_it(context_file):
    remember(["alarmEmail=old@example.com", "memoryStrategy=last_k"], context_file)

    assert remember(["alarmEmail=new@example.com"], context_file)["alarmEmail"] == "new@example.com"
    assert remember(["alarmEmail="], context_file) == {"memoryStrategy": "last_k"}
    assert "no alarmEmail" in deployment.describe({"memoryStrategy": "last_k"})


def test_other_keys_in_the_context_file_are_left_alone(context_file):
    context_file.write_text(json.dumps({"acknowledged-issue-numbers": [1]}))
    remember(["alarmEmail=a@example.com"], context_file)
    assert json.loads(context_file.read_text()) == {"acknowledged-issue-numbers": [1], "alarmEmail": "a@example.com"}


@pytest.mark.parametrize("assignment", ["alarmDrillMinutes=15", "alarmemail=a@example.com", "alarmEmail", "x=y"])
def test_a_drill_or_an_unknown_key_is_refused_and_nothing_is_written(context_file, assignment):
    with pytest.raises(UsageError):
        remember([assignment], context_file)
    assert not context_file.exists()


@pytest.mark.parametrize("assignment", [
    "modelProvider=Bedrock", "memoryStrategy=fifo", "alarmEmail=oncall@example", "alarmEmail=a@example.com,b@example.com",
    "workerReservedConcurrency=five", "workerReservedConcurrency=0", "jwtIssuer=https://issuer.example.com"])
def test_a_value_the_stack_would_refuse_is_refused_before_anything_is_saved(context_file, assignment):
    # Given remembered settings
    remember(["alarmEmail=oncall@example.com", "modelProvider=bedrock"], context_file)
    saved = context_file.read_text()
    # When a deploy names a value the stack cannot be built with
    with pytest.raises(UsageError) as refused:
        remember([assignment], context_file)
    # Then the message names the setting, and the file is as it was
    assert assignment.partition("=")[0] in str(refused.value) and "nothing saved" in str(refused.value)
    assert context_file.read_text() == saved


def test_a_bad_value_already_saved_is_named_until_it_is_forgotten(context_file):
    # Given a file edited by hand with a provider the stack does not know
    context_file.write_text(json.dumps({"modelProvider": "Bedrock"}))
    # Then every deploy refuses it in words, and an empty value forgets it
    with pytest.raises(UsageError, match="modelProvider must be one of"):
        remember([], context_file)
    assert remember(["modelProvider="], context_file) == {}


def test_every_setting_the_stack_reads_is_remembered_except_the_drill():
    # A setting missing here would silently fall back to its default on the next deploy.
    source = (REPO_ROOT / "infra" / "settings.py").read_text()
    assert set(re.findall(r'(?:get|whole_number)\("(\w+)"\)', source)) == set(REMEMBERED) | set(ONE_SHOT)


def make_dry_run(*arguments: str) -> list[str]:
    run = subprocess.run(["make", "-n", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def test_every_declared_verb_has_a_recipe():
    (declared,) = re.findall(r"^\.PHONY: (.+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    for verb in declared.split():
        assert not any("Nothing to be done" in line for line in make_dry_run(verb)), verb


def test_a_first_install_says_what_it_installs_and_when_it_is_done():
    # -W: as if requirements-serve.txt had just changed, so the install's recipe runs (dry)
    lines = make_dry_run("-W", "requirements-serve.txt", ".venv/.installed-serve")
    (installing,) = [i for i, line in enumerate(lines) if line.startswith('echo "installing the serving')]
    (pip,) = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installing < pip < lines.index('echo "done"')


def test_make_deploy_remembers_first_and_passes_no_context_on_the_command_line():
    lines = make_dry_run("deploy", "ALARM_EMAIL=oncall@example.com", "CONTEXT=modelProvider=bedrock")
    (remembering,) = [i for i, line in enumerate(lines) if "infra.deployment remember" in line]
    (deploying,) = [i for i, line in enumerate(lines) if "cdk deploy" in line]

    assert remembering < deploying
    assert lines[remembering].endswith("remember alarmEmail=oncall@example.com modelProvider=bedrock")
    assert " -c " not in lines[deploying]


def test_make_drill_adds_only_the_drill_to_the_remembered_settings():
    (deploying,) = [line for line in make_dry_run("drill", "DRILL_MINUTES=20") if "cdk deploy" in line]
    assert re.findall(r"-c (\S+)", deploying) == ["alarmDrillMinutes=20"]


# -- redeploying after make destroy: the retained table and user pool are found again ------------------


def test_make_destroy_remembers_the_user_pool_before_deleting_the_stack():
    lines = make_dry_run("destroy")
    (keeping,) = [i for i, line in enumerate(lines) if "infra.deployment keep-user-pool" in line]
    (destroying,) = [i for i, line in enumerate(lines) if "cdk destroy" in line]
    assert keeping < destroying


@pytest.mark.parametrize("verb", ["deploy", "drill", "diff"])
def test_every_deploy_imports_a_retained_long_term_table(verb):
    (command,) = [line for line in make_dry_run(verb, "TOKEN=t") if line.startswith("npx cdk")]
    assert "--import-existing-resources" in command.split()


def test_the_user_pool_of_a_destroyed_stack_is_remembered_for_the_next_deploy(context_file):
    remember(["alarmEmail=oncall@example.com"], context_file)
    assert deployment.keep_user_pool({"UserPoolId": "eu-west-1_AbC123"}, context_file) == "eu-west-1_AbC123"
    assert remember([], context_file) == {"alarmEmail": "oncall@example.com", "userPoolId": "eu-west-1_AbC123"}
    # A stack on the user's own issuer has no pool of ours: nothing remembered
    assert deployment.keep_user_pool({"ApiUrl": "https://x"}, context_file) is None


@pytest.mark.parametrize("assignment", ["userPoolId=eu-west-1", "userPoolId=eu-west-1_AbC123 jwtIssuer=https://i"])
def test_a_user_pool_id_is_checked_before_it_is_saved(context_file, assignment):
    assert remember(["userPoolId=eu-west-1_AbC123"], context_file) == {"userPoolId": "eu-west-1_AbC123"}
    saved = context_file.read_text()
    with pytest.raises(UsageError, match="userPoolId (must be|and jwtIssuer)"):
        remember(assignment.split() + (["jwtAudience=a"] if "jwtIssuer" in assignment else []), context_file)
    assert context_file.read_text() == saved


def test_a_deploy_that_would_replace_the_long_term_table_is_refused():
    # A stack deployed when the table's name was generated: a static name would replace the table
    with pytest.raises(UsageError, match="replace the long-term table DurableAgentMemory-MemoryLongTerm1A2B"):
        deployment.check_long_term_table({"LongTermTableName": "DurableAgentMemory-MemoryLongTerm1A2B-XYZ"})
    deployment.check_long_term_table({"LongTermTableName": "DurableAgentMemory-long-term"})
    deployment.check_long_term_table({})  # not deployed yet


def test_the_retained_table_has_a_static_name_and_a_retained_pool_is_adopted(tmp_path):
    # A first deploy: a long-term table with a static name (importable) and a pool, both retained
    first = synthesize(tmp_path / "first")
    (table,) = [t for t in first.resources("AWS::DynamoDB::Table").values()
                if t["Properties"].get("TableName") == "DurableAgentMemory-long-term"]
    (pool,) = first.resources("AWS::Cognito::UserPool").values()
    assert table["DeletionPolicy"] == pool["DeletionPolicy"] == "Retain"
    # After make destroy (userPoolId remembered): no new pool; the client and the authorizer use the old one
    again = synthesize(tmp_path / "again", userPoolId="eu-west-1_AbC123")
    assert not again.resources("AWS::Cognito::UserPool")
    (client,) = again.resources("AWS::Cognito::UserPoolClient").values()
    assert client["Properties"]["UserPoolId"] == "eu-west-1_AbC123"
    (authorizer,) = again.resources("AWS::ApiGatewayV2::Authorizer").values()
    assert "eu-west-1_AbC123" in json.dumps(authorizer["Properties"]["JwtConfiguration"]["Issuer"])


def test_deploy_md_says_each_thing_before_it_is_needed():
    guide = (REPO_ROOT / "docs" / "DEPLOY.md").read_text()
    # The settings come before the first deploy command, and the outputs are read before the destroy
    assert guide.index("### Settings, remembered between deploys") < guide.index("\nmake deploy ")
    assert guide.index('eval "$(make -s outputs)"\nmake destroy') < guide.index("make destroy\n```")
    # Only the make verbs are advised: a bare `npx cdk` may run another CLI version (or none after make dev)
    assert "npx cdk diff" not in guide and "make diff" in guide


# -- the verbs that call AWS, on moto -----------------------------------------------------------------


class Stack:
    def __init__(self, outputs: dict[str, str]):
        self.outputs = outputs

    def describe_stacks(self, StackName):
        assert StackName == deployment.STACK_NAME
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        yield


def test_a_stack_that_is_not_deployed_is_one_line_with_what_to_do(aws, capsys):
    assert deployment.run(["outputs"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (f"error: the stack {deployment.STACK_NAME} is not deployed in us-east-1 for these credentials: "
                    "run make deploy, or set AWS_REGION to the region it is in")


def test_no_credentials_is_one_line_with_what_to_do_not_a_traceback(tmp_path):
    # A shell without credentials: no keys, no profile files, no instance metadata to ask
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    for verb in ("outputs", "token", "secret"):
        run = subprocess.run([sys.executable, "-m", "infra.deployment", verb], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True)
        assert run.returncode == 1, verb
        assert run.stderr.splitlines() == ["error: no AWS credentials in this shell: set them up (aws configure, "
                                           "aws sso login, AWS_PROFILE=...) and check: aws sts get-caller-identity"]


@pytest.mark.parametrize(("code", "operation", "expected"), [
    ("ExpiredToken", "DescribeStacks", "AWS refused the credentials in DescribeStacks (ExpiredToken: the message): "
     "renew them (aws sso login, or aws configure) and check: aws sts get-caller-identity"),
    ("AccessDenied", "DescribeStacks", "these credentials may not call DescribeStacks (the message): use a role or "
     "user allowed to"),
    ("ThrottlingException", "PutSecretValue", "AWS PutSecretValue failed: ThrottlingException: the message"),
])
def test_an_aws_error_is_one_line_that_says_what_to_do(code, operation, expected):
    error = ClientError({"Error": {"Code": code, "Message": "the message"}}, operation)
    assert deployment.aws_problem(error) == expected


@pytest.fixture
def user_pool(aws):
    """moto's Cognito with a user pool, its CLI client and the user a@example.com (no password yet)."""
    cognito = boto3.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName="users")["UserPool"]["Id"]
    client = cognito.create_user_pool_client(UserPoolId=pool, ClientName="cli",
                                             ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]
    cognito.admin_create_user(UserPoolId=pool, Username="a@example.com", MessageAction="SUPPRESS")
    return cognito, pool, client["ClientId"]


def test_a_wrong_password_is_said_as_such(user_pool):
    cognito, pool, client_id = user_pool
    cognito.admin_set_user_password(UserPoolId=pool, Username="a@example.com", Password="a-Long-pass-1!", Permanent=True)
    with pytest.raises(ClientError) as refused:
        deployment.token({"UserPoolClientId": client_id}, cognito, "a@example.com", "wrong")
    assert deployment.aws_problem(refused.value).endswith("check EMAIL and PASSWORD (docs/DEPLOY.md, step 4)")


def test_token_signs_in_an_admin_created_user_with_a_permanent_password(user_pool):
    cognito, pool, client_id = user_pool
    outputs = deployment.stack_outputs(Stack({"UserPoolClientId": client_id}))

    # A temporary password asks for a new one: said in words, not a KeyError
    cognito.admin_set_user_password(UserPoolId=pool, Username="a@example.com", Password="Temp-Pass-123!", Permanent=False)
    with pytest.raises(UsageError, match="permanent password"):
        deployment.token(outputs, cognito, "a@example.com", "Temp-Pass-123!")

    cognito.admin_set_user_password(UserPoolId=pool, Username="a@example.com", Password="a-Long-pass-1!", Permanent=True)
    assert deployment.token(outputs, cognito, "a@example.com", "a-Long-pass-1!").count(".") == 2  # a JWT


def test_secret_puts_the_key_into_the_stacks_secret_only(aws):
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="anthropic", SecretString="placeholder")["ARN"]

    deployment.put_secret({"AnthropicApiKeySecretArn": arn}, secrets, "sk-ant-test")

    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "sk-ant-test"
    with pytest.raises(UsageError, match="not anthropic"):
        deployment.put_secret({}, secrets, "sk-ant-test")


def test_drill_turns_sends_enough_turns_to_fire_the_alarm_and_stops_on_an_error():
    sent = []

    def send(url, bearer, payload):
        sent.append((url, bearer, payload["message"]))
        return 200, {"memory": {"write": "suppressed"}}

    assert deployment.drill_turns("https://api.example.com/", "t0k3n", send) == ["suppressed"] * 12
    assert deployment.DRILL_TURNS >= ALARM_THRESHOLD
    assert sent[0] == ("https://api.example.com/sessions/alarm-drill/messages", "t0k3n", "drill 1")

    with pytest.raises(UsageError, match="401"):
        deployment.drill_turns("https://api.example.com", "expired", lambda *_: (401, {"message": "Unauthorized"}))


# -- concurrency: the worker's reservation, refused where the quota cannot hold it ---------------------


class LambdaAccount:
    def __init__(self, quota: int, reserved_elsewhere: int = 0, worker_reserved: int | None = None):
        self.quota, self.reserved_elsewhere, self.worker_reserved = quota, reserved_elsewhere, worker_reserved

    def get_account_settings(self):
        unreserved = self.quota - self.reserved_elsewhere - (self.worker_reserved or 0)
        return {"AccountLimit": {"ConcurrentExecutions": self.quota, "UnreservedConcurrentExecutions": unreserved}}

    def get_function_concurrency(self, FunctionName):
        return {"ReservedConcurrentExecutions": self.worker_reserved} if self.worker_reserved else {}


def test_a_new_accounts_quota_of_10_deploys_without_a_reservation_and_refuses_one():
    # Given a new account (10 concurrent executions, all unreserved)
    account = LambdaAccount(quota=10)
    # Then the default deploys, sharing the pool, and says so
    assert "no reservation" in deployment.check_concurrency({}, account, None)
    # And a reservation is refused before the deploy, with what to do
    with pytest.raises(UsageError, match="at most 0 can be reserved.*L-B99A9384"):
        deployment.check_concurrency({"workerReservedConcurrency": "5"}, account, None)


def test_a_raised_quota_holds_a_reservation_up_to_100_left_unreserved():
    account = LambdaAccount(quota=1000, reserved_elsewhere=850)
    assert "50 reserved for the worker" in deployment.check_concurrency({"workerReservedConcurrency": "50"}, account, None)
    with pytest.raises(UsageError, match="at most 50"):
        deployment.check_concurrency({"workerReservedConcurrency": "51"}, account, None)
    # The worker's own current reservation is given back before the new one is counted
    redeploy = LambdaAccount(quota=1000, reserved_elsewhere=850, worker_reserved=50)
    assert "50 reserved" in deployment.check_concurrency({"workerReservedConcurrency": "50"}, redeploy, "worker-fn")


def test_make_deploy_checks_the_concurrency_before_deploying():
    lines = make_dry_run("deploy")
    (checking,) = [i for i, line in enumerate(lines) if "infra.deployment check" in line]
    (deploying,) = [i for i, line in enumerate(lines) if "cdk deploy" in line]
    assert checking < deploying


def test_the_reservation_reaches_the_worker_only(tmp_path):
    synthesized = synthesize(tmp_path, workerReservedConcurrency="5")
    assert synthesized.function("agent.worker.lambda_handler")["Properties"]["ReservedConcurrentExecutions"] == 5
    for handler in ("agent.handler.lambda_handler", "compactor.handler.lambda_handler"):
        assert "ReservedConcurrentExecutions" not in synthesized.function(handler)["Properties"]


# -- make alarm-check: each alarm to ALARM, then its history -------------------------------------------


class CloudWatch:
    """Alarms whose actions succeed or fail as given; SetAlarmState runs them on a change of state."""

    def __init__(self, alarms: dict[str, tuple[str, bool]]):
        self.alarms = {name: {"AlarmName": name, "StateValue": state, "ok": ok} for name, (state, ok) in alarms.items()}
        self.history: dict[str, list[dict]] = {name: [] for name in alarms}
        self.set: list[tuple[str, str]] = []

    def get_paginator(self, operation):
        assert operation == "describe_alarms"
        cloudwatch = self

        class Paginator:
            def paginate(self, AlarmNamePrefix):
                yield {"MetricAlarms": [dict(a) for n, a in cloudwatch.alarms.items() if n.startswith(AlarmNamePrefix)]}

        return Paginator()

    def set_alarm_state(self, AlarmName, StateValue, StateReason):
        alarm = self.alarms[AlarmName]
        self.set.append((AlarmName, StateValue))
        if alarm["StateValue"] != StateValue:
            summary = ("Successfully executed action arn:aws:sns:eu-west-1:111122223333:alarms" if alarm["ok"] else
                       "Failed to execute action arn:aws:sns:eu-west-1:111122223333:alarms. Received error: "
                       '"CloudWatch Alarms does not have authorization to access the SNS topic encryption key."')
            self.history[AlarmName].append({"HistorySummary": summary})
        alarm["StateValue"] = StateValue

    def describe_alarm_history(self, AlarmName, HistoryItemType, StartDate, ScanBy):
        assert HistoryItemType == "Action"
        return {"AlarmHistoryItems": self.history[AlarmName]}


def test_alarm_check_sets_every_alarm_to_alarm_and_reports_each_actions_outcome():
    # Given the stack's alarms, one already in ALARM, one whose action fails, and another stack's alarm
    cloudwatch = CloudWatch({"DurableAgentMemory-a": ("OK", True), "DurableAgentMemory-b": ("ALARM", True),
                             "DurableAgentMemory-c": ("INSUFFICIENT_DATA", False), "Other-x": ("OK", True)})
    # When the check runs
    outcomes = deployment.alarm_check(cloudwatch, sleep=lambda _: None)
    # Then every alarm of the stack went to ALARM (the one in ALARM through OK), and no other
    assert [s for s in cloudwatch.set if s[1] == "ALARM"] == [(f"DurableAgentMemory-{n}", "ALARM") for n in "abc"]
    assert ("DurableAgentMemory-b", "OK") in cloudwatch.set
    # And each outcome is the history's own words: the failure says why
    assert outcomes["DurableAgentMemory-a"].startswith("Successfully executed action")
    assert "encryption key" in outcomes["DurableAgentMemory-c"]
    assert "Other-x" not in outcomes


def test_alarm_check_reports_an_alarm_whose_action_never_ran():
    cloudwatch = CloudWatch({"DurableAgentMemory-a": ("OK", True)})
    cloudwatch.set_alarm_state = lambda **_: None  # an alarm without actions: nothing reaches the history
    now = iter(range(1000))
    assert deployment.alarm_check(cloudwatch, sleep=lambda _: None, clock=lambda: next(now), wait_seconds=3) == {
        "DurableAgentMemory-a": "no action ran"}
