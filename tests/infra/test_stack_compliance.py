"""cdk-nag's AWS Solutions rules and cfn-lint, on the synthesized app: no unexplained finding."""

import json

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint

EXPECTED_ACKNOWLEDGEMENTS = {
    "AwsSolutions-DDB3",
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-SMG4",
    "AwsSolutions-SQS3",
    "AwsSolutions-COG2",
    "AwsSolutions-COG8",
    "AwsSolutions-APIG4",
    "Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
}

# Regions with every service the stack uses, SnapStart included (docs/DEPLOY.md); cfn-lint's
# all-regions mode rightly reports that SnapStart is missing in a few others.
LINT_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2"]


def acknowledgements(app: cdk.App) -> dict[str, list[tuple[str, str]]]:
    """rule id -> [(construct path, reason)] for every acknowledgement in the construct tree."""
    found: dict[str, list[tuple[str, str]]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry.data.items():
                    rule_id = rule.removeprefix("Annotation::")
                    found.setdefault(rule_id, []).append((construct.node.path, reason))
    return found


@pytest.mark.parametrize("name", ["synth", "variant"])
def test_synth_reports_no_unacknowledged_finding(name, request):
    # Given the app synthesized with cdk-nag attached, as app.py attaches it
    synthesized = request.getfixturevalue(name)

    # Then neither cdk-nag nor the construct annotations left any error or warning
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin["violations"]] == []
    nag = AwsSolutionsChecks().validate_scope(synthesized.app)
    assert [(v.rule_name, v.severity) for v in nag.violations] == []


def test_every_acknowledgement_is_expected_and_says_why(synth, variant):
    default_acks = acknowledgements(synth.app)
    variant_acks = acknowledgements(variant.app)

    assert {rule.split("[Resource::arn")[0] for rule in default_acks} == {
        rule.removeprefix("Annotation::") for rule in EXPECTED_ACKNOWLEDGEMENTS
    }
    # bedrock, no secret, no user pool: the cross-region model grant instead
    bedrock_grant = "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/"
    assert bedrock_grant in " ".join(variant_acks)
    for rule, uses in (default_acks | variant_acks).items():
        for path, reason in uses:
            assert len(reason.split()) >= 10, f"{rule} on {path} needs a real reason, not {reason!r}"


@pytest.mark.parametrize("name", ["synth", "variant"])
def test_cfn_lint_finds_no_error_in_the_template(name, request):
    template = json.dumps(request.getfixturevalue(name).template)

    errors = [m for m in lint(template, regions=LINT_REGIONS) if m.rule.id.startswith("E")]

    assert [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in errors] == []
