"""Synthesizes the real CDK app (app.py, cdk.json's feature flags, cdk-nag attached) once per
session per configuration, with asset bundling skipped so no pip or Docker runs."""

import pytest

from synthesis import VARIANT_CONTEXT, Synth, synthesize


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """Defaults: the anthropic provider and a Cognito user pool created by the stack."""
    return synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory) -> Synth:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), **VARIANT_CONTEXT)
