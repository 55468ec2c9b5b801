"""The deployed stack's day-to-day verbs (`make deploy` with its checks, `make outputs`,
`make token`, `make secret`, `make alarm-check`, `make drill`), so docs/DEPLOY.md never asks anyone to
type the same long command twice.

Deploy settings are remembered in cdk.context.json, which the CDK CLI reads on every synth and
deploy: a later `make deploy` or `make drill` keeps the alarm e-mail subscription, the model
provider, the JWT issuer and the memory strategy instead of silently deploying the defaults.
No aws_cdk import here: these verbs start in a fraction of a second.
"""

import datetime
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                 NoRegionError, PartialCredentialsError)

from functions.agent.shared import SUPPRESSED_WRITES_ALARM_THRESHOLD
from infra.settings import LONG_TERM_TABLE_SUFFIX, Settings

STACK_NAME = "DurableAgentMemory"
CONTEXT_FILE = Path(__file__).resolve().parent.parent / "cdk.context.json"
# The deployment's settings (infra/settings.py reads them): remembered from one deploy to the next.
REMEMBERED = ("alarmEmail", "modelProvider", "modelId", "memoryStrategy", "jwtIssuer", "jwtAudience",
              "workerReservedConcurrency", "userPoolId")
# A drill lasts for one deploy only: `make drill` passes it on the command line, never remembered.
ONE_SHOT = ("alarmDrillMinutes",)
# Every drill turn is a suppressed write: a few more than the alarm needs, so it surely fires.
DRILL_TURNS = SUPPRESSED_WRITES_ALARM_THRESHOLD + 2
REQUEST_TIMEOUT_SECONDS = 60
# Lambda keeps at least this many executions unreserved for the functions without a reservation:
# "You can reserve up to the Unreserved account concurrency value that is shown, minus 100"
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
MIN_UNRESERVED_CONCURRENCY = 100
# An alarm action runs within seconds of the state change; the history may take a little longer to show it.
ALARM_CHECK_WAIT_SECONDS = 120
ALARM_CHECK_POLL_SECONDS = 5
# The error codes of AWS's common errors for credentials that are expired, unknown or wrongly signed
# (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html and each service's own list).
BAD_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                   "UnrecognizedClientException", "SignatureDoesNotMatch", "IncompleteSignature",
                   "InvalidSignatureException"}
CHECK_CREDENTIALS = "renew them (aws sso login, or aws configure) and check: aws sts get-caller-identity"


class UsageError(Exception):
    """A mistake the user can fix: printed as one line, exit status 2."""


def remember(assignments: list[str], context_file: Path = CONTEXT_FILE) -> dict[str, str]:
    """Merges `key=value` settings into the remembered context (an empty value forgets the key) and
    returns the deployment's settings after the merge. Settings the stack would refuse are refused
    here, before anything is saved: a saved bad value would break every later deploy."""
    context = json.loads(context_file.read_text()) if context_file.exists() else {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if key in ONE_SHOT:
            raise UsageError(f"{key} is not remembered between deploys: use `make drill`")
        if key not in REMEMBERED or not equals:
            raise UsageError(f"expected key=value with key one of {', '.join(REMEMBERED)}; got {assignment!r}")
        if value:
            context[key] = value
        else:
            context.pop(key, None)
    try:
        Settings.from_context(SimpleNamespace(try_get_context=context.get))
    except ValueError as error:
        raise UsageError(f"{error}; nothing saved (fix it with CONTEXT=\"key=value\"; an empty value "
                         "forgets a setting)") from None
    context_file.write_text(json.dumps(context, indent=2, sort_keys=True) + "\n")
    return {key: context[key] for key in REMEMBERED if key in context}


def describe(settings: dict[str, str]) -> str:
    lines = [f"deploying with (cdk.context.json): {' '.join(f'{k}={v}' for k, v in settings.items()) or 'defaults'}"]
    if "alarmEmail" not in settings:
        lines.append("no alarmEmail: alarms reach nobody (make deploy ALARM_EMAIL=you@example.com subscribes one)")
    return "\n".join(lines)


class StackNotDeployed(UsageError):
    pass


def stack_outputs(cloudformation) -> dict[str, str]:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"]
    except ClientError as error:
        # "If the stack doesn't exist, a ValidationError is returned"
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html).
        if error.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(error):
            region = cloudformation.meta.region_name
            raise StackNotDeployed(f"the stack {STACK_NAME} is not deployed in {region} for these credentials: "
                                   "run make deploy, or set AWS_REGION to the region it is in") from None
        raise
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def deployed_outputs(boto3) -> dict[str, str]:
    """The stack's outputs, or none before its first deploy."""
    try:
        return stack_outputs(boto3.client("cloudformation"))
    except StackNotDeployed:
        return {}


def keep_user_pool(outputs: dict[str, str], context_file: Path = CONTEXT_FILE) -> str | None:
    """Before the stack is deleted: remembers the user pool it retains, so the next deploy signs in the
    same users (same `sub`, the key of their facts) instead of creating an empty pool. Returns its id."""
    if "UserPoolId" not in outputs:
        return None  # an issuer of the user's own (jwtIssuer): nothing of ours to keep
    remember([f"userPoolId={outputs['UserPoolId']}"], context_file)
    return outputs["UserPoolId"]


def check_long_term_table(outputs: dict[str, str]) -> None:
    """Refuses a deploy that would replace the deployed long-term table by an empty one: a stack
    deployed before its table had a static name has a generated one, and a new TableName replaces it."""
    deployed, named = outputs.get("LongTermTableName"), f"{STACK_NAME}{LONG_TERM_TABLE_SUFFIX}"
    if deployed and deployed != named:
        raise UsageError(f"this deploy would replace the long-term table {deployed} by a new, empty {named}: "
                         "move the facts first (docs/DEPLOY.md, 'Redeploying after make destroy')")


def aws_problem(error: BotoCoreError | ClientError) -> str:
    """An AWS error in one line: what went wrong and what to do about it."""
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials in this shell: set them up (aws configure, aws sso login, AWS_PROFILE=...) "
                "and check: aws sts get-caller-identity")
    if isinstance(error, NoRegionError):
        return "no AWS region: export AWS_REGION=<the stack's region> (or set one in your profile: aws configure)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS ({error}): check the network, and that AWS_REGION is a region"
    if not isinstance(error, ClientError):
        return f"AWS credentials or configuration: {error}"  # botocore's own words (an SSO token to renew, ...)
    code, message = error.response["Error"].get("Code", ""), error.response["Error"].get("Message", "")
    operation = error.operation_name
    if code in BAD_CREDENTIALS:
        return f"AWS refused the credentials in {operation} ({code}: {message}): {CHECK_CREDENTIALS}"
    if code in ("AccessDenied", "AccessDeniedException"):
        return f"these credentials may not call {operation} ({message}): use a role or user allowed to"
    if code == "NotAuthorizedException" and operation == "InitiateAuth":
        return f"Cognito refused the sign-in ({message}): check EMAIL and PASSWORD (docs/DEPLOY.md, step 4)"
    return f"AWS {operation} failed: {code}: {message}"


def token(outputs: dict[str, str], cognito, email: str, password: str) -> str:
    """A Cognito access token for an existing user of the stack's user pool (valid one hour)."""
    answer = cognito.initiate_auth(
        ClientId=outputs["UserPoolClientId"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    if "AuthenticationResult" not in answer:
        raise UsageError(f"Cognito asks for {answer.get('ChallengeName')}: set a permanent password first "
                         "(admin-set-user-password --permanent, docs/DEPLOY.md)")
    return answer["AuthenticationResult"]["AccessToken"]


def put_secret(outputs: dict[str, str], secrets, api_key: str) -> None:
    if "AnthropicApiKeySecretArn" not in outputs:
        raise UsageError("this deployment has no Anthropic key secret (modelProvider is not anthropic)")
    secrets.put_secret_value(SecretId=outputs["AnthropicApiKeySecretArn"], SecretString=api_key)


def check_concurrency(settings: dict[str, str], lambda_client, worker_function: str | None) -> str:
    """Refuses a worker reservation the account's quota cannot hold (the deploy would fail half way);
    returns what the deployment will do, for the deploy's output."""
    limits = lambda_client.get_account_settings()["AccountLimit"]
    total, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    wanted = settings.get("workerReservedConcurrency")
    if not wanted:
        return (f"Lambda concurrency: {total} for the account; the worker has no reservation and shares it with the "
                "API (docs/DEPLOY.md, Concurrency)")
    current = 0
    if worker_function:
        current = lambda_client.get_function_concurrency(FunctionName=worker_function).get(
            "ReservedConcurrentExecutions", 0)
    room = unreserved + current - MIN_UNRESERVED_CONCURRENCY
    if int(wanted) > room:
        raise UsageError(
            f"workerReservedConcurrency={wanted} does not fit: the account's quota is {total} concurrent executions and "
            f"Lambda keeps {MIN_UNRESERVED_CONCURRENCY} unreserved, so at most {max(room, 0)} can be reserved. Ask for "
            "more in Service Quotas (Lambda, Concurrent executions, L-B99A9384), or deploy without it: "
            'make deploy CONTEXT="workerReservedConcurrency="')
    return f"Lambda concurrency: {total} for the account; {wanted} reserved for the worker (its cap)"


def alarm_check(cloudwatch, *, prefix: str = f"{STACK_NAME}-", wait_seconds: float = ALARM_CHECK_WAIT_SECONDS,
                sleep=time.sleep, clock=time.monotonic) -> dict[str, str]:
    """Sets every alarm of the stack to ALARM (SetAlarmState: it runs the alarm's actions, and the
    alarm returns to its real state within seconds), then reads each alarm's history for its action's
    outcome: alarm name -> "Successfully executed action ..." or "Failed to execute action ...: <why>",
    or "no action ran" if none shows up within `wait_seconds`."""
    since = datetime.datetime.now(datetime.timezone.utc)
    alarms = [a for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
              for a in page["MetricAlarms"]]
    if not alarms:
        raise UsageError(f"no alarm named {prefix}*: is the stack deployed in this account and region?")
    for alarm in alarms:
        # The action runs only when the state changes: an alarm already in ALARM goes through OK first.
        if alarm["StateValue"] == "ALARM":
            cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="make alarm-check")
        cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM",
                                   StateReason="make alarm-check: testing the notification path")
    outcomes: dict[str, str] = {}
    deadline = clock() + wait_seconds
    while True:
        for alarm in alarms:
            name = alarm["AlarmName"]
            items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="Action", StartDate=since,
                                                      ScanBy="TimestampAscending")["AlarmHistoryItems"]
            if items:
                outcomes[name] = items[-1]["HistorySummary"]
        if len(outcomes) == len(alarms) or clock() >= deadline:
            return {a["AlarmName"]: outcomes.get(a["AlarmName"], "no action ran") for a in alarms}
        sleep(ALARM_CHECK_POLL_SECONDS)


def drill_turns(api_url: str, bearer: str, send=None) -> list[str]:
    """Sends DRILL_TURNS turns to one session and returns each answer's memory write outcome."""
    send = send or _post
    outcomes = []
    for n in range(1, DRILL_TURNS + 1):
        status, body = send(f"{api_url.rstrip('/')}/sessions/alarm-drill/messages", bearer, {"message": f"drill {n}"})
        if status != 200:
            raise UsageError(f"turn {n} answered {status}: {body}")
        outcomes.append(body["memory"]["write"])
    return outcomes


def _post(url: str, bearer: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _required_env(name: str, hint: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"{name} is not set: {hint}")
    return value


def main(argv: list[str]) -> None:
    import boto3  # only the verbs that call AWS pay for it

    verb, *arguments = argv
    if verb == "remember":
        print(describe(remember(arguments)), file=sys.stderr)
        return
    if verb == "check":
        context = json.loads(CONTEXT_FILE.read_text()) if CONTEXT_FILE.exists() else {}
        deployed = deployed_outputs(boto3)
        check_long_term_table(deployed)
        print(check_concurrency(context, boto3.client("lambda"), deployed.get("WorkerFunctionName")),
              file=sys.stderr)
        return
    outputs = stack_outputs(boto3.client("cloudformation"))
    if verb == "outputs":  # eval "$(make -s outputs)" sets ApiUrl, UserPoolId, ... in the shell
        print("\n".join(f"{key}={shlex.quote(value)}" for key, value in sorted(outputs.items())))
    elif verb == "token":
        print(token(outputs, boto3.client("cognito-idp"), _required_env("EMAIL", "the user's e-mail"),
                    _required_env("PASSWORD", "the user's password")))
    elif verb == "keep-user-pool":
        if kept := keep_user_pool(outputs):
            print(f"remembered userPoolId={kept} (cdk.context.json): the next make deploy keeps its users",
                  file=sys.stderr)
    elif verb == "secret":
        put_secret(outputs, boto3.client("secretsmanager"),
                   _required_env("ANTHROPIC_API_KEY", "export your key from console.anthropic.com first"))
        print("stored; the function picks the key up within 5 minutes", file=sys.stderr)
    elif verb == "alarm-check":
        outcomes = alarm_check(boto3.client("cloudwatch"))
        for name, outcome in outcomes.items():
            print(f"{name}: {outcome}", file=sys.stderr)
        if not all(outcome.startswith("Successfully executed") for outcome in outcomes.values()):
            raise UsageError("an alarm could not notify: see its line above and docs/DEPLOY.md, Troubleshooting")
        print("every alarm notified its topic: check your inbox (an ALARM e-mail per alarm, then OK)", file=sys.stderr)
    elif verb == "drill-turns":
        bearer = _required_env("TOKEN", "export TOKEN=$(make -s token)")
        outcomes = drill_turns(outputs["ApiUrl"], bearer)
        print(f"{len(outcomes)} turns, memory writes: {', '.join(outcomes)}", file=sys.stderr)
        if "suppressed" not in outcomes:
            raise UsageError("no write was suppressed: the drill is not running (over, or deployed without it)")
    else:
        raise UsageError(f"unknown verb {verb!r}")


def run(argv: list[str]) -> int:
    """The verb's exit status; its errors go to stderr in one line each, never as a traceback."""
    try:
        main(argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"error: {aws_problem(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
