"""The real CDK app (app.py, cdk.json's feature flags, cdk-nag attached) synthesized with asset
bundling skipped, so no pip or Docker runs, and what tests read in its template."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

# The machine's Node 20 makes jsii print a banner on every start; it is not a test result.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402  (after the banner switch above)

import app as cdk_app  # noqa: E402
from template_policy import Resolver  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_HANDLER, COMPACTOR_HANDLER = "agent.handler.lambda_handler", "compactor.handler.lambda_handler"

# Every optional switch turned away from its default at once: one extra synth covers them all.
VARIANT_CONTEXT = {
    "modelProvider": "bedrock",
    "alarmEmail": "oncall@example.com",
    "alarmDrillMinutes": "15",
    "jwtIssuer": "https://issuer.example.com/tenant",
    "jwtAudience": "agent-api,agent-cli",
    "memoryStrategy": "token_budget",
}


@dataclass(frozen=True)
class Synth:
    app: cdk.App
    stack: cdk.Stack
    outdir: Path
    template: dict

    def resources(self, resource_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    def one(self, resource_type: str) -> dict:
        (resource,) = self.resources(resource_type).values()
        return resource

    def alarm(self, metric_name: str = "MemoryWriteSuppressed") -> dict:
        """The alarm on `metric_name` (the suppressed-writes alarm by default)."""
        (alarm,) = [a for a in self.resources("AWS::CloudWatch::Alarm").values()
                    if a["Properties"].get("MetricName") == metric_name]
        return alarm

    def function(self, handler: str = AGENT_HANDLER) -> dict:
        """The function resource that runs `handler` (the agent's by default)."""
        (function,) = [f for f in self.resources("AWS::Lambda::Function").values()
                       if f["Properties"]["Handler"] == handler]
        return function

    def function_environment(self, handler: str = AGENT_HANDLER) -> dict[str, str]:
        """A function's environment as Lambda would see it, each `Ref` replaced by a stand-in, any other
        intrinsic resolved as template_policy.Resolver does."""
        variables = self.function(handler)["Properties"]["Environment"]["Variables"]
        resolve = Resolver(self.template, self.stack.stack_name)
        return {
            name: f"resolved-{value['Ref']}" if isinstance(value, dict) and "Ref" in value else resolve(value)
            for name, value in variables.items()
        }

    def output_ref(self, name: str) -> str:
        """The logical id an output points at, e.g. which table is the sessions table."""
        return self.template["Outputs"][name]["Value"]["Ref"]


def synthesize(outdir: Path, **context: str) -> Synth:
    cdk_context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    cdk_context |= {"aws:cdk:bundling-stacks": [], **context}
    app = cdk.App(context=cdk_context, outdir=str(outdir))
    stack = cdk_app.build(app)
    assembly = app.synth()  # fails here on any unacknowledged cdk-nag finding
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(app=app, stack=stack, outdir=outdir, template=template)


def role_id(synth, handler: str = AGENT_HANDLER) -> str:
    return synth.function(handler)["Properties"]["Role"]["Fn::GetAtt"][0]


def statements(synth, handler: str = AGENT_HANDLER) -> list[dict]:
    (policy,) = [p for p in synth.resources("AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": role_id(synth, handler)}]]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statement_for(synth, action: str, handler: str = AGENT_HANDLER) -> dict:
    (statement,) = [s for s in statements(synth, handler) if action in as_list(s["Action"])]
    return statement


def alias_of(synth, handler: str) -> tuple[str, dict, dict]:
    """(alias id, alias, version) of the function that runs `handler`."""
    function_id = next(k for k, v in synth.resources("AWS::Lambda::Function").items()
                       if v["Properties"]["Handler"] == handler)
    ((alias_id, alias),) = [(k, v) for k, v in synth.resources("AWS::Lambda::Alias").items()
                            if v["Properties"]["FunctionName"] == {"Ref": function_id}]
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    return alias_id, alias, synth.template["Resources"][version_id]
