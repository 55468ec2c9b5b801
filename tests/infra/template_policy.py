"""Reads a synthesized CloudFormation template the way AWS would at run time, for the subset this
project uses, so tests can follow a request or an event from resource to resource:

- `Resolver` turns intrinsic functions (Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split) into the strings AWS would see,
  in a fixed account, region and partition: a topic's ARN, a function alias's ARN, an alarm's ARN.
- `allows(policy, request)` evaluates an IAM policy document (identity, key or resource policy)
  against one request: some Allow matches and no Deny does.

Anything outside the subset (NotPrincipal, NotAction, NotResource, an unknown condition operator or
intrinsic) raises ValueError: a policy these helpers cannot judge fails the test, never passes it.
"""

import re
from dataclasses import dataclass, field

ACCOUNT, REGION, PARTITION = "111122223333", "eu-west-1", "aws"


class Resolver:
    """Intrinsics of one template -> strings, as CloudFormation would resolve them in ACCOUNT/REGION."""

    def __init__(self, template: dict, stack_name: str):
        self.resources = template["Resources"]
        self.stack_name = stack_name

    def __call__(self, value):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"cannot resolve {value!r}")
        ((function, argument),) = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(logical_id, attribute)
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(self(part) for part in parts)
        if function == "Fn::Select":
            index, values = argument
            return self(values)[index]
        if function == "Fn::Split":
            separator, value = argument
            return self(value).split(separator)
        raise ValueError(f"unsupported intrinsic {function}")

    def type_of(self, logical_id: str) -> str:
        return self.resources[logical_id]["Type"]

    def name_of(self, logical_id: str, name_property: str | None = None) -> str:
        """The physical name: the template's own, else a stand-in for the one CloudFormation generates
        (which no policy can predict, so only a policy naming the resource itself matches it)."""
        properties = self.resources[logical_id].get("Properties", {})
        if name_property and name_property in properties:
            return self(properties[name_property])
        return f"{logical_id}-GENERATED"

    def ref(self, logical_id: str) -> str:
        pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.stack_name}
        if logical_id in pseudo:
            return pseudo[logical_id]
        kind = self.type_of(logical_id)
        if kind == "AWS::SNS::Topic":
            return self._arn("sns", self.name_of(logical_id, "TopicName"))
        if kind == "AWS::Lambda::Alias":
            properties = self.resources[logical_id]["Properties"]
            return f"{self.function_arn(properties['FunctionName'])}:{self(properties['Name'])}"
        if kind == "AWS::Lambda::Function":
            return self.name_of(logical_id, "FunctionName")
        # APIs, tables, queues, keys...: their Ref is an id or name, the stand-in is enough.
        return self.name_of(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.type_of(logical_id)
        arns = {
            ("AWS::CloudWatch::Alarm", "Arn"): lambda: self._arn("cloudwatch", f"alarm:{self.name_of(logical_id, 'AlarmName')}"),
            ("AWS::KMS::Key", "Arn"): lambda: self._arn("kms", f"key/{logical_id}"),
            ("AWS::SQS::Queue", "Arn"): lambda: self._arn("sqs", self.name_of(logical_id, "QueueName")),
            ("AWS::SQS::Queue", "QueueName"): lambda: self.name_of(logical_id, "QueueName"),
            ("AWS::DynamoDB::Table", "Arn"): lambda: self._table_arn(logical_id),
            ("AWS::DynamoDB::Table", "StreamArn"): lambda: f"{self._table_arn(logical_id)}/stream/STREAM-LABEL",
            ("AWS::Lambda::Function", "Arn"): lambda: self.function_arn({"Ref": logical_id}),
            ("AWS::IAM::Role", "Arn"): lambda: f"arn:{PARTITION}:iam::{ACCOUNT}:role/{self.name_of(logical_id, 'RoleName')}",
        }
        if (kind, attribute) not in arns:
            raise ValueError(f"unsupported attribute {kind}.{attribute}")
        return arns[(kind, attribute)]()

    def function_arn(self, function_name) -> str:
        name = self(function_name)
        return name if name.startswith("arn:") else self._arn("lambda", f"function:{name}")

    def _table_arn(self, logical_id: str) -> str:
        return self._arn("dynamodb", f"table/{self.name_of(logical_id, 'TableName')}")

    @staticmethod
    def _arn(service: str, resource: str) -> str:
        return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


@dataclass(frozen=True)
class Request:
    principal: dict[str, str]  # {"Service": "cloudwatch.amazonaws.com"} or {"AWS": "<arn>"}
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)  # condition keys, e.g. aws:SourceArn


def allows(policy: dict, request: Request, resolve: Resolver, *, resource_policy: bool) -> bool:
    """Whether `policy` lets `request` through: an Allow matches it and no Deny does. Identity
    policies have no Principal; resource and key policies must name the request's principal."""
    matching = [s for s in _statements(policy) if _matches(s, request, resolve, resource_policy)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def _statements(policy: dict) -> list[dict]:
    statements = policy["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(statement: dict, request: Request, resolve: Resolver, resource_policy: bool) -> bool:
    unsupported = {"NotPrincipal", "NotAction", "NotResource"} & set(statement)
    if unsupported:
        raise ValueError(f"unsupported policy element {unsupported}")
    if resource_policy and not _principal_matches(statement["Principal"], request.principal, resolve):
        return False
    actions = _as_list(statement["Action"])
    if not any(_like(action, request.action, case_sensitive=False) for action in actions):
        return False
    resources = [resolve(r) for r in _as_list(statement["Resource"])]
    if not any(_like(resource, request.resource) for resource in resources):
        return False
    return all(
        _condition(operator, key, resolve(values), request.context)
        for operator, entries in statement.get("Condition", {}).items()
        for key, values in entries.items()
    )


def _principal_matches(principal, requested: dict[str, str], resolve: Resolver) -> bool:
    if principal == "*":
        return True
    ((kind, who),) = requested.items()
    for declared_kind, declared in principal.items():
        for value in _as_list(declared):
            if value == "*" and declared_kind == "AWS":
                return True
            if declared_kind == kind and resolve(value) == who:
                return True
    return False


def _condition(operator: str, key: str, values, context: dict[str, str]) -> bool:
    values = [str(v) for v in _as_list(values)]
    context = {name.lower(): value for name, value in context.items()}  # condition keys ignore case
    present = key.lower() in context
    actual = context.get(key.lower())
    if operator in ("StringEquals", "ArnEquals"):
        return present and actual in values
    if operator in ("StringLike", "ArnLike"):
        return present and any(_like(v, actual) for v in values)
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return not present or actual not in values
    if operator == "Bool":
        return present and actual.lower() in [v.lower() for v in values]
    raise ValueError(f"unsupported condition operator {operator}")


def _like(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None

